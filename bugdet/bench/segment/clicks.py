"""How well one click selects one object, measured against engine object-ID ground truth.

A QA tester clicks once on an object and expects that object. This benchmark plays that tester
fairly on frames of the playtest world (``bugdet.playtest``), whose object-ID maps are exact:

* the truth of an object is one connected part (8-connected) of one non-sky ID, as the tester
  sees it (a wall split by a tree is two objects); parts under ``min_fraction`` of the frame are
  skipped, because a click on a 10-pixel speck says more about the mouse than the segmenter;
* the click is a uniformly random pixel of the object's interior (the part eroded by
  ``CLICK_MARGIN`` pixels), drawn from a seeded generator, never its "best" pixel;
* the ``_with_background`` variant adds one negative point: a random pixel near the object
  (between ``CLICK_MARGIN`` and ``NEAR_PIXELS`` pixels outside it), where a tester clicks to take
  back a leak.

Frames come from held-out **test** seeds (``split.TEST_START`` and above) that no design was
tuned on; tuning used train seeds (see docs/review.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import cv2
import numpy as np

from bugdet.progress import NullProgress, Progress
from bugdet.segment.base import Predictor
from bugdet.segment.errors import NoMaskError
from bugdet.segment.quality import mask_iou

#: Interior margin (pixels) of a click and minimum gap of a background point from the object.
CLICK_MARGIN = 3
#: A background point lies at most this far (pixels) outside the object.
NEAR_PIXELS = 20
#: Objects below this fraction of the frame are not clicked (0.5% = 384 px at 320x240).
MIN_OBJECT_FRACTION = 0.005
#: Scenes and seeds of the held-out frames: first test seeds of each scene.
DEFAULT_SESSIONS = tuple((scene, 200_000 + k) for k in range(1, 5) for scene in ("park", "indoor"))
#: Frames taken from each session (indices), spread over its first seconds so views differ.
DEFAULT_FRAME_INDICES = (0, 20, 40, 60)


@dataclass
class Click:
    """One benchmark click: the frame, the truth mask, the object point and a nearby background point."""

    frame: int
    truth: np.ndarray
    point: tuple[float, float]
    background: tuple[float, float] | None
    object_id: int


def playtest_frames(
    sessions: Iterable[tuple[str, int]] = DEFAULT_SESSIONS,
    frame_indices: Iterable[int] = DEFAULT_FRAME_INDICES,
    width: int = 320,
    height: int = 240,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(rgb, ids) of the chosen frames of each playtest session, rendered in memory."""
    from bugdet.playtest.session import PlaytestSession, PlaytestSpec

    wanted = sorted(set(int(i) for i in frame_indices))
    for scene, seed in sessions:
        spec = PlaytestSpec(scene=scene, seed=int(seed), frames=wanted[-1] + 1, width=width, height=height)
        for result in PlaytestSession(spec).frames():
            if result.index in wanted:
                yield result.rgb, result.ids.astype(np.int32)


def object_parts(ids: np.ndarray, min_pixels: int, whole: bool = False) -> Iterator[tuple[int, np.ndarray]]:
    """(object id, mask) of every non-sky object with at least ``min_pixels``.

    ``whole``: an object is all pixels of its ID (the ground on both sides of the weapon is one
    ground); otherwise each connected part (8-connected) of an ID is an object of its own.
    """
    for object_id in np.unique(ids):
        if object_id == 0:
            continue
        if whole:
            mask = ids == object_id
            if np.count_nonzero(mask) >= min_pixels:
                yield int(object_id), mask
            continue
        count, labels, stats, _ = cv2.connectedComponentsWithStats((ids == object_id).astype(np.uint8), connectivity=8)
        for part in range(1, count):
            if stats[part, cv2.CC_STAT_AREA] >= min_pixels:
                yield int(object_id), labels == part


def _random_pixel(where: np.ndarray, rng: np.random.Generator) -> tuple[float, float] | None:
    ys, xs = np.nonzero(where)
    if xs.size == 0:
        return None
    k = int(rng.integers(xs.size))
    return float(xs[k]), float(ys[k])


def frame_clicks(
    ids: np.ndarray, frame: int, rng: np.random.Generator, min_fraction: float = MIN_OBJECT_FRACTION, whole: bool = False
) -> list[Click]:
    """One click per object part of the frame that has an interior (see the module docstring)."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * CLICK_MARGIN + 1,) * 2)
    near = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * NEAR_PIXELS + 1,) * 2)
    clicks = []
    for object_id, truth in object_parts(ids, int(min_fraction * ids.size), whole):
        body = truth.astype(np.uint8)
        point = _random_pixel(cv2.erode(np.pad(body, 1), kernel)[1:-1, 1:-1] > 0, rng)
        if point is None:
            continue  # a thin sliver (a fence rail): no pixel is safely inside it
        ring = (cv2.dilate(body, near) > 0) & ~(cv2.dilate(body, kernel) > 0)
        clicks.append(Click(frame, truth, point, _random_pixel(ring, rng), object_id))
    return clicks


def _iou_of(predict: Callable[[], tuple[np.ndarray, float]], truth: np.ndarray) -> float:
    try:
        mask, _ = predict()
    except NoMaskError:
        return 0.0
    return mask_iou(mask, truth)


def summarise(ious: list[float], suffix: str = "") -> dict[str, float]:
    """Median and mean IoU and the share of clicks at IoU >= 0.5, keys ending in ``suffix``."""
    values = np.asarray(ious, dtype=np.float64)
    return {
        f"point_prompt_iou_median{suffix}": round(float(np.median(values)), 4) if values.size else 0.0,
        f"point_prompt_iou_mean{suffix}": round(float(values.mean()), 4) if values.size else 0.0,
        f"point_prompt_iou_ge_0_5{suffix}": round(float((values >= 0.5).mean()), 4) if values.size else 0.0,
    }


def measure_point_prompts(
    predictor: Predictor,
    frames: Iterable[tuple[np.ndarray, np.ndarray]],
    seed: int = 0,
    progress: Progress | None = None,
    total_frames: int | None = None,
) -> dict:
    """IoU of single-click masks (and of click + background point) against the ID-map truth.

    Returns ``point_prompt_iou_median``, ``point_prompt_iou_ge_0_5`` (share of clicks at IoU >=
    0.5), their means, the same three ``..._with_background`` over the clicks that have a
    background point nearby, the click counts, and per-click milliseconds.
    """
    import time

    progress = progress or NullProgress()
    progress.start("point prompts", total_frames)
    rng = np.random.default_rng(seed)
    single: list[float] = []
    with_background: list[float] = []
    per_category: dict[str, list[float]] = {}
    n_frames = 0
    seconds = 0.0
    for index, (rgb, ids) in enumerate(frames):
        predictor.set_image(rgb)
        n_frames += 1
        for click in frame_clicks(ids, index, rng):
            started = time.perf_counter()
            iou = _iou_of(lambda: predictor.predict(points=[click.point], labels=[1]), click.truth)
            seconds += time.perf_counter() - started
            single.append(iou)
            per_category.setdefault("weapon" if click.object_id == 65000 else "world", []).append(iou)
            if click.background is not None:
                with_background.append(
                    _iou_of(lambda: predictor.predict(points=[click.point, click.background], labels=[1, 0]), click.truth)
                )
        progress.advance(1)
    result = {
        "point_prompt_frames": n_frames,
        "point_prompt_clicks": len(single),
        "point_prompt_clicks_with_background": len(with_background),
        "point_prompt_ms": round(1000 * seconds / max(1, len(single)), 2),
        **summarise(single),
        **summarise(with_background, "_with_background"),
        "point_prompt_iou_median_by_kind": {k: round(float(np.median(v)), 4) for k, v in sorted(per_category.items())},
        "point_prompt_seed": seed,
    }
    return result
