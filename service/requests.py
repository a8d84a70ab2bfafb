"""Work shared by the bugdet.v1 and KServe v2 servicers: frame preparation, batching, results."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.batcher import DeadlineExceeded, DynamicBatcher
from service.config import ServerConfig
from service.echo import echo
from service.errors import InvalidRequest
from service.frames import declared_size, decode_encoded, decode_raw, fit_to_input
from service.runtime import LoadedModel

NO_DEADLINE = 1e6  # grpc reports "no deadline" as a huge time_remaining


def deadline_of(context) -> float | None:
    remaining = context.time_remaining()
    if remaining is None or remaining > NO_DEADLINE:
        return None
    return time.monotonic() + remaining


@dataclass(frozen=True)
class _Checked:
    """A frame that passed every check that needs no decoding."""

    what: str
    kind: str  # "encoded" or "raw"
    data: bytes  # read once: each access to a bytes field copies it out of the message
    width: int
    height: int


def _check_frame(frame, pb, max_frame_bytes: int, what: str) -> _Checked:
    """Geometry, format and size as the frame declares them (raw fields or the PNG/JPEG header);
    every malformed case raises here, before any work is spent on it."""
    kind = frame.WhichOneof("pixels")
    if kind is None:
        raise InvalidRequest(f"{what}: no pixels (set `encoded` or `raw`)")
    data = frame.encoded if kind == "encoded" else frame.raw.data
    if len(data) > max_frame_bytes:
        raise InvalidRequest(f"{what}: {len(data)} {kind} bytes exceed the {max_frame_bytes}-byte frame limit")
    if kind == "encoded":
        return _Checked(what, kind, data, *declared_size(data, what))
    raw = frame.raw
    if raw.format == pb.PIXEL_FORMAT_UNSPECIFIED:
        raise InvalidRequest(f"{what}: raw frame needs a pixel format (RGBA8, BGRA8 or RGB8)")
    if raw.format not in pb.PixelFormat.values():  # proto3 enums are open: any int32 arrives
        raise InvalidRequest(f"{what}: unknown raw pixel format {raw.format} (expected RGBA8 = 1, BGRA8 = 2 or RGB8 = 3)")
    return _Checked(what, kind, data, raw.width, raw.height)


def check_pixels(frames: list[_Checked], config: ServerConfig) -> None:
    """Refuse frames above ``max_pixels`` and requests above ``max_request_pixels``, from the
    declared sizes alone: a 200 KB PNG declaring 8192x8192 costs ~2 s of CPU to decode."""
    for f in frames:
        if f.width * f.height > config.max_pixels:
            raise InvalidRequest(f"{f.what}: {f.width}x{f.height} = {f.width * f.height} pixels exceeds the server's "
                                 f"--max-pixels {config.max_pixels}")
    total = sum(f.width * f.height for f in frames)
    if total > config.max_request_pixels:
        raise InvalidRequest(f"{len(frames)} frames of {total} pixels in all exceed the server's --max-request-pixels "
                             f"{config.max_request_pixels}; send fewer or smaller frames per request")


def check_deadline(deadline: float | None, stage: str) -> None:
    if deadline is not None and deadline <= time.monotonic():
        raise DeadlineExceeded(f"deadline passed {stage}")


def prepare_frames(frames, pb, model: LoadedModel, config: ServerConfig, deadline: float | None, whats: list[str]) -> np.ndarray:
    """bugdet.v1 Frames -> uint8 [N, H, W, 3] at the model's input size.

    Every frame is checked (format, declared geometry, byte and pixel limits) before the first is
    decoded, and the deadline before each decode, so a request that cannot succeed costs nothing.
    ``whats`` names each frame in error messages.
    """
    checked = [_check_frame(frame, pb, config.max_frame_bytes, what) for frame, what in zip(frames, whats)]
    check_pixels(checked, config)
    arrays = []
    for frame, f in zip(frames, checked):
        check_deadline(deadline, "before decoding")
        if f.kind == "encoded":
            rgb = decode_encoded(f.data, f.what)
        else:
            raw = frame.raw
            rgb = decode_raw(f.data, raw.width, raw.height, raw.stride, pb.PixelFormat.Name(raw.format), f.what)
        arrays.append(fit_to_input(rgb, *model.input_hw))
    return arrays[0][None] if len(arrays) == 1 else np.stack(arrays)  # a lone frame needs no copy


def frame_name(frame, index: int | None = None) -> str:
    """How error messages name a frame: its position and its (capped) id."""
    ident = echo(frame.id) if frame.id else "no id"
    return f"frame {ident}" if index is None else f"frame {index} ({ident})"


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


def fill_result(result, pb, model: LoadedModel, scores: np.ndarray, heatmaps: np.ndarray, include_heatmaps: bool,
                flags: Sequence[bool] | None = None) -> None:
    """Fill a bugdet.v1 FrameResult from one frame's model output.

    ``flags`` (one per bug type) replaces the per-frame decisions, e.g. a temporal window's
    (service/temporal.py); the scores and thresholds reported stay the frame's own."""
    manifest = model.manifest
    if flags is None:
        flags, boxes = verdicts(manifest, scores, heatmaps)
    else:
        flags = [bool(f) for f in flags]
        boxes = heatmap_boxes(heatmaps).tolist() if any(flags) else None
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
