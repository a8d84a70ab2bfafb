"""Texture bugs on a surface region: missing/placeholder, low-resolution, stretched, z-fighting.

Every texture objective works on one *region*: a source mask's silhouette (a real object or
surface shape from the mask bank) placed on the target, minus the weapon (the viewmodel is drawn
over the world). The region gets a *benign fill* — with ``texture_source="source"`` the source's
own texture, light-matched to the target (a plausible re-texture); with ``"target"`` the target's
own pixels — and the positive gets the benign fill with the artefact applied. Both are composed
with the same feathered alpha, so positive and negative differ only inside the region (the
sample's ``mask``) and only by the artefact.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import cv2
import numpy as np

from bugdet.augment.base import Objective, Sample, SourceMask, TargetFrame, UnusableTarget, register_objective
from bugdet.augment.compose import (
    Appearance,
    AppearanceParams,
    Layer,
    apply_appearance,
    choose_source,
    clip_to_canvas,
    feather,
    fill_outside,
    luma,
    resized_source,
    source_meta,
)

MAGENTA = np.array([255.0, 0.0, 255.0], dtype=np.float32)


@dataclass(frozen=True)
class RegionParams:
    """Where the region goes and what fills it (shared by every texture objective)."""

    area_fraction: tuple[float, float] = (0.04, 0.25)  # region box area / frame area
    texture_source: Literal["source", "target"] = "source"
    min_region_pixels: int = 64
    placement_tries: int = 8
    # Mean |bug - benign| (grey levels) the artefact must reach inside the region: a low-res or
    # stretched flat texture looks unchanged, and a positive nobody could see is label noise.
    min_change: float = 6.0
    appearance: AppearanceParams = field(default_factory=AppearanceParams)

    def __post_init__(self) -> None:
        if isinstance(self.appearance, dict):
            object.__setattr__(self, "appearance", AppearanceParams(**self.appearance))
        if self.texture_source not in ("source", "target"):
            raise ValueError("texture_source must be 'source' or 'target'")
        if not 0 < self.area_fraction[0] <= self.area_fraction[1] <= 1:
            raise ValueError("area_fraction must be (low, high) within (0, 1]")


@dataclass
class Region:
    layer: Layer  # benign fill colour and the feathered region alpha
    meta: dict[str, Any]


class RegionObjective(Objective):
    """Base of the texture objectives: place a region, fill it, let the subclass break the fill."""

    params: RegionParams

    def __init__(self, params: RegionParams):
        self.params = params

    def place_region(self, target: TargetFrame, sources: Sequence[SourceMask], rng: np.random.Generator) -> Region:
        p = self.params
        H, W = target.rgb.shape[:2]
        index, source = choose_source(sources, rng)
        sh, sw = source.alpha.shape
        want_area = rng.uniform(*p.area_fraction) * H * W
        base = float(np.sqrt(want_area / max(sh * sw, 1)))
        aspect = float(np.exp(rng.uniform(-0.25, 0.25)))
        scale = (base * aspect, base / aspect)
        rgb, alpha = resized_source(source, scale, flip=bool(rng.random() < 0.5))
        h, w = alpha.shape
        weapon = None if target.weapon_mask is None else np.asarray(target.weapon_mask, dtype=bool)
        layer = None
        for _ in range(p.placement_tries):
            x = int(rng.integers(-w // 4, max(W - 3 * w // 4, -w // 4 + 1)))
            y = int(rng.integers(-h // 4, max(H - 3 * h // 4, -h // 4 + 1)))
            cand = clip_to_canvas(rgb, alpha, x, y, (H, W))
            if cand is None:
                continue
            if weapon is not None:
                cand.alpha = cand.alpha * ~weapon[cand.roi]  # the viewmodel stays on top
            if int((cand.alpha > 0.5).sum()) >= p.min_region_pixels:
                layer = cand
                break
        if layer is None:
            raise UnusableTarget(f"frame {target.frame_id}: no room for a region from source {source.mask_id}")
        look = Appearance.draw(p.appearance, rng)
        if p.texture_source == "target":
            layer.rgb = target.rgb[layer.roi].astype(np.float32)
            layer.alpha = feather(layer.alpha, look.feather_sigma)
        else:
            layer = apply_appearance(layer, target.rgb, look, rng)
        meta = {**source_meta(source), "source_index": index, "target_frame_id": target.frame_id, "x": x, "y": y,
                "scale": [round(s, 4) for s in scale], "texture_source": p.texture_source,
                "appearance": look.to_meta()}
        return Region(layer, meta)

    def make_pair(
        self, target: TargetFrame, sources: Sequence[SourceMask], rng: np.random.Generator
    ) -> tuple[Sample, Sample]:
        region = self.place_region(target, sources, rng)
        layer = region.layer
        benign = layer.rgb
        broken, art_meta = self.break_texture(benign, layer, target, sources, rng)
        inside = layer.alpha > 0.5
        change = float(np.abs(broken[inside] - benign[inside]).mean()) if inside.any() else 0.0
        if change < self.params.min_change:
            raise UnusableTarget(f"{self.bug_type}: artefact invisible on this texture (mean change {change:.1f})")
        art_meta["mean_change"] = round(change, 2)
        positive = layer.composite(target.rgb, rgb=broken)
        negative = layer.composite(target.rgb, rgb=benign)
        bug = np.zeros(target.rgb.shape[:2], dtype=bool)
        bug[layer.roi] = layer.alpha > 0
        return self._samples(positive, negative, bug, {**region.meta, **art_meta})

    @abstractmethod
    def break_texture(
        self, fill: np.ndarray, layer: Layer, target: TargetFrame, sources: Sequence[SourceMask], rng: np.random.Generator
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """The region's fill with this objective's artefact (float32, same shape) and its meta."""


@dataclass(frozen=True)
class MissingTextureParams(RegionParams):
    cell_fraction: tuple[float, float] = (0.06, 0.2)  # checker cell / region's longer side
    min_cell: int = 3
    perspective: float = 0.3  # corner jitter of the checker plane, fraction of the region size
    shading: tuple[float, float] = (0.0, 0.6)  # how much of the surface's lighting the checker keeps


@register_objective("missing_texture", MissingTextureParams)
class MissingTextureObjective(RegionObjective):
    """The engine's magenta-black placeholder checker where a texture failed to load, on a
    plane seen in perspective and lit like the surface it replaces."""

    def break_texture(self, fill, layer, target, sources, rng):
        p = self.params
        h, w = fill.shape[:2]
        cell = max(p.min_cell, int(rng.uniform(*p.cell_fraction) * max(h, w)))
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        # A checker on a plane under a random homography: cells shrink toward one side.
        src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        dst = src + rng.uniform(-p.perspective, p.perspective, size=(4, 2)).astype(np.float32) * np.float32([w, h])
        M = cv2.getPerspectiveTransform(dst, src)
        den = M[2, 0] * xx + M[2, 1] * yy + M[2, 2]
        u = (M[0, 0] * xx + M[0, 1] * yy + M[0, 2]) / den
        v = (M[1, 0] * xx + M[1, 1] * yy + M[1, 2]) / den
        phase = rng.uniform(0, 2 * cell, size=2)
        on = ((np.floor((u + phase[0]) / cell) + np.floor((v + phase[1]) / cell)) % 2) == 0
        checker = np.where(on[..., None], MAGENTA, np.float32(0.0))
        s = float(rng.uniform(*p.shading))
        lum = luma(fill)
        shade = (1 - s) + s * lum / max(float(lum.mean()), 1.0)
        return np.clip(checker * shade[..., None], 0, 255).astype(np.float32), {"cell": cell, "shading": round(s, 3)}


@dataclass(frozen=True)
class LowResParams(RegionParams):
    factor: tuple[float, float] = (6.0, 16.0)  # downsampling factor of the texture
    nearest_prob: float = 0.5  # blocky (nearest) vs blurry (bilinear) upsampling


@register_objective("low_res_texture", LowResParams)
class LowResTextureObjective(RegionObjective):
    """A texture streamed at a far too low mip level: the region heavily down- then upsampled."""

    def break_texture(self, fill, layer, target, sources, rng):
        p = self.params
        h, w = fill.shape[:2]
        f = float(rng.uniform(*p.factor))
        small = cv2.resize(fill_outside(fill, layer.alpha), (max(1, round(w / f)), max(1, round(h / f))),
                           interpolation=cv2.INTER_AREA)
        nearest = bool(rng.random() < p.nearest_prob)
        up = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR)
        return up.reshape(fill.shape).astype(np.float32), {"factor": round(f, 3), "nearest": nearest}


@dataclass(frozen=True)
class StretchedParams(RegionParams):
    factor: tuple[float, float] = (3.0, 10.0)  # stretch along one axis


@register_objective("stretched_texture", StretchedParams)
class StretchedTextureObjective(RegionObjective):
    """Broken UVs: a thin band of the texture smeared across the region along one axis."""

    def break_texture(self, fill, layer, target, sources, rng):
        p = self.params
        h, w = fill.shape[:2]
        f = float(rng.uniform(*p.factor))
        axis = "x" if rng.random() < 0.5 else "y"
        filled = fill_outside(fill, layer.alpha)
        if axis == "x":
            band = max(1, int(round(w / f)))
            x0 = int(rng.integers(0, w - band + 1))
            out = cv2.resize(filled[:, x0:x0 + band], (w, h), interpolation=cv2.INTER_LINEAR)
        else:
            band = max(1, int(round(h / f)))
            y0 = int(rng.integers(0, h - band + 1))
            out = cv2.resize(filled[y0:y0 + band], (w, h), interpolation=cv2.INTER_LINEAR)
        return out.reshape(fill.shape).astype(np.float32), {"factor": round(f, 3), "axis": axis}


@dataclass(frozen=True)
class ZFightingParams(RegionParams):
    period: tuple[float, float] = (4.0, 14.0)  # px between stripes
    duty: tuple[float, float] = (0.3, 0.6)  # fraction of each period showing the losing surface
    jag_block: tuple[int, int] = (1, 4)  # px: depth-precision stairs on stripe edges
    jag_amplitude: float = 0.6  # edge wobble, fraction of the period


@register_objective("z_fighting", ZFightingParams)
class ZFightingObjective(RegionObjective):
    """Two coplanar surfaces fighting for depth: the region's texture interleaved with the other
    surface in jagged bands. The other surface is what lay under the region in the target (or a
    second source when the region keeps the target's own texture); the negative shows the winner alone."""

    def break_texture(self, fill, layer, target, sources, rng):
        p = self.params
        h, w = fill.shape[:2]
        if p.texture_source == "source":
            other = target.rgb[layer.roi].astype(np.float32)
            other_id = target.frame_id
        else:
            _, second = choose_source(sources, rng)
            rgb, _ = resized_source(second, (w / second.alpha.shape[1], h / second.alpha.shape[0]))
            other = rgb.reshape(fill.shape).astype(np.float32)
            other_id = second.mask_id
        period = float(rng.uniform(*p.period))
        duty = float(rng.uniform(*p.duty))
        theta = float(rng.uniform(0, np.pi))
        block = int(rng.integers(p.jag_block[0], p.jag_block[1] + 1))
        yy, xx = np.mgrid[0:h, 0:w]
        yy, xx = (yy // block) * block, (xx // block) * block
        coarse = rng.uniform(-1, 1, size=(max(2, h // 8 + 2), max(2, w // 8 + 2))).astype(np.float32)
        wobble = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR) * p.jag_amplitude * period
        d = xx * np.cos(theta) + yy * np.sin(theta) + wobble
        losing = (np.mod(d, period) < duty * period)[..., None]
        out = np.where(losing, other, fill)
        meta = {"period": round(period, 3), "duty": round(duty, 3), "angle_deg": round(np.degrees(theta), 1),
                "jag_block": block, "other_surface": other_id}
        return out.astype(np.float32), meta
