"""The ``bugdet.v1.Detection`` service: Detect, DetectStream, GetModelInfo, ReloadModels."""

from __future__ import annotations

import json
import queue
import threading
import time

import grpc
import numpy as np

from service import protos
from service.batcher import DynamicBatcher
from service.config import ServerConfig
from service.errors import InvalidRequest, status_for
from service.metrics import Metrics
from service.registry import ModelRegistry
from service.requests import deadline_of, fill_result, frame_pixels, run_frames

pb, pb_grpc = protos.detection()

_END = object()


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
            if not request.frames:
                raise InvalidRequest("Detect needs at least one frame")
            if len(request.frames) > self.config.max_frames_per_request:
                raise InvalidRequest(f"{len(request.frames)} frames in one request; at most {self.config.max_frames_per_request}")
            arrays = [
                frame_pixels(frame, pb, model, self.config.max_frame_bytes, f"frame {i} ({frame.id or 'no id'})")
                for i, frame in enumerate(request.frames)
            ]
            scores, heatmaps = run_frames(self.batcher, model, np.stack(arrays), deadline_of(context))
            response = pb.DetectResponse()
            for i, frame in enumerate(request.frames):
                result = response.results.add(id=frame.id)
                if frame.HasField("metadata"):
                    result.metadata.CopyFrom(frame.metadata)
                fill_result(result, pb, model, scores[i], heatmaps[i], request.include_heatmaps)
            self.metrics.frames.inc(len(arrays), model=model.name)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a status, never a crash
            code, message = status_for(exc)
            self._finish("Detect", started, code)
            context.abort(code, message)
        self._finish("Detect", started, grpc.StatusCode.OK)
        return response

    def DetectStream(self, request_iterator, context):  # noqa: N802
        """Read frames on a helper thread, answer as batches complete (matched by frame id).

        At most ``stream_window`` frames of one stream are in flight; reading pauses beyond that,
        which pushes back on the client through gRPC flow control instead of growing a queue.
        """
        started = time.perf_counter()
        results: queue.Queue = queue.Queue()
        window = threading.Semaphore(self.config.stream_window)
        reader = threading.Thread(target=self._read_stream, args=(request_iterator, context, results, window), daemon=True)
        reader.start()
        expected, produced = None, 0
        try:
            while expected is None or produced < expected:
                item = results.get()
                if isinstance(item, tuple):  # (_END, frames submitted): the client closed its side
                    expected = item[1]
                    continue
                produced += 1
                window.release()
                yield item
        finally:
            self._finish("DetectStream", started, grpc.StatusCode.OK if context.is_active() else grpc.StatusCode.CANCELLED)

    def _read_stream(self, request_iterator, context, results: queue.Queue, window: threading.Semaphore) -> None:
        submitted = 0
        try:
            for request in request_iterator:
                window.acquire()
                submitted += 1
                self._submit_stream_frame(request, context, results)
        except Exception:  # noqa: BLE001 - the client went away or cancelled; stop reading
            pass
        finally:
            results.put((_END, submitted))

    def _submit_stream_frame(self, request, context, results: queue.Queue) -> None:
        frame = request.frame
        started = time.perf_counter()

        def failed(exc: BaseException) -> None:
            code, message = status_for(exc)
            result = pb.FrameResult(id=frame.id)
            if frame.HasField("metadata"):
                result.metadata.CopyFrom(frame.metadata)
            result.error.code, result.error.message = code.value[0], message
            result.server_time.GetCurrentTime()
            self.metrics.requests.inc(method="DetectStream.frame", code=code.name)
            results.put(result)

        try:
            model = self.registry.get(request.model)
            pixels = frame_pixels(frame, pb, model, self.config.max_frame_bytes, f"frame {frame.id or 'no id'}")
            future = self.batcher.submit(model, pixels[None], deadline_of(context), wait_for_room=True)
        except Exception as exc:  # noqa: BLE001
            failed(exc)
            return

        def done(fut) -> None:
            try:
                scores, heatmaps = fut.result()
            except Exception as exc:  # noqa: BLE001
                failed(exc)
                return
            result = pb.FrameResult(id=frame.id)
            if frame.HasField("metadata"):
                result.metadata.CopyFrom(frame.metadata)
            fill_result(result, pb, model, scores[0], heatmaps[0], request.include_heatmaps)
            self.metrics.frames.inc(1, model=model.name)
            self.metrics.requests.inc(method="DetectStream.frame", code="OK")
            self.metrics.latency.observe(time.perf_counter() - started, method="DetectStream.frame")
            results.put(result)

        future.add_done_callback(done)

    def GetModelInfo(self, request, context):  # noqa: N802
        started = time.perf_counter()
        try:
            model = self.registry.get(request.model)
        except Exception as exc:  # noqa: BLE001
            code, message = status_for(exc)
            self._finish("GetModelInfo", started, code)
            context.abort(code, message)
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
