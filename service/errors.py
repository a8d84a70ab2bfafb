"""Mapping from what can go wrong in a request to a gRPC status, in one place.

Handlers raise plain Python exceptions; :func:`status_for` turns each into the status code a
client should see, with the exception's message as the details. Anything unexpected becomes
INTERNAL (and is logged with its traceback) so a bug affects one request, never the process.
:func:`abort` ends an RPC with that status and, for UNAVAILABLE, the standard retry pushback
trailer, so clients with a gRPC retry policy wait and retry instead of giving up.
"""

from __future__ import annotations

import concurrent.futures
import logging

import grpc

from service.batcher import DeadlineExceeded, QueueFull, WorkerFailed
from service.frames import FrameError
from service.registry import ModelNotFound, NoModelReady

log = logging.getLogger("bugdet.service")

#: Longest status message sent: client strings are capped where they are quoted (service.echo),
#: this bounds the whole, so the grpc-message trailer always fits a client's metadata limit.
MAX_DETAILS = 2000
#: How long clients should wait before retrying an UNAVAILABLE (gRFC A6 server pushback).
RETRY_PUSHBACK_MS = 1000
RETRY_PUSHBACK_KEY = "grpc-retry-pushback-ms"


class InvalidRequest(ValueError):
    """The request is well-formed protobuf but asks for something impossible."""


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    code, message = _classify(exc)
    if len(message) > MAX_DETAILS:
        message = message[:MAX_DETAILS] + f"... ({len(message)} characters)"
    return code, message


def _classify(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, (FrameError, InvalidRequest)):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, (NoModelReady, WorkerFailed)):
        return grpc.StatusCode.UNAVAILABLE, str(exc)
    if isinstance(exc, ModelNotFound):
        return grpc.StatusCode.NOT_FOUND, str(exc)
    if isinstance(exc, QueueFull):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)
    if isinstance(exc, (DeadlineExceeded, concurrent.futures.TimeoutError)):
        return grpc.StatusCode.DEADLINE_EXCEEDED, str(exc) or "deadline exceeded"
    log.exception("internal error while handling a request", exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"


def abort(context, code: grpc.StatusCode, message: str) -> None:
    """``context.abort`` plus the retry pushback trailer when retrying later will help."""
    if code == grpc.StatusCode.UNAVAILABLE:
        context.set_trailing_metadata(((RETRY_PUSHBACK_KEY, str(RETRY_PUSHBACK_MS)),))
    context.abort(code, message)
