"""Where the bug is on a labeled bug frame: the tester's box, a difference, or the whole frame.

A studio's labeled bug frame becomes a paste source only for the part of it that shows the bug.
Three answers, best first:

- ``box``: the tester drew one (``frame_labels.box``);
- ``difference``: the frame differs from the nearest clean frame of the same capture in one
  plausible region (a bug that appears while the view barely moves: a texture that failed to
  stream, a flickering surface). The absolute difference is thresholded and cleaned up with
  morphology, and kept only when it is plausible: neither specks nor most of the frame, and
  compact rather than scattered (a scattered difference is the camera moving, not a bug);
- ``whole``: the whole frame (black or corrupted frames, a low-res frame, camera clipping that
  fills the view, and whatever the first two could not place).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import cv2
import numpy as np

RegionOrigin = Literal["box", "difference", "whole"]


@dataclass(frozen=True)
class RegionFinding:
    """How a difference becomes a bug region, and when it is not believed."""

    threshold: float = 24.0  # grey levels: max over channels of |bug - clean| after a slight blur
    blur_sigma: float = 1.0  # px: suppresses compression noise and one-pixel aliasing shimmer
    open_px: int = 3  # opening removes isolated specks
    close_px: int = 9  # closing joins the pieces of one region
    min_component_fraction: float = 0.0005  # of the frame: smaller components are noise
    min_fraction: float = 0.001  # of the frame: a smaller region is noise, not a bug
    max_fraction: float = 0.6  # of the frame: a larger difference is a cut or the camera moving
    min_fill: float = 0.15  # region area / its bounding box: lower is scattered (camera motion)
    margin_px: int = 2  # the region grows by this much, so the bug's anti-aliased edge comes along

    def __post_init__(self) -> None:
        if not 0 <= self.min_fraction < self.max_fraction <= 1:
            raise ValueError("min_fraction and max_fraction must satisfy 0 <= min < max <= 1")
        if self.threshold <= 0:
            raise ValueError("threshold must be positive")


@dataclass
class BugRegion:
    mask: np.ndarray  # HxW bool over the bug frame
    origin: RegionOrigin


def box_mask(shape: tuple[int, int], box: Sequence[int] | None) -> np.ndarray | None:
    """The tester's box ``[x0, y0, x1, y1]`` (pixels, clipped to the frame) as a mask; None when
    there is no box or nothing of it lies on the frame."""
    if box is None or len(box) != 4:
        return None
    H, W = shape
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, x1 = max(0, min(x0, x1)), min(W, max(x0, x1))
    y0, y1 = max(0, min(y0, y1)), min(H, max(y0, y1))
    if x1 <= x0 or y1 <= y0:
        return None
    mask = np.zeros((H, W), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _disk(px: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))


def difference_mask(bug: np.ndarray, clean: np.ndarray, p: RegionFinding = RegionFinding()) -> np.ndarray | None:
    """Where ``bug`` differs from ``clean`` (same capture, nearest clean frame), cleaned up; None
    when the difference is not a plausible bug region."""
    if clean.shape[:2] != bug.shape[:2]:
        clean = cv2.resize(clean, (bug.shape[1], bug.shape[0]), interpolation=cv2.INTER_AREA)
    a, b = bug.astype(np.float32), clean.astype(np.float32)
    if p.blur_sigma > 0:
        a, b = cv2.GaussianBlur(a, (0, 0), p.blur_sigma), cv2.GaussianBlur(b, (0, 0), p.blur_sigma)
    diff = np.abs(a - b).max(axis=2)
    mask = (diff > p.threshold).astype(np.uint8)
    if p.open_px > 0:
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, _disk(p.open_px // 2 or 1))
    if p.close_px > 0:
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, _disk(p.close_px // 2 or 1))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    area = mask.size
    keep = [k for k in range(1, count) if stats[k, cv2.CC_STAT_AREA] >= p.min_component_fraction * area]
    if not keep:
        return None
    region = np.isin(labels, keep)
    if p.margin_px > 0:
        region = cv2.dilate(region.astype(np.uint8), _disk(p.margin_px)).astype(bool)
    fraction = float(region.mean())
    if not p.min_fraction <= fraction <= p.max_fraction:
        return None
    ys, xs = np.nonzero(region)
    box_area = float((xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1))
    if region.sum() / box_area < p.min_fill:
        return None
    return region


def find_region(
    bug: np.ndarray, box: Sequence[int] | None, clean_same_capture: np.ndarray | None,
    p: RegionFinding = RegionFinding(),
) -> BugRegion:
    """The bug region of a labeled bug frame: box, else difference from the nearest clean frame
    of its capture, else the whole frame."""
    shape = bug.shape[:2]
    mask = box_mask(shape, box)
    if mask is not None:
        return BugRegion(mask, "box")
    if clean_same_capture is not None:
        mask = difference_mask(bug, clean_same_capture, p)
        if mask is not None:
            return BugRegion(mask, "difference")
    return BugRegion(np.ones(shape, dtype=bool), "whole")
