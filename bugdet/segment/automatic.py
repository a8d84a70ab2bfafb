"""Automatic mode: a uniform grid of point prompts -> candidates -> filters -> mask NMS.

The same recipe as SAM's automatic mask generator, written against :class:`Predictor` so it
drives any backend: the OpenCV predictor answers each grid point with one region per tolerance
level, SAM with its three multimask outputs.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from bugdet.segment.base import Candidate, Predictor
from bugdet.segment.config import SegmentConfig
from bugdet.segment.errors import NoMaskError
from bugdet.segment.quality import nms


def point_grid(height: int, width: int, points_per_side: int) -> np.ndarray:
    """Cell-centred grid with ``points_per_side`` points along the longer side and square cells."""
    spacing = max(height, width) / points_per_side
    nx = max(1, int(round(width / spacing)))
    ny = max(1, int(round(height / spacing)))
    xs = (np.arange(nx) + 0.5) * (width / nx)
    ys = (np.arange(ny) + 0.5) * (height / ny)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


class AutomaticMaskGenerator:
    """Whole-frame segmentation without prompts, configured by the ``segment:`` section."""

    def __init__(self, predictor: Predictor, cfg: SegmentConfig | None = None, points_per_batch: int = 256):
        self.predictor = predictor
        self.cfg = cfg or SegmentConfig()
        self.points_per_batch = points_per_batch

    def generate(self, rgb: np.ndarray, extra_points: Sequence[Sequence[float]] | None = None) -> list[Candidate]:
        """Masks of one frame, best first.

        ``extra_points`` are added to the grid (e.g. one point inside each engine object).
        Raises :class:`EmptyFrameError` for a uniform frame and :class:`NoMaskError` when no
        candidate passes the filters.
        """
        self.predictor.set_image(rgb)
        height, width = rgb.shape[:2]
        points = point_grid(height, width, self.cfg.points_per_side)
        if extra_points is not None and len(extra_points):
            points = np.concatenate([points, np.asarray(extra_points, dtype=np.float64).reshape(-1, 2)])
        area_range = self.area_range(height * width)
        candidates: list[Candidate] = []
        for start in range(0, len(points), self.points_per_batch):
            batch = points[start : start + self.points_per_batch]
            for per_point in self.predictor.point_candidates(batch, area_range, self.cfg.score_threshold):
                candidates.extend(per_point)
        kept = self.filter(candidates, height * width)
        if not kept:
            raise NoMaskError(
                f"{self.predictor.name}: none of {len(candidates)} candidate masks passed the area "
                f"({self.cfg.min_area_fraction:g}..{self.cfg.max_area_fraction:g} of the frame) and score "
                f"(>= {self.cfg.score_threshold:g}) filters"
            )
        return kept

    def area_range(self, frame_area: int) -> tuple[float, float]:
        """Smallest and largest mask area (pixels) automatic mode keeps; empty masks never."""
        return max(1.0, self.cfg.min_area_fraction * frame_area), self.cfg.max_area_fraction * frame_area

    def filter(self, candidates: list[Candidate], frame_area: int) -> list[Candidate]:
        """Area and score filters, then mask NMS, then the per-frame cap, in :func:`priority` order."""
        lo, hi = self.area_range(frame_area)
        passing = [c for c in candidates if lo <= c.area <= hi and c.score >= self.cfg.score_threshold]
        keep = nms([c.mask for c in passing], [c.score for c in passing], self.cfg.nms_iou_threshold)
        ranked = sorted((passing[i] for i in keep), key=priority, reverse=True)
        return ranked[: self.cfg.max_masks_per_frame]


def priority(candidate: Candidate) -> float:
    """Order of masks under the per-frame cap: quality, then size (score x log area).

    A tiled floor yields dozens of perfect one-tile masks; ranking by score alone would spend
    the whole cap on them and drop the floor itself, which is what later stages want first.
    """
    return candidate.score * float(np.log1p(candidate.area))
