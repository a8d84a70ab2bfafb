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
        if len(raw.data) > max_frame_bytes:
            raise InvalidRequest(f"{what}: {len(raw.data)} raw bytes exceed the {max_frame_bytes}-byte frame limit")
        if raw.format == pb.PIXEL_FORMAT_UNSPECIFIED:
            raise InvalidRequest(f"{what}: raw frame needs a pixel format (RGBA8, BGRA8 or RGB8)")
        rgb = decode_raw(raw.data, raw.width, raw.height, raw.stride, pb.PixelFormat.Name(raw.format), what)
    return fit_to_input(rgb, *model.input_hw)


def run_frames(batcher: DynamicBatcher, model: LoadedModel, frames: np.ndarray, deadline: float | None):
    """Submit and wait; raises QueueFull / DeadlineExceeded / TimeoutError for the caller to map."""
    future = batcher.submit(model, frames, deadline)
    timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
    try:
        return future.result(timeout=timeout)
    except BaseException:
        future.cancel()
        raise


def heatmap_box(heatmap: np.ndarray) -> tuple[float, float, float, float]:
    """Normalised box around the heatmap cells at or above half the peak (the bug's extent)."""
    mask = heatmap >= 0.5 * float(heatmap.max())
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    h, w = heatmap.shape
    return cols[0] / w, rows[0] / h, (cols[-1] + 1) / w, (rows[-1] + 1) / h


def fill_result(result, pb, model: LoadedModel, scores: np.ndarray, heatmaps: np.ndarray, include_heatmaps: bool) -> None:
    """Fill a bugdet.v1 FrameResult from one frame's model output."""
    manifest = model.manifest
    any_bug = False
    for index, bug in enumerate(manifest.bug_types):
        score = float(scores[index])
        threshold = manifest.thresholds[bug]
        is_bug = score >= threshold
        any_bug |= is_bug
        entry = result.scores.add(bug_type=bug, score=score, is_bug=is_bug, threshold=threshold)
        if is_bug:
            x0, y0, x1, y1 = heatmap_box(heatmaps[index])
            entry.box.x_min, entry.box.y_min, entry.box.x_max, entry.box.y_max = x0, y0, x1, y1
        if include_heatmaps:
            hm = heatmaps[index]
            entry.heatmap.height, entry.heatmap.width = hm.shape
            entry.heatmap.data = np.clip(np.rint(hm * 255.0), 0, 255).astype(np.uint8).tobytes()
    result.is_bug = any_bug
    result.model_name = manifest.name
    result.model_version = manifest.version
    result.server_time.GetCurrentTime()
