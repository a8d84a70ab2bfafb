"""Work shared by the bugdet.v1 and KServe v2 servicers: frame preparation, batching, results."""

from __future__ import annotations

import time

import numpy as np

from service.batcher import DynamicBatcher
from service.errors import InvalidRequest
from service.frames import decode_encoded, decode_raw, fit_to_input
from service.runtime import LoadedModel

NO_DEADLINE = 1e6  # grpc reports "no deadline" as a huge time_remaining


def deadline_of(context) -> float | None:
    remaining = context.time_remaining()
    if remaining is None or remaining > NO_DEADLINE:
        return None
    return time.monotonic() + remaining


def frame_pixels(frame, pb, model: LoadedModel, max_frame_bytes: int, what: str) -> np.ndarray:
    """A bugdet.v1 Frame -> uint8 [H, W, 3] at the model's input size."""
    kind = frame.WhichOneof("pixels")
    if kind is None:
        raise InvalidRequest(f"{what}: no pixels (set `encoded` or `raw`)")
    if kind == "encoded":
        if len(frame.encoded) > max_frame_bytes:
            raise InvalidRequest(f"{what}: {len(frame.encoded)} encoded bytes exceed the {max_frame_bytes}-byte frame limit")
        rgb = decode_encoded(frame.encoded, what)
    else:
        raw = frame.raw
        data = raw.data  # each access copies the bytes out of the message: read them once
        if len(data) > max_frame_bytes:
            raise InvalidRequest(f"{what}: {len(data)} raw bytes exceed the {max_frame_bytes}-byte frame limit")
        if raw.format == pb.PIXEL_FORMAT_UNSPECIFIED:
            raise InvalidRequest(f"{what}: raw frame needs a pixel format (RGBA8, BGRA8 or RGB8)")
        rgb = decode_raw(data, raw.width, raw.height, raw.stride, pb.PixelFormat.Name(raw.format), what)
    return fit_to_input(rgb, *model.input_hw)


def run_frames(batcher: DynamicBatcher, model: LoadedModel, frames: np.ndarray, deadline: float | None):
    """Infer and wait; raises QueueFull / DeadlineExceeded / TimeoutError for the caller to map."""
    return batcher.run(model, frames, deadline)


def heatmap_boxes(heatmaps: np.ndarray) -> np.ndarray:
    """Normalised boxes [T, 4] (x_min, y_min, x_max, y_max) around the cells of each map at or
    above half its peak: the bug's extent. Vectorised over types (this runs once per frame)."""
    t, h, w = heatmaps.shape
    mask = heatmaps >= 0.5 * heatmaps.reshape(t, -1).max(axis=1)[:, None, None]
    rows, cols = mask.any(axis=2), mask.any(axis=1)
    y0, x0 = rows.argmax(axis=1), cols.argmax(axis=1)
    y1, x1 = h - rows[:, ::-1].argmax(axis=1), w - cols[:, ::-1].argmax(axis=1)
    return np.stack([x0 / w, y0 / h, x1 / w, y1 / h], axis=1)


def verdicts(manifest, scores: np.ndarray, heatmaps: np.ndarray) -> tuple[list[bool], list[list[float]] | None]:
    """One frame's decision: a bug flag per type (score >= its threshold) and, when anything is
    flagged, the normalised boxes [T][4]. This is the post-processing an engine plugin running the
    model in-process would do too, which is why the benchmark's in-process side calls it."""
    flags = [float(score) >= manifest.thresholds[bug] for bug, score in zip(manifest.bug_types, scores)]
    return flags, (heatmap_boxes(heatmaps).tolist() if any(flags) else None)


def fill_result(result, pb, model: LoadedModel, scores: np.ndarray, heatmaps: np.ndarray, include_heatmaps: bool) -> None:
    """Fill a bugdet.v1 FrameResult from one frame's model output."""
    manifest = model.manifest
    flags, boxes = verdicts(manifest, scores, heatmaps)
    for index, bug in enumerate(manifest.bug_types):
        entry = result.scores.add(bug_type=bug, score=float(scores[index]), is_bug=flags[index], threshold=manifest.thresholds[bug])
        if flags[index]:
            x0, y0, x1, y1 = boxes[index]
            entry.box.x_min, entry.box.y_min, entry.box.x_max, entry.box.y_max = x0, y0, x1, y1
        if include_heatmaps:
            hm = heatmaps[index]
            entry.heatmap.height, entry.heatmap.width = hm.shape
            entry.heatmap.data = np.clip(np.rint(hm * 255.0), 0, 255).astype(np.uint8).tobytes()
    result.is_bug = any(flags)
    result.model_name = manifest.name
    result.model_version = manifest.version
    result.server_time.GetCurrentTime()
