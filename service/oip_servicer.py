"""The Open Inference Protocol (KServe v2) ``inference.GRPCInferenceService``, on the same port.

Existing Triton / KServe clients (tritonclient.grpc, kserve) work unchanged: the messages and
field numbers are those of Triton's public grpc_service.proto and model_config.proto. Besides the
core protocol (liveness, readiness, metadata, ModelInfer) it serves the Triton extensions
tritonclient uses: ModelConfig, ModelStreamInfer, ModelStatistics, RepositoryIndex and
RepositoryModelLoad / Unload. What each call means lives in :mod:`service.kserve`, shared with the
HTTP front end; this module only translates protobuf. Tensor data is read from
``raw_input_contents`` (what tritonclient sends) or ``contents.uint_contents``, and outputs are
returned in ``raw_output_contents``.
"""

from __future__ import annotations

import queue
import threading
import time

from google.protobuf import json_format

from service import protos
from service.config import ServerConfig
from service.echo import echo
from service.errors import InvalidRequest, abort, status_for
from service.kserve import InputTensor, KServeModels, PendingInference, model_metadata, server_metadata
from service.metrics import Metrics
from service.requests import deadline_of

pb, pb_grpc = protos.inference()
config_pb = protos.model_config()

_DONE, _FAILED, _END = object(), object(), object()


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, models: KServeModels, metrics: Metrics, config: ServerConfig):
        self.models, self.metrics, self.config = models, metrics, config

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

    # -- health and metadata
    def ServerLive(self, request, context):  # noqa: N802
        return pb.ServerLiveResponse(live=True)

    def ServerReady(self, request, context):  # noqa: N802
        return pb.ServerReadyResponse(ready=bool(self.models.registry.models()))

    def ModelReady(self, request, context):  # noqa: N802
        return pb.ModelReadyResponse(ready=self.models.is_ready(request.name, request.version))

    def ServerMetadata(self, request, context):  # noqa: N802
        return pb.ServerMetadataResponse(**server_metadata())

    def ModelMetadata(self, request, context):  # noqa: N802
        return self._call("ModelMetadata", context,
                          lambda: json_format.ParseDict(model_metadata(self.models.model(request.name, request.version)), pb.ModelMetadataResponse()))

    def ModelConfig(self, request, context):  # noqa: N802
        def work():
            config = json_format.ParseDict(self.models.config_of(request.name, request.version), config_pb.ModelConfig())
            return pb.ModelConfigResponse(config=config)

        return self._call("ModelConfig", context, work)

    # -- inference
    def ModelInfer(self, request, context):  # noqa: N802
        def work():
            pending = self._prepare(request)
            try:
                response = self._response(pending, self.models.run(pending, deadline_of(context)))
            except BaseException:
                pending.finish(False)
                raise
            pending.finish(True)
            self.metrics.frames.inc(len(pending.frames), model=pending.model.name)
            return response

        return self._call("ModelInfer", context, work)

    def _prepare(self, request) -> PendingInference:
        if not request.model_name:
            raise InvalidRequest("ModelInfer needs model_name")
        raw = request.raw_input_contents
        if raw and len(raw) != len(request.inputs):
            raise InvalidRequest(f"{len(raw)} raw_input_contents entries for {len(request.inputs)} inputs")
        tensors = [
            InputTensor(t.name, t.datatype, list(t.shape), raw=raw[i] if raw else None,
                        values=None if raw else t.contents.uint_contents)
            for i, t in enumerate(request.inputs)
        ]
        return self.models.prepare(request.model_name, request.model_version, tensors,
                                   [o.name for o in request.outputs], request.id)

    @staticmethod
    def _response(pending: PendingInference, outputs: dict) -> object:
        model = pending.model
        response = pb.ModelInferResponse(model_name=model.name, model_version=model.version, id=pending.request_id)
        for name, array in outputs.items():
            response.outputs.add(name=name, datatype="FP32", shape=list(array.shape))
            response.raw_output_contents.append(array.tobytes())
        return response

    def ModelStreamInfer(self, request_iterator, context):  # noqa: N802
        """Bidirectional: requests are read on a helper thread and batched with everything else;
        each answer carries its request's ``id`` and may arrive out of order. A request that fails
        yields ``error_message`` (naming the id) and the stream goes on. At most ``stream_window``
        requests of one stream are in flight; reading pauses beyond that (gRPC flow control)."""
        events: queue.SimpleQueue = queue.SimpleQueue()
        window = threading.Semaphore(self.config.stream_window)
        reader = threading.Thread(target=self._read_stream, args=(request_iterator, context, events, window),
                                  name="bugdet-oip-stream", daemon=True)
        reader.start()
        expected, produced = None, 0
        while expected is None or produced < expected:
            kind, *payload = events.get()
            if kind is _END:
                expected = payload[0]
                continue
            produced += 1
            window.release()
            yield self._stream_answer(kind, *payload)

    def _read_stream(self, request_iterator, context, events: queue.SimpleQueue, window: threading.Semaphore) -> None:
        submitted = 0
        try:
            for request in request_iterator:
                while not window.acquire(timeout=0.25):
                    if not context.is_active():
                        return
                submitted += 1
                started = time.perf_counter()
                try:
                    pending = self._prepare(request)
                    future = self.models.submit(pending, deadline_of(context))
                except Exception as exc:  # noqa: BLE001 - this request fails, the stream goes on
                    events.put((_FAILED, request, exc, started))
                    continue
                future.add_done_callback(lambda f, p=pending, t=started: self._resolved(events, p, f, t))
        except Exception:  # noqa: BLE001 - the client went away or cancelled; stop reading
            pass
        finally:
            events.put((_END, submitted))

    @staticmethod
    def _resolved(events: queue.SimpleQueue, pending: PendingInference, future, started: float) -> None:
        pending.timer.answered()  # now, not when the writer gets to it: the statistics' run lookup needs it
        events.put((_DONE, pending, future, started))

    def _stream_answer(self, kind, subject, payload, started: float):
        method = "ModelStreamInfer.request"
        if kind is _DONE:
            pending, future = subject, payload
            try:
                response = self._response(pending, pending.outputs(future.result()))
            except Exception as exc:  # noqa: BLE001 - reported in this answer
                pending.finish(False)
                request_id, model, error = pending.request_id, pending.model, exc
            else:
                pending.finish(True)
                self.metrics.frames.inc(len(pending.frames), model=pending.model.name)
                self.metrics.requests.inc(method=method, code="OK")
                self.metrics.latency.observe(time.perf_counter() - started, method=method)
                return pb.ModelStreamInferResponse(infer_response=response)
        else:
            request, error, model = subject, payload, None
            request_id = request.id
        code, message = status_for(error)
        self.metrics.requests.inc(method=method, code=code.name)
        answer = pb.ModelStreamInferResponse(error_message=f"request {echo(request_id)}: [{code.name}] {message}")
        answer.infer_response.id = request_id
        if model is not None:
            answer.infer_response.model_name, answer.infer_response.model_version = model.name, model.version
        return answer

    # -- statistics and repository
    def ModelStatistics(self, request, context):  # noqa: N802
        def work():
            rows = [stats.as_dict() for stats in self.models.stats(request.name, request.version)]
            return json_format.ParseDict({"model_stats": rows}, pb.ModelStatisticsResponse())

        return self._call("ModelStatistics", context, work)

    def RepositoryIndex(self, request, context):  # noqa: N802
        def work():
            response = pb.RepositoryIndexResponse()
            for entry in self.models.index(request.ready):
                response.models.add(name=entry.name, version=entry.version, state=entry.state, reason=entry.reason)
            return response

        return self._call("RepositoryIndex", context, work)

    def RepositoryModelLoad(self, request, context):  # noqa: N802
        def work():
            self.models.load(request.model_name)
            return pb.RepositoryModelLoadResponse()

        return self._call("RepositoryModelLoad", context, work)

    def RepositoryModelUnload(self, request, context):  # noqa: N802
        def work():
            self.models.unload(request.model_name)
            return pb.RepositoryModelUnloadResponse()

        return self._call("RepositoryModelUnload", context, work)
