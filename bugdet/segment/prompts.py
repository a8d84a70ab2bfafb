"""Geometry prompts (points with positive/negative labels, one box) and their validation.

Prompts arrive from people (the CLI, the review app), so every backend validates them the same
way here and reports a bad prompt as a :class:`PromptError` naming the offending value instead
of failing somewhere inside OpenCV or torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from bugdet.segment.errors import PromptError

Point = tuple[float, float]
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Prompt:
    """Validated prompt in pixel coordinates of the image it was made on.

    ``points`` is Nx2 float (x, y), ``labels`` N ints (1 = object, 0 = background), ``box`` is
    (x0, y0, x1, y1) with x0 < x1, y0 < y1, or None.
    """

    points: np.ndarray
    labels: np.ndarray
    box: Box | None

    @property
    def positive(self) -> np.ndarray:
        return self.points[self.labels == 1]

    @property
    def negative(self) -> np.ndarray:
        return self.points[self.labels == 0]

    def to_meta(self) -> dict:
        """JSON-able description, stored with a saved prompt mask so a reviewer can redo it."""
        return {
            "points": [[float(x), float(y)] for x, y in self.points],
            "labels": [int(v) for v in self.labels],
            "box": None if self.box is None else [float(v) for v in self.box],
        }


def make_prompt(
    image_shape: tuple[int, ...],
    points: Sequence[Sequence[float]] | np.ndarray | None = None,
    labels: Sequence[int] | np.ndarray | None = None,
    box: Sequence[float] | None = None,
) -> Prompt:
    """Validate raw prompt values against an image of ``image_shape`` (H, W[, C]).

    Points without labels are all positive. A prompt needs at least one positive point or a box:
    negative points alone do not say which object is meant.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    pts = np.zeros((0, 2), dtype=np.float64) if points is None else np.asarray(points, dtype=np.float64)
    if pts.size == 0:
        pts = np.zeros((0, 2), dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise PromptError(f"points must be a list of (x, y) pairs, got shape {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise PromptError("points contain NaN or infinite coordinates")
    if labels is None:
        labs = np.ones(len(pts), dtype=np.int64)
    else:
        labs = np.asarray(labels).astype(np.int64).reshape(-1)
        if len(labs) != len(pts):
            raise PromptError(f"{len(pts)} points but {len(labs)} labels")
        bad = set(labs.tolist()) - {0, 1}
        if bad:
            raise PromptError(f"point labels must be 1 (object) or 0 (background), got {sorted(bad)}")
    for (x, y) in pts:
        if not (0 <= x < width and 0 <= y < height):
            raise PromptError(f"point ({x:g}, {y:g}) is outside the {width}x{height} image")
    checked_box: Box | None = None
    if box is not None:
        values = [float(v) for v in box]
        if len(values) != 4 or not all(np.isfinite(values)):
            raise PromptError(f"box must be four finite numbers (x0, y0, x1, y1), got {list(box)!r}")
        x0, y0, x1, y1 = values
        if x1 <= x0 or y1 <= y0:
            raise PromptError(f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) must have x0 < x1 and y0 < y1")
        cx0, cy0, cx1, cy1 = max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1)
        if cx1 - cx0 < 2 or cy1 - cy0 < 2:
            raise PromptError(f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) does not overlap the {width}x{height} image")
        checked_box = (cx0, cy0, cx1, cy1)
    if checked_box is None and not np.any(labs == 1):
        raise PromptError("a prompt needs at least one positive point or a box")
    return Prompt(points=pts, labels=labs, box=checked_box)


#: A prompt mask covering more than this share of its frame is flagged: one clicked object almost
#: never fills half the frame, while a leaked region (sky + ground + trees) does.
LARGE_MASK_FRACTION = 0.5
#: Roles whose masks later stages trust blindly: a frame-filling weapon mask would teach FPPC
#: training that the whole frame is the weapon.
GUARDED_ROLES = ("weapon",)


class FrameFillingMaskError(PromptError):
    """A frame-filling prompt mask was about to be saved for a guarded role without confirmation."""


def frame_fraction(mask: np.ndarray) -> float:
    """Share of the frame a mask covers."""
    return float(np.count_nonzero(mask)) / float(mask.size) if mask.size else 0.0


def is_frame_filling(mask: np.ndarray) -> bool:
    return frame_fraction(mask) > LARGE_MASK_FRACTION


def check_role_mask(mask: np.ndarray, role: str | None, confirmed: bool, how_to_confirm: str) -> None:
    """Refuse a frame-filling mask for a guarded role (``weapon``) unless the tester confirmed it.

    ``how_to_confirm`` finishes the message: the CLI says ``--force``, the API ``"confirm": true``.
    """
    if role in GUARDED_ROLES and not confirmed and is_frame_filling(mask):
        raise FrameFillingMaskError(
            f"the mask covers {100 * frame_fraction(mask):.0f}% of the frame, which is almost never one {role}; "
            f"add a background point or draw a box, or {how_to_confirm} to save it as the {role} mask anyway"
        )
