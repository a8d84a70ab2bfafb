"""Bearer-token check for every RPC except the probes: gRPC health, and KServe v2's liveness and
readiness RPCs (Kubernetes, load balancers and Triton-style probes call them without credentials;
they reveal only whether the server and a named model are up). Inference and metadata stay
protected."""

from __future__ import annotations

import hmac

import grpc

EXEMPT_PREFIXES = ("/grpc.health.v1.Health/",)
EXEMPT_METHODS = frozenset(f"/inference.GRPCInferenceService/{rpc}" for rpc in ("ServerLive", "ServerReady", "ModelReady"))


def _reject(handler: grpc.RpcMethodHandler, message: str) -> grpc.RpcMethodHandler:
    def abort(request, context):
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    def abort_stream(request_iterator, context):
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    kwargs = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(abort, **kwargs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(abort, **kwargs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(abort_stream, **kwargs)
    return grpc.stream_stream_rpc_method_handler(abort_stream, **kwargs)


class BearerTokenInterceptor(grpc.ServerInterceptor):
    def __init__(self, token: str):
        self._expected = f"Bearer {token}".encode()

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method in EXEMPT_METHODS or method.startswith(EXEMPT_PREFIXES):
            return handler
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                given = value.encode() if isinstance(value, str) else value
                if hmac.compare_digest(given, self._expected):
                    return handler
                return _reject(handler, "invalid bearer token")
        return _reject(handler, "missing 'authorization: Bearer <token>' metadata")
