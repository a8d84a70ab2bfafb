"""gRPC server reflection under both names clients use: ``grpc.reflection.v1`` and ``v1alpha``.

grpcurl >= 1.8.8, Postman and newer grpc tooling ask ``grpc.reflection.v1`` first; older tools
ask ``v1alpha``. grpcio-reflection (up to at least 1.85) implements only ``v1alpha``. The two
protocols are the same messages under another package name (identical field numbers, so identical
bytes on the wire), so ``v1`` is served by the same servicer through a handler that decodes and
encodes with the ``v1alpha`` message classes. The ``v1`` descriptor is registered in the default
pool (derived from ``v1alpha``'s by renaming the package) so that reflection can describe itself.
"""

from __future__ import annotations

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection as v1alpha
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha_pb2
from grpc_reflection.v1alpha import reflection_pb2_grpc as v1alpha_grpc

V1_PACKAGE = "grpc.reflection.v1"
V1_FILE = "grpc/reflection/v1/reflection.proto"
V1_SERVICE = f"{V1_PACKAGE}.ServerReflection"
V1ALPHA_SERVICE = v1alpha.SERVICE_NAME


def _register_v1_descriptor(pool: descriptor_pool.DescriptorPool) -> None:
    try:
        pool.FindFileByName(V1_FILE)
        return
    except KeyError:
        pass
    source = descriptor_pb2.FileDescriptorProto()
    v1alpha_pb2.DESCRIPTOR.CopyToProto(source)
    old = "." + source.package + "."
    source.name, source.package = V1_FILE, V1_PACKAGE
    for message in source.message_type:
        for field in message.field:
            if field.type_name.startswith(old):
                field.type_name = f".{V1_PACKAGE}." + field.type_name[len(old):]
    for method in source.service[0].method:
        method.input_type = f".{V1_PACKAGE}." + method.input_type[len(old):]
        method.output_type = f".{V1_PACKAGE}." + method.output_type[len(old):]
    pool.Add(source)


def enable_server_reflection(service_names: list[str], server: grpc.Server) -> None:
    """Serve reflection v1alpha and v1 listing ``service_names`` plus both reflection services."""
    pool = descriptor_pool.Default()
    _register_v1_descriptor(pool)
    names = tuple(service_names) + (V1ALPHA_SERVICE, V1_SERVICE)
    servicer = v1alpha.ReflectionServicer(names, pool=pool)
    v1alpha_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=v1alpha_pb2.ServerReflectionRequest.FromString,
        response_serializer=v1alpha_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(V1_SERVICE, {"ServerReflectionInfo": handler}),))
