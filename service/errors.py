"""Mapping from what can go wrong in a request to a gRPC status, in one place.

Handlers raise plain Python exceptions; :func:`status_for` turns each into the status code a
client should see, with the exception's message as the details. Anything unexpected becomes
INTERNAL (and is logged with its traceback) so a bug affects one request, never the process.
"""

from __future__ import annotations

import concurrent.futures
import logging

import grpc

from service.batcher import DeadlineExceeded, QueueFull
from service.frames import FrameError
from service.registry import ModelNotFound

log = logging.getLogger("bugdet.service")


class InvalidRequest(ValueError):
    """The request is well-formed protobuf but asks for something impossible."""


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    if isinstance(exc, (FrameError, InvalidRequest)):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, ModelNotFound):
        return grpc.StatusCode.NOT_FOUND, str(exc)
    if isinstance(exc, QueueFull):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)
    if isinstance(exc, (DeadlineExceeded, concurrent.futures.TimeoutError)):
        return grpc.StatusCode.DEADLINE_EXCEEDED, str(exc) or "deadline exceeded"
    log.exception("internal error while handling a request", exc_info=exc)
    return grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}"
