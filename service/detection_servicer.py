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
from service.requests import (
    deadline_of,
    fill_result,
    frame_name,
    prepare_frames,
    run_frames,
)
from service.temporal import TemporalWindow, check_window

pb, pb_grpc = protos.detection()

_END, _DONE, _FAILED = object(), object(), object()  # DetectStream event kinds


class _StreamWindows:
    """One DetectStream's temporal windows: one :class:`TemporalWindow` per model package and
    session (FrameMetadata.session; empty when unset), so frames of different models or sessions
    multiplexed on one stream never count towards each other. Used from the RPC's thread only."""

    def __init__(self, frames: int, min_hits: int):
        self.frames, self.min_hits = frames, min_hits
        self._windows: dict[tuple[str, str], TemporalWindow] = {}

    def flags(self, model, session: str, scores) -> list[bool]:
        """This frame's windowed flag per bug type of ``model`` (in the manifest's order)."""
        key = (model.key, session)
        temporal = self._windows.get(key)
        if temporal is None:
            temporal = self._windows[key] = TemporalWindow(self.frames, self.min_hits)
        manifest = model.manifest
        windowed = temporal.update_scores(dict(zip(manifest.bug_types, scores)), manifest.thresholds)
        return [windowed[bug] for bug in manifest.bug_types]


class DetectionServicer(pb_grpc.DetectionServicer):
    def __init__(self, registry: ModelRegistry, batcher: DynamicBatcher, metrics: Metrics, config: ServerConfig):
        check_window(config.flag_window, config.flag_window_min)
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

        With the temporal window on (``flag_window`` > 1, service/temporal.py) each frame's flags
        depend on the frames sent before it, so results leave in the order the client sent the
        frames: one that completes early waits (still counted in flight) until every earlier frame
        has been answered. Off, results leave as they complete.
        """
        started = time.perf_counter()
        events: queue.SimpleQueue = queue.SimpleQueue()
        in_flight = threading.Semaphore(self.config.stream_window)
        reader = threading.Thread(target=self._read_stream, args=(request_iterator, context, events, in_flight), daemon=True)
        reader.start()
        temporal = _StreamWindows(self.config.flag_window, self.config.flag_window_min) if self.config.flag_window > 1 else None
        held: dict[int, tuple] = {}  # temporal window on: finished frames waiting for an earlier one, by send index
        expected, produced = None, 0
        try:
            while expected is None or produced < expected:
                kind, index, *payload = events.get()
                if kind is _END:  # the client closed its side after `index` frames
                    expected = index
                    continue
                if temporal is None:
                    produced += 1
                    in_flight.release()
                    yield self._stream_result(kind, *payload)
                    continue
                held[index] = (kind, *payload)
                while produced in held:  # send order: `produced` is the index of the next frame to answer
                    ready = held.pop(produced)
                    produced += 1
                    in_flight.release()
                    yield self._stream_result(*ready, temporal=temporal)
        finally:
            self._finish("DetectStream", started, grpc.StatusCode.OK if context.is_active() else grpc.StatusCode.CANCELLED)

    def _read_stream(self, request_iterator, context, events: queue.SimpleQueue, in_flight: threading.Semaphore) -> None:
        submitted = 0
        try:
            for request in request_iterator:
                while not in_flight.acquire(timeout=0.25):
                    if not context.is_active():  # cancelled while the window was full
                        return
                index = submitted  # the frame's place in the order the client sent it
                submitted += 1
                started = time.perf_counter()
                try:
                    model = self.registry.get(request.model)
                    deadline = deadline_of(context)
                    pixels = prepare_frames([request.frame], pb, model, self.config, deadline, [frame_name(request.frame)])
                    self.metrics.stage_seconds.observe(time.perf_counter() - started, stage="decode")
                    future = self.batcher.submit(model, pixels, deadline, wait_for_room=True)
                except Exception as exc:  # noqa: BLE001 - this frame fails, the stream goes on
                    events.put((_FAILED, index, request, exc, started))
                    continue
                future.add_done_callback(lambda f, i=index, r=request, m=model, t=started: events.put((_DONE, i, r, m, f, t)))
        except Exception:  # noqa: BLE001 - the client went away or cancelled; stop reading
            pass
        finally:
            events.put((_END, submitted))

    def _stream_result(self, kind, request, *payload, temporal: _StreamWindows | None = None):
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
                flags = None if temporal is None else temporal.flags(model, frame.metadata.session, scores[0])
                fill_result(result, pb, model, scores[0], heatmaps[0], request.include_heatmaps, flags)
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
