"""The Open Inference Protocol (KServe v2) ``inference.GRPCInferenceService``, on the same port.

Existing Triton / KServe clients (tritonclient.grpc, kserve) work unchanged: a model package is
exposed as a model whose input ``images`` is UINT8 [-1, H, W, 3] and whose outputs are ``scores``
FP32 [-1, T] and ``heatmaps`` FP32 [-1, T, h, w], exactly the ONNX graph's signature. Tensor data
is read from ``raw_input_contents`` (what tritonclient sends) or from ``contents.uint_contents``,
and outputs are returned in ``raw_output_contents``. Inference goes through the same dynamic
batcher as bugdet.v1, so both protocols share batches.
"""

from __future__ import annotations

import time

import numpy as np

from service import protos
from service.batcher import DynamicBatcher
from service.config import SERVICE_VERSION, ServerConfig
from service.echo import echo, echo_list
from service.errors import InvalidRequest, abort, status_for
from service.metrics import Metrics
from service.registry import ModelRegistry
from service.requests import deadline_of, run_frames

pb, pb_grpc = protos.inference()

OUTPUTS = ("scores", "heatmaps")


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, registry: ModelRegistry, batcher: DynamicBatcher, metrics: Metrics, config: ServerConfig):
        self.registry, self.batcher, self.metrics, self.config = registry, batcher, metrics, config

    def _call(self, method: str, context, work):
        started = time.perf_counter()
        try:
            response = work()
        except Exception as exc:  # noqa: BLE001 - mapped to a status, never a crash
            code, message = status_for(exc)
            self.metrics.requests.inc(method=method, code=code.name)
            abort(context, code, message)
        self.metrics.requests.inc(method=method, code="OK")
        self.metrics.latency.observe(time.perf_counter() - started, method=method)
        return response

    def ServerLive(self, request, context):  # noqa: N802
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request, context):  # noqa: N802
        return pb.ServerReadyResponse(ready=bool(self.registry.models()))

    def ModelReady(self, request, context):  # noqa: N802
        try:
            self.registry.get(request.name or "\0", request.version)
        except LookupError:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    def ServerMetadata(self, request, context):  # noqa: N802
        return pb.ServerMetadataResponse(name="bugdet", version=SERVICE_VERSION, extensions=[])

    def ModelMetadata(self, request, context):  # noqa: N802
        def work():
            model = self.registry.get(request.name, request.version)
            m = model.manifest
            t = len(m.bug_types)
            response = pb.ModelMetadataResponse(name=m.name, versions=[m.version], platform="onnxruntime_onnx")
            response.inputs.add(name=m.input.name, datatype="UINT8", shape=[-1, m.input.height, m.input.width, 3])
            response.outputs.add(name=OUTPUTS[0], datatype="FP32", shape=[-1, t])
            response.outputs.add(name=OUTPUTS[1], datatype="FP32", shape=[-1, t, *m.heatmap_size])
            return response

        return self._call("ModelMetadata", context, work)

    def ModelInfer(self, request, context):  # noqa: N802
        return self._call("ModelInfer", context, lambda: self._infer(request, context))

    def _infer(self, request, context):
        if not request.model_name:
            raise InvalidRequest("ModelInfer needs model_name")
        model = self.registry.get(request.model_name, request.model_version)
        frames = self._input_frames(request, model)
        scores, heatmaps = run_frames(self.batcher, model, frames, deadline_of(context))
        self.metrics.frames.inc(len(frames), model=model.name)
        tensors = {OUTPUTS[0]: scores, OUTPUTS[1]: heatmaps}
        requested = [o.name for o in request.outputs] or list(OUTPUTS)
        unknown = [name for name in requested if name not in tensors]
        if unknown:
            raise InvalidRequest(f"unknown output(s) {echo_list(unknown)}; {model.name} has {list(OUTPUTS)}")
        response = pb.ModelInferResponse(model_name=model.name, model_version=model.version, id=request.id)
        for name in requested:
            array = np.ascontiguousarray(tensors[name], dtype=np.float32)
            response.outputs.add(name=name, datatype="FP32", shape=list(array.shape))
            response.raw_output_contents.append(array.tobytes())
        return response

    def _input_frames(self, request, model) -> np.ndarray:
        spec = model.manifest.input
        if len(request.inputs) != 1 or request.inputs[0].name != spec.name:
            raise InvalidRequest(f"{model.name} takes exactly one input {spec.name!r}, got {echo_list(i.name for i in request.inputs)}")
        tensor = request.inputs[0]
        if tensor.datatype != "UINT8":
            raise InvalidRequest(f"input {spec.name!r} must be UINT8, got {echo(tensor.datatype) if tensor.datatype else 'no datatype'}")
        shape = list(tensor.shape)
        expected = [spec.height, spec.width, 3]
        if len(shape) != 4 or shape[1:] != expected or shape[0] < 1:
            raise InvalidRequest(f"input {spec.name!r} must have shape [N, {spec.height}, {spec.width}, 3], got {shape}")
        if shape[0] > self.config.max_frames_per_request:
            raise InvalidRequest(f"batch of {shape[0]} frames; at most {self.config.max_frames_per_request} per request")
        if request.raw_input_contents:
            if len(request.raw_input_contents) != 1:
                raise InvalidRequest(f"expected one raw_input_contents entry, got {len(request.raw_input_contents)}")
            data = np.frombuffer(request.raw_input_contents[0], np.uint8)
        else:
            data = np.asarray(tensor.contents.uint_contents, dtype=np.int64)
            if data.size and (data.min() < 0 or data.max() > 255):
                raise InvalidRequest("uint_contents values must fit in UINT8")
            data = data.astype(np.uint8)
        if data.size != int(np.prod(shape)):
            raise InvalidRequest(f"input {spec.name!r}: {data.size} bytes for shape {shape} (expected {int(np.prod(shape))})")
        return data.reshape(shape)
