"""A screen region a detector looks at instead of the whole frame.

First-person bugs live where the viewmodel is drawn, and the viewmodel is anchored to the
screen: the gun always sits in the same corner. A detector given only that corner at the
frame's own resolution sees a clipped barrel tip with about 1.7x more pixels on it than one
given the whole frame scaled down to the same cost (the quality bench measures the gain).

The region is part of the model config (``"region": {"box": [top, left, bottom, right],
"bug_types": [...]}``, fractions of the frame), so it travels with checkpoints and the ONNX
graph: callers still send whole frames, and heatmaps still cover the whole frame (zero outside
the region). Only the bug types the config names may use it; a whole-frame bug (a black frame, a
stretched wall texture) would be invisible to such a detector, so asking for one is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from bugdet.errors import ConfigError, InputError

#: Logit given to heatmap cells outside the region: "no bug here" (sigmoid ~1e-13), finite so
#: losses and exported graphs never meet an infinity.
OUTSIDE_LOGIT = -30.0

#: Share of the viewmodel's pixels that must fall inside the region before training starts.
MIN_VIEWMODEL_COVERAGE = 0.98


@dataclass(frozen=True)
class ScreenRegion:
    box: tuple[float, float, float, float]  # top, left, bottom, right as fractions of the frame
    bug_types: tuple[str, ...]

    @classmethod
    def from_config(cls, spec: dict[str, Any] | None) -> "ScreenRegion | None":
        if not spec:
            return None
        box = tuple(float(v) for v in spec.get("box", ()))
        if len(box) != 4 or not (0 <= box[0] < box[2] <= 1 and 0 <= box[1] < box[3] <= 1):
            raise ConfigError(f"detector region box must be [top, left, bottom, right] fractions with top < bottom and left < right, got {spec.get('box')}")
        types = tuple(spec.get("bug_types", ()))
        if not types:
            raise ConfigError("detector region needs bug_types: the bug types that show inside it")
        return cls(box, types)  # type: ignore[arg-type]

    def check_bug_types(self, bug_types: Sequence[str]) -> None:
        outside = [t for t in bug_types if t not in self.bug_types]
        if outside:
            raise ConfigError(
                f"this detector looks only at the screen region {list(self.box)} (for {', '.join(self.bug_types)}); "
                f"bug type(s) {', '.join(outside)} need the whole frame: use a whole-frame model such as compact_cnn"
            )

    def pixels(self, size: tuple[int, int]) -> tuple[int, int, int, int]:
        """The box in pixels of a frame of ``size`` (height, width)."""
        h, w = size
        top, left, bottom, right = self.box
        return int(top * h), int(left * w), int(round(bottom * h)), int(round(right * w))

    def crop(self, images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        y0, x0, y1, x1 = self.pixels(size)
        return images[..., y0:y1, x0:x1]

    def place(self, cam: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Put a map computed on the crop into a map of the whole frame at the same scale, so
        heatmaps keep meaning "where in the frame" for every consumer."""
        y0, x0, y1, x1 = self.pixels(size)
        h, w = cam.shape[-2:]
        grid_h = max(h, round(h * size[0] / (y1 - y0)))
        grid_w = max(w, round(w * size[1] / (x1 - x0)))
        top, bottom = round(y0 * grid_h / size[0]), round(y1 * grid_h / size[0])
        left, right = round(x0 * grid_w / size[1]), round(x1 * grid_w / size[1])
        top, left = min(top, grid_h - h), min(left, grid_w - w)
        bottom, right = max(bottom, top + 1), max(right, left + 1)
        if (bottom - top, right - left) != (h, w):
            cam = F.interpolate(cam, size=(bottom - top, right - left), mode="bilinear", align_corners=False)
        return F.pad(cam, (left, grid_w - right, top, grid_h - bottom), value=OUTSIDE_LOGIT)

    def coverage(self, masks: Sequence[np.ndarray]) -> float:
        """Share of the masks' pixels (over all masks) that lie inside the region; 1.0 for none."""
        inside = total = 0
        for mask in masks:
            if mask is None or not mask.any():
                continue
            y0, x0, y1, x1 = self.pixels(mask.shape[:2])
            total += int(mask.sum())
            inside += int(mask[y0:y1, x0:x1].sum())
        return inside / total if total else 1.0


def require_viewmodel_inside(region: ScreenRegion | None, weapon_masks: Sequence[np.ndarray | None]) -> None:
    """Refuse to train a region detector on a game whose viewmodel is drawn elsewhere (a
    left-handed or centred gun): it would learn nothing and say nothing."""
    if region is None:
        return
    share = region.coverage([m for m in weapon_masks if m is not None])
    if share < MIN_VIEWMODEL_COVERAGE:
        raise InputError(
            f"only {share:.0%} of the viewmodel's pixels lie inside the detector's region {list(region.box)}: "
            "widen the region in a copy of the model config, or use a whole-frame model such as compact_cnn"
        )
