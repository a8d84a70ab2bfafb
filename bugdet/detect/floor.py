"""Non-learned floors: how far simple image statistics get, so learned results mean something.

The FPPC floor compares the weapon area of a frame with the clean viewmodel, learned as the
per-pixel median of a few good frames: world geometry drawn over the weapon changes those pixels.
It has no notion of occlusion order, so anything else that changes the weapon area (muzzle flash,
lighting, the weapon bobbing or lowering for a reload) raises it too — which is exactly why a
learned detector is needed, and what this floor measures.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np


@dataclass
class ViewmodelDifferenceFloor:
    size: tuple[int, int] = (120, 160)  # (H, W) the comparison runs at
    tolerance: float = 40.0  # per-pixel colour distance still counted as "the same"

    def fit(self, good_frames: Sequence[np.ndarray], weapon_masks: Sequence[np.ndarray]) -> "ViewmodelDifferenceFloor":
        if not good_frames:
            raise ValueError("the viewmodel floor needs at least one good frame")
        h, w = self.size
        stack = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) for f in good_frames])
        self.template = np.median(stack, axis=0)
        masks = np.stack([cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0 for m in weapon_masks])
        # Pixels that are weapon in most good frames: the stable core of the viewmodel.
        self.region = masks.mean(axis=0) >= 0.5
        if not self.region.any():
            raise ValueError("the weapon masks of the good frames do not overlap; no stable viewmodel region")
        return self

    def score(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """Fraction of the viewmodel region that no longer looks like the clean viewmodel."""
        h, w = self.size
        out = np.empty(len(frames), np.float32)
        for i, f in enumerate(frames):
            small = cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
            dist = np.linalg.norm(small - self.template, axis=2)
            out[i] = float((dist[self.region] > self.tolerance).mean())
        return out
