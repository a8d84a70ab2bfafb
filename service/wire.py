"""Requests whose bytes are not the method's protobuf message: INVALID_ARGUMENT, and no leak.

When a request message fails to parse, grpcio (1.85) answers INTERNAL "Exception deserializing
request!" itself, and keeps that call's state alive: measured ~16 KB of server RSS per such
request, so anyone who can reach the port could grow the server without bound (3,000 garbage
requests: +47 MB; 3,000 well-formed but invalid ones: +0.1 MB). This interceptor gives every
method a deserializer that cannot fail: unparseable bytes become an :class:`Unparseable` marker
that the wrapped handler answers with INVALID_ARGUMENT, through grpcio's normal path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc


class Unparseable:
    """Stands in for a request message that did not parse."""

    __slots__ = ("error",)

    def __init__(self, error: Exception):
        self.error = error


def _tolerant(deserializer: Callable[[bytes], object]) -> Callable[[bytes], object]:
    def deserialize(data: bytes) -> object:
        try:
            return deserializer(data)
        except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends: the client's bytes are bad
            return Unparseable(exc)

    return deserialize


def _refuse(method: str, bad: Unparseable, context) -> None:
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{method}: the request is not a valid protobuf message for this method ({bad.error})")


def _checked(method: str, requests: Iterator, context) -> Iterator:
    for request in requests:
        if isinstance(request, Unparseable):
            _refuse(method, request, context)
        yield request


def _wrap(method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    kwargs = {"request_deserializer": _tolerant(handler.request_deserializer), "response_serializer": handler.response_serializer}
    if handler.unary_unary or handler.unary_stream:
        behaviour = handler.unary_unary or handler.unary_stream

        def unary(request, context):
            if isinstance(request, Unparseable):
                _refuse(method, request, context)
            return behaviour(request, context)

        factory = grpc.unary_unary_rpc_method_handler if handler.unary_unary else grpc.unary_stream_rpc_method_handler
        return factory(unary, **kwargs)
    behaviour = handler.stream_unary or handler.stream_stream

    def streaming(request_iterator, context):
        return behaviour(_checked(method, request_iterator, context), context)

    factory = grpc.stream_unary_rpc_method_handler if handler.stream_unary else grpc.stream_stream_rpc_method_handler
    return factory(streaming, **kwargs)


class MalformedRequestInterceptor(grpc.ServerInterceptor):
    """Wraps each method's handler once (cached per method), so the per-call cost is a lookup."""

    def __init__(self) -> None:
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is None or cached[0] is not handler:
            cached = (handler, _wrap(method, handler))
            self._wrapped[method] = cached
        return cached[1]
