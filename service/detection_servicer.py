"""The ``bugdet.v1.Detection`` service: Detect, DetectStream, GetModelInfo, ReloadModels."""

from __future__ import annotations

import json
import queue
import threading
import time

import grpc

from service import protos
from service.batcher import DynamicBatcher
from service.config import ServerConfig
from service.errors import InvalidRequest, abort, status_for
from service.metrics import Metrics
from service.registry import ModelRegistry
from service.requests import deadline_of, fill_result, frame_name, prepare_frames, run_frames

pb, pb_grpc = protos.detection()

_END, _DONE, _FAILED = object(), object(), object()  # DetectStream event kinds


class DetectionServicer(pb_grpc.DetectionServicer):
    def __init__(self, registry: ModelRegistry, batcher: DynamicBatcher, metrics: Metrics, config: ServerConfig):
        self.registry, self.batcher, self.metrics, self.config = registry, batcher, metrics, config

    def _finish(self, method: str, started: float, code: grpc.StatusCode) -> None:
        self.metrics.requests.inc(method=method, code=code.name)
        self.metrics.latency.observe(time.perf_counter() - started, method=method)

    def Detect(self, request, context):  # noqa: N802 - gRPC method names
        started = time.perf_counter()
        try:
            model = self.registry.get(request.model)
            frames = request.frames
            if not frames:
                raise InvalidRequest("Detect needs at least one frame")
            if len(frames) > self.config.max_frames_per_request:
                raise InvalidRequest(f"{len(frames)} frames in one request; at most {self.config.max_frames_per_request}")
            deadline = deadline_of(context)
            batch = prepare_frames(frames, pb, model, self.config, deadline, [frame_name(f, i) for i, f in enumerate(frames)])
            decoded = time.perf_counter()
            self.metrics.stage_seconds.observe(decoded - started, stage="decode")
            scores, heatmaps = run_frames(self.batcher, model, batch, deadline)
            inferred = time.perf_counter()
            response = pb.DetectResponse()
            for i, frame in enumerate(request.frames):
                result = response.results.add(id=frame.id)
                if frame.HasField("metadata"):
                    result.metadata.CopyFrom(frame.metadata)
                fill_result(result, pb, model, scores[i], heatmaps[i], request.include_heatmaps)
            self.metrics.stage_seconds.observe(time.perf_counter() - inferred, stage="respond")
            self.metrics.frames.inc(len(batch), model=model.name)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status, never a crash
            code, message = status_for(exc)
            self._finish("Detect", started, code)
            abort(context, code, message)
        self._finish("Detect", started, grpc.StatusCode.OK)
        return response

    def DetectStream(self, request_iterator, context):  # noqa: N802
        """Read frames on a helper thread, answer as batches complete (matched by frame id).

        The batch worker only hands finished futures back (a queue put); results are built here,
        on the RPC's own thread, so building protobufs overlaps the next batch's inference instead
        of delaying it. At most ``stream_window`` frames of one stream are in flight; reading
        pauses beyond that, which pushes back on the client through gRPC flow control.
        """
        started = time.perf_counter()
        events: queue.SimpleQueue = queue.SimpleQueue()
        window = threading.Semaphore(self.config.stream_window)
        reader = threading.Thread(target=self._read_stream, args=(request_iterator, context, events, window), daemon=True)
        reader.start()
        expected, produced = None, 0
        try:
            while expected is None or produced < expected:
                kind, *payload = events.get()
                if kind is _END:  # the client closed its side after `payload[0]` frames
                    expected = payload[0]
                    continue
                produced += 1
                window.release()
                yield self._stream_result(kind, *payload)
        finally:
            self._finish("DetectStream", started, grpc.StatusCode.OK if context.is_active() else grpc.StatusCode.CANCELLED)

    def _read_stream(self, request_iterator, context, events: queue.SimpleQueue, window: threading.Semaphore) -> None:
        submitted = 0
        try:
            for request in request_iterator:
                while not window.acquire(timeout=0.25):
                    if not context.is_active():  # cancelled while the window was full
                        return
                submitted += 1
                started = time.perf_counter()
                try:
                    model = self.registry.get(request.model)
                    deadline = deadline_of(context)
                    pixels = prepare_frames([request.frame], pb, model, self.config, deadline, [frame_name(request.frame)])
                    self.metrics.stage_seconds.observe(time.perf_counter() - started, stage="decode")
                    future = self.batcher.submit(model, pixels, deadline, wait_for_room=True)
                except Exception as exc:  # noqa: BLE001 - this frame fails, the stream goes on
                    events.put((_FAILED, request, exc, started))
                    continue
                future.add_done_callback(lambda f, r=request, m=model, t=started: events.put((_DONE, r, m, f, t)))
        except Exception:  # noqa: BLE001 - the client went away or cancelled; stop reading
            pass
        finally:
            events.put((_END, submitted))

    def _stream_result(self, kind, request, *payload):
        frame = request.frame
        result = pb.FrameResult(id=frame.id)
        if frame.HasField("metadata"):
            result.metadata.CopyFrom(frame.metadata)
        if kind is _DONE:
            model, future, started = payload
            error = future.exception()
            if error is None:
                scores, heatmaps = future.result()
                building = time.perf_counter()
                fill_result(result, pb, model, scores[0], heatmaps[0], request.include_heatmaps)
                self.metrics.stage_seconds.observe(time.perf_counter() - building, stage="respond")
                self.metrics.frames.inc(1, model=model.name)
                self.metrics.requests.inc(method="DetectStream.frame", code="OK")
                self.metrics.latency.observe(time.perf_counter() - started, method="DetectStream.frame")
                return result
        else:
            error, started = payload
        code, message = status_for(error)
        result.error.code, result.error.message = code.value[0], message
        result.server_time.GetCurrentTime()
        self.metrics.requests.inc(method="DetectStream.frame", code=code.name)
        return result

    def GetModelInfo(self, request, context):  # noqa: N802
        started = time.perf_counter()
        try:
            model = self.registry.get(request.model)
        except Exception as exc:  # noqa: BLE001
            code, message = status_for(exc)
            self._finish("GetModelInfo", started, code)
            abort(context, code, message)
        m = model.manifest
        info = pb.ModelInfo(
            name=m.name, version=m.version, bug_types=list(m.bug_types), thresholds=m.thresholds,
            input_height=m.input.height, input_width=m.input.width,
            heatmap_height=m.heatmap_size[0], heatmap_width=m.heatmap_size[1],
            manifest_json=json.dumps(m.raw), available_models=sorted(x.key for x in self.registry.models()),
            execution_provider=model.provider, max_batch_size=self.batcher.max_batch,
        )
        info.loaded_at.FromNanoseconds(int(model.loaded_at * 1e9))
        self._finish("GetModelInfo", started, grpc.StatusCode.OK)
        return info

    def ReloadModels(self, request, context):  # noqa: N802
        started = time.perf_counter()
        report = self.registry.scan()
        self._finish("ReloadModels", started, grpc.StatusCode.OK)
        return pb.ReloadModelsResponse(loaded=report.loaded, refused=report.refused, serving=report.serving)
