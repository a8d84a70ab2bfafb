"""Exemplar-driven objectives: a studio's own labeled bug frames as paste sources.

The built-in simulations (a magenta checker, a magnified surface, a smeared texture) only teach a
detector what the bug looks like in engines where it looks like that. A studio's few labeled bug
frames show what it looks like in *its* engine. An exemplar is the bug region of one such frame
(:mod:`bugdet.augment.exemplar_region`) together with the same region cut from clean frames of
the same capture (the scene without the bug).

Positive: the bug region composited into a good or unlabeled target frame, at a varied place and
scale, with a feathered edge and photometric jitter. Negative: the very same paste (shape,
placement, scale, flip, feathering, lighting, blur, noise) with the clean content instead. Both
images carry the paste's seam and the exemplar's scene; they differ only inside the paste, and
only by the bug's appearance. The positive's bug mask is the pasted region.

Exemplar pairs work for any bug type with labeled bug frames, a studio's own types included; a
:class:`MixedObjective` draws them with a probability and the built-in simulation otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import cv2
import numpy as np

from bugdet.augment.base import Objective, Sample, SourceMask, TargetFrame, UnusableTarget
from bugdet.augment.compose import (
    Appearance,
    AppearanceParams,
    apply_shared_appearance,
    clip_to_canvas,
    resized_source,
)
from bugdet.augment.exemplar_region import BugRegion, RegionFinding, RegionOrigin


@dataclass(frozen=True)
class ExemplarParams:
    """How exemplars are cut (``region``, ``references``, ``min_change``) and pasted (the rest)."""

    region: RegionFinding = field(default_factory=RegionFinding)
    references: int = 3  # clean frames per exemplar (the negative's content), nearest in time first
    min_change: float = 4.0  # mean |bug - clean| (grey levels) inside the region: else it is no contrast
    # A region whose box covers at least this share of its frame is a whole-frame bug (black frame,
    # low-res frame, camera inside a wall): it is pasted where it was, over most of the target.
    whole_frame_fraction: float = 0.5
    whole_scale: tuple[float, float] = (0.9, 1.1)  # linear size relative to the target (whole-frame bugs)
    scale: tuple[float, float] = (0.7, 1.4)  # linear size relative to its size in its own frame (log-uniform)
    aspect_jitter: float = 0.15  # log of the x/y stretch, +/- this
    keep_position_prob: float = 0.3  # paste near where the bug was on screen (screen-anchored bugs)
    position_jitter: float = 0.08  # fraction of the frame, when kept near its position
    min_visible: float = 0.7  # fraction of the paste's width and height that lands on the target
    flip_prob: float = 0.5  # horizontal flip (never when kept at its position)
    min_region_pixels: int = 16
    appearance: AppearanceParams = field(default_factory=lambda: AppearanceParams(light_match=(0.0, 0.5)))

    def __post_init__(self) -> None:
        if isinstance(self.region, dict):
            object.__setattr__(self, "region", RegionFinding(**self.region))
        if isinstance(self.appearance, dict):
            object.__setattr__(self, "appearance", AppearanceParams(**self.appearance))
        for name in ("scale", "whole_scale"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name} must be (low, high) with 0 < low <= high")
        if self.references < 1:
            raise ValueError("references must be at least 1")
        if not 0 < self.min_visible <= 1:
            raise ValueError("min_visible must be in (0, 1]")


@dataclass
class BugExemplar:
    """One labeled bug frame's bug region and the same region of clean frames, as crops."""

    bug_type: str
    rgb: np.ndarray  # hxwx3 uint8: the bug frame cut to the region's box
    alpha: np.ndarray  # hxw bool: the region inside the crop
    clean: list[np.ndarray]  # hxwx3 uint8 each: the same box of clean frames (at least one)
    frame_shape: tuple[int, int]  # (H, W) of the bug frame: sizes and positions are relative to it
    box: tuple[int, int, int, int]  # (x, y, w, h) of the crop in its frame
    origin: RegionOrigin
    whole: bool  # pasted as a whole-frame bug
    frame_id: int | None = None
    clean_ids: list[int | None] = field(default_factory=list)


def _reference_change(bug_crop: np.ndarray, clean_crop: np.ndarray, inside: np.ndarray) -> float:
    return float(np.abs(bug_crop.astype(np.float32) - clean_crop.astype(np.float32))[inside].mean())


def make_exemplar(
    bug_type: str,
    bug_rgb: np.ndarray,
    region: BugRegion,
    references: Sequence[tuple[int | None, np.ndarray]],
    p: ExemplarParams = ExemplarParams(),
    frame_id: int | None = None,
) -> BugExemplar | None:
    """The exemplar of one labeled bug frame, with clean content from ``references`` (id, frame):
    nearest first, any size (resized to the bug frame). References that barely differ from the bug
    frame inside the region are dropped (they probably show the bug too, unlabeled); None when no
    reference is left or the region is empty."""
    H, W = bug_rgb.shape[:2]
    ys, xs = np.nonzero(region.mask)
    if xs.size < p.min_region_pixels:
        return None
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    alpha = region.mask[y0:y1, x0:x1].copy()
    crop = np.ascontiguousarray(bug_rgb[y0:y1, x0:x1])
    clean, clean_ids = [], []
    for ref_id, ref in references:
        if ref.shape[:2] != (H, W):
            ref = cv2.resize(ref, (W, H), interpolation=cv2.INTER_AREA)
        ref_crop = np.ascontiguousarray(ref[y0:y1, x0:x1])
        if _reference_change(crop, ref_crop, alpha) >= p.min_change:
            clean.append(ref_crop)
            clean_ids.append(ref_id)
        if len(clean) >= p.references:
            break
    if not clean:
        return None
    whole = region.origin == "whole" or (x1 - x0) * (y1 - y0) >= p.whole_frame_fraction * H * W
    return BugExemplar(bug_type, crop, alpha, clean, (H, W), (x0, y0, x1 - x0, y1 - y0), region.origin, whole,
                       frame_id, clean_ids)


class ExemplarObjective(Objective):
    """Pairs from one bug type's exemplars: the bug region vs. the clean region, pasted alike."""

    needs_sources = False

    def __init__(self, bug_type: str, exemplars: Sequence[BugExemplar], params: ExemplarParams = ExemplarParams()):
        if not exemplars:
            raise ValueError(f"{bug_type}: no exemplars")
        wrong = {e.bug_type for e in exemplars} - {bug_type}
        if wrong:
            raise ValueError(f"{bug_type}: exemplars of other bug types {sorted(wrong)}")
        self.bug_type = bug_type
        self.exemplars = list(exemplars)
        self.params = params

    def _placement(self, ex: BugExemplar, shape: tuple[int, int], rng: np.random.Generator
                   ) -> tuple[tuple[float, float], bool, bool]:
        """(x, y scale of the crop, keep its screen position, flip)."""
        p = self.params
        H, W = shape
        fh, fw = ex.frame_shape
        low, high = p.whole_scale if ex.whole else p.scale
        size = float(np.exp(rng.uniform(np.log(low), np.log(high))))
        stretch = 1.0 if ex.whole else float(np.exp(rng.uniform(-p.aspect_jitter, p.aspect_jitter)))
        scale = (W / fw * size * stretch, H / fh * size / stretch)
        keep = ex.whole or bool(rng.random() < p.keep_position_prob)
        flip = not keep and bool(rng.random() < p.flip_prob)
        return scale, keep, flip

    def _position(self, ex: BugExemplar, shape: tuple[int, int], size: tuple[int, int], keep: bool,
                  rng: np.random.Generator) -> tuple[int, int]:
        p = self.params
        H, W = shape
        h, w = size
        fh, fw = ex.frame_shape
        if keep:
            bx, by, bw, bh = ex.box
            cx = (bx + bw / 2) / fw * W + rng.uniform(-p.position_jitter, p.position_jitter) * W
            cy = (by + bh / 2) / fh * H + rng.uniform(-p.position_jitter, p.position_jitter) * H
            x, y = int(round(cx - w / 2)), int(round(cy - h / 2))
            # a paste smaller than the target stays on it; a larger one (whole frame, scaled up) covers it
            x = min(max(x, 0), W - w) if w <= W else min(max(x, W - w), 0)
            y = min(max(y, 0), H - h) if h <= H else min(max(y, H - h), 0)
            return x, y
        out_x, out_y = int((1 - p.min_visible) * w), int((1 - p.min_visible) * h)
        x = int(rng.integers(-out_x, max(W - w + out_x, -out_x) + 1))
        y = int(rng.integers(-out_y, max(H - h + out_y, -out_y) + 1))
        return x, y

    def make_pair(
        self, target: TargetFrame, sources: Sequence[SourceMask], rng: np.random.Generator
    ) -> tuple[Sample, Sample]:
        p = self.params
        shape = target.rgb.shape[:2]
        index = int(rng.integers(len(self.exemplars)))
        ex = self.exemplars[index]
        ref = int(rng.integers(len(ex.clean)))
        scale, keep, flip = self._placement(ex, shape, rng)
        bug_rgb, alpha = resized_source(SourceMask(ex.rgb, ex.alpha), scale, flip)
        clean_rgb, _ = resized_source(SourceMask(ex.clean[ref], ex.alpha), scale, flip)
        x, y = self._position(ex, shape, alpha.shape, keep, rng)
        bug_layer = clip_to_canvas(bug_rgb, alpha, x, y, shape)
        clean_layer = clip_to_canvas(clean_rgb, alpha, x, y, shape)
        if bug_layer is None or int((bug_layer.alpha > 0.5).sum()) < p.min_region_pixels:
            raise UnusableTarget(f"{self.bug_type}: exemplar {ex.frame_id} landed off frame {target.frame_id}")
        look = Appearance.draw(p.appearance, rng)
        # lit by the clean content: the map must not depend on the bug (a black bug stays black)
        apply_shared_appearance([clean_layer, bug_layer], target.rgb, look, rng, lit_by=0)
        inside = bug_layer.alpha > 0.5
        change = float(np.abs(bug_layer.rgb - clean_layer.rgb)[inside].mean())
        if change < p.min_change:
            raise UnusableTarget(f"{self.bug_type}: exemplar {ex.frame_id} too faint at this scale ({change:.1f})")
        positive = bug_layer.composite(target.rgb)
        negative = clean_layer.composite(target.rgb)
        bug = np.zeros(shape, dtype=bool)
        bug[bug_layer.roi] = bug_layer.alpha > 0
        meta: dict[str, Any] = {
            "objective": "exemplar", "exemplar_index": index, "exemplar_frame_id": ex.frame_id,
            "clean_frame_id": ex.clean_ids[ref] if ref < len(ex.clean_ids) else None, "region": ex.origin,
            "whole_frame": ex.whole, "target_frame_id": target.frame_id, "x": x, "y": y,
            "scale": [round(s, 4) for s in scale], "flip": flip, "kept_position": keep,
            "mean_change": round(change, 2), "appearance": look.to_meta(),
        }
        return self._samples(positive, negative, bug, meta)


class MixedObjective(Objective):
    """One bug type's built-in simulation and its exemplars: exemplar pairs with probability
    ``exemplar_prob``, simulated pairs otherwise (one draw per pair, so a seed fixes both)."""

    def __init__(self, simulation: Objective, exemplars: ExemplarObjective, exemplar_prob: float):
        if simulation.bug_type != exemplars.bug_type:
            raise ValueError(f"cannot mix {simulation.bug_type} with exemplars of {exemplars.bug_type}")
        if not 0 <= exemplar_prob <= 1:
            raise ValueError("exemplar_prob must be in [0, 1]")
        self.bug_type = simulation.bug_type
        self.simulation = simulation
        self.exemplars = exemplars
        self.exemplar_prob = exemplar_prob
        # The weapon check (FPPC) still applies: most pairs are simulated and need the gun.
        self.needs_weapon = simulation.needs_weapon
        self.needs_sources = simulation.needs_sources

    @property
    def params(self) -> Any:
        """The simulation's parameters (what target filtering and reports read)."""
        return getattr(self.simulation, "params", None)

    def make_pair(
        self, target: TargetFrame, sources: Sequence[SourceMask], rng: np.random.Generator
    ) -> tuple[Sample, Sample]:
        if rng.random() < self.exemplar_prob:
            return self.exemplars.make_pair(target, sources, rng)
        pos, neg = self.simulation.make_pair(target, sources, rng)
        pos.meta.setdefault("objective", "simulation")
        neg.meta.setdefault("objective", "simulation")
        return pos, neg
