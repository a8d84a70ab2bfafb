"""Bugs that take over much of the frame: camera clipping and black/corrupted frames.

Camera clipping: the camera sits inside or right against geometry, so one magnified surface
fills most of the view, often cut open by the near plane so the world behind shows through.
The negative shows the same magnified surface as a wall at the edge of the view (a legitimate
close-up that leaves most of the scene visible), a subset of the positive's surface, so the two
differ only inside the positive's mask and both carry the same texture, light and blur.

Black/corrupted frame: an all-black (or world-black, viewmodel still drawn) frame, or a frame with
decoder-style macroblock corruption. The negative is the same frame with the same global
exposure change, or a dark but valid version of it (a hard negative for the black variant).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import cv2
import numpy as np

from bugdet.augment.base import Objective, Sample, SourceMask, TargetFrame, register_objective
from bugdet.augment.compose import (
    Appearance,
    AppearanceParams,
    Layer,
    apply_appearance,
    choose_source,
    feather,
    fill_outside,
    source_meta,
)


@dataclass(frozen=True)
class CameraClippingParams:
    coverage: tuple[float, float] = (0.55, 0.95)  # fraction of the view the surface fills (positive)
    negative_coverage: tuple[float, float] = (0.08, 0.3)  # the same surface as a wall at the edge (negative)
    zoom: tuple[float, float] = (0.2, 0.6)  # fraction of the source's box magnified to fill the view
    darken: tuple[float, float] = (0.45, 1.0)  # a surface at the near plane is lit less than the scene
    see_through_prob: float = 0.5  # near-plane cut showing the world behind the surface
    appearance: AppearanceParams = field(default_factory=lambda: AppearanceParams(feather_sigma=(0.8, 3.0)))

    def __post_init__(self) -> None:
        if isinstance(self.appearance, dict):
            object.__setattr__(self, "appearance", AppearanceParams(**self.appearance))
        if not self.negative_coverage[1] < self.coverage[0]:
            raise ValueError("negative_coverage must stay below coverage, or the negative is a clipping bug too")


@register_objective("camera_clipping", CameraClippingParams)
class CameraClippingObjective(Objective):
    def __init__(self, params: CameraClippingParams):
        self.params = params

    def make_pair(
        self, target: TargetFrame, sources: Sequence[SourceMask], rng: np.random.Generator
    ) -> tuple[Sample, Sample]:
        p = self.params
        H, W = target.rgb.shape[:2]
        index, source = choose_source(sources, rng)
        # Magnify a window of the source texture to the whole view: a surface centimetres away.
        alpha = source.alpha_float()
        tex = fill_outside(source.rgb, alpha)
        sh, sw = alpha.shape
        z = float(rng.uniform(*p.zoom))
        ww, wh = max(2, int(sw * z)), max(2, int(sh * z))
        wx, wy = int(rng.integers(0, sw - ww + 1)), int(rng.integers(0, sh - wh + 1))
        plane = cv2.resize(tex[wy:wy + wh, wx:wx + ww], (W, H), interpolation=cv2.INTER_CUBIC)
        plane = plane.reshape(H, W, 3) * float(rng.uniform(*p.darken))

        # The surface's edge is a line across the view; the positive's side covers `coverage`,
        # the negative's is the same side pushed back to `negative_coverage` (a subset of it).
        theta = float(rng.uniform(0, 2 * np.pi))
        d = (np.arange(W, dtype=np.float32)[None, :] * np.float32(np.cos(theta))
             + np.arange(H, dtype=np.float32)[:, None] * np.float32(np.sin(theta)))
        cov, neg_cov = float(rng.uniform(*p.coverage)), float(rng.uniform(*p.negative_coverage))
        coarse = d[::4, ::4].ravel()  # the quantiles of a linear ramp need no full sort
        pos_region = d >= np.quantile(coarse, 1 - cov)
        neg_region = d >= np.quantile(coarse, 1 - neg_cov)
        see_through = bool(rng.random() < p.see_through_prob)
        hole_meta = None
        if see_through:
            # The near plane slices the surface open: an irregular hole where the world shows.
            cx, cy = rng.uniform(0.2, 0.8) * W, rng.uniform(0.2, 0.8) * H
            axes = (int(rng.uniform(0.1, 0.35) * W), int(rng.uniform(0.1, 0.35) * H))
            hole = np.zeros((H, W), np.uint8)
            cv2.ellipse(hole, (int(cx), int(cy)), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
            hole = hole.astype(bool) & ~neg_region
            pos_region &= ~hole
            hole_meta = [int(cx), int(cy), *axes]
        if target.weapon_mask is not None:
            weapon = np.asarray(target.weapon_mask, dtype=bool)
            pos_region &= ~weapon
            neg_region &= ~weapon

        layer = Layer(0, H, 0, W, plane.astype(np.float32), pos_region.astype(np.float32))
        look = Appearance.draw(p.appearance, rng)
        layer = apply_appearance(layer, target.rgb, look, rng)
        # The negative's wall edge gets the same feathering as the positive's.
        neg_alpha = np.minimum(layer.alpha, feather(neg_region.astype(np.float32), look.feather_sigma))
        positive = layer.composite(target.rgb)
        negative = layer.composite(target.rgb, alpha=neg_alpha)
        bug = layer.alpha > 0
        meta = {**source_meta(source), "source_index": index, "target_frame_id": target.frame_id,
                "coverage": round(cov, 3), "negative_coverage": round(neg_cov, 3),
                "edge_angle_deg": round(np.degrees(theta), 1), "zoom": round(z, 3),
                "see_through": see_through, "hole": hole_meta, "appearance": look.to_meta()}
        return self._samples(positive, negative, bug, meta)


@dataclass(frozen=True)
class BlackFrameParams:
    black_prob: float = 0.4  # all-black vs macroblock corruption
    keep_weapon_prob: float = 0.5  # black world with the viewmodel still drawn (when the weapon is known)
    black_noise: float = 1.5  # grey levels of noise on the black frame
    dark_negative_prob: float = 0.3  # negative of a black frame = the frame darkened but valid
    dark_gain: tuple[float, float] = (0.2, 0.5)
    exposure: tuple[float, float] = (0.85, 1.15)  # global gain applied to both images
    block_sizes: tuple[int, ...] = (8, 16)
    corrupt_fraction: tuple[float, float] = (0.08, 0.6)  # fraction of blocks in the corrupted run


@register_objective("black_frame", BlackFrameParams)
class BlackFrameObjective(Objective):
    needs_sources = False

    def __init__(self, params: BlackFrameParams):
        self.params = params

    def make_pair(
        self, target: TargetFrame, sources: Sequence[SourceMask], rng: np.random.Generator
    ) -> tuple[Sample, Sample]:
        p = self.params
        H, W = target.rgb.shape[:2]
        gain = float(rng.uniform(*p.exposure))
        base = np.clip(target.rgb.astype(np.float32) * gain + 0.5, 0, 255).astype(np.uint8)
        if rng.random() < p.black_prob:
            return self._black(target, base, rng, gain)
        return self._corrupt(target, base, rng, gain)

    def _black(self, target, base, rng, gain):
        p = self.params
        H, W = base.shape[:2]
        noise = np.abs(rng.standard_normal(base.shape, dtype=np.float32)) * np.float32(p.black_noise)
        positive = np.clip(noise + 0.5, 0, 255).astype(np.uint8)
        bug = np.ones((H, W), dtype=bool)
        keep_weapon = target.weapon_mask is not None and bool(rng.random() < p.keep_weapon_prob)
        if keep_weapon:
            weapon = np.asarray(target.weapon_mask, dtype=bool)
            positive[weapon] = base[weapon]
            bug = ~weapon
        negative = base
        dark = bool(rng.random() < p.dark_negative_prob)
        if dark:
            g = float(rng.uniform(*p.dark_gain))
            negative = np.clip(base.astype(np.float32) * g + 0.5, 0, 255).astype(np.uint8)
            if keep_weapon:
                # A dark scene still darkens the viewmodel; keep the images equal off the bug mask.
                positive[~bug] = negative[~bug]
        meta = {"variant": "black", "keep_weapon": keep_weapon, "dark_negative": dark, "exposure": round(gain, 3),
                "target_frame_id": target.frame_id}
        return self._samples(positive, negative, bug, meta)

    def _corrupt(self, target, base, rng, gain):
        p = self.params
        H, W = base.shape[:2]
        b = int(rng.choice(p.block_sizes))
        by, bx = -(-H // b), -(-W // b)
        n = by * bx
        # Decoders lose a contiguous run of macroblocks in raster order (a damaged slice).
        run = max(1, int(rng.uniform(*p.corrupt_fraction) * n))
        start = int(rng.integers(0, n - run + 1))
        positive = base.copy()
        style = str(rng.choice(["smear", "shift", "solid", "noise", "green"]))
        blocks = np.zeros(n, dtype=bool)
        blocks[start:start + run] = True
        bug = np.repeat(np.repeat(blocks.reshape(by, bx), b, axis=0), b, axis=1)[:H, :W]
        if style == "solid":
            colours = rng.integers(0, 256, size=(n, 3), dtype=np.uint8)
            per_pixel = np.repeat(np.repeat(colours.reshape(by, bx, 3), b, axis=0), b, axis=1)[:H, :W]
            positive[bug] = per_pixel[bug]
        elif style == "noise":
            positive[bug] = rng.integers(0, 256, size=(int(bug.sum()), 3), dtype=np.uint8)
        elif style == "green":  # an all-zero YUV block decodes to green
            positive[bug] = (0, 135, 0)
        else:
            for k in range(start, start + run):
                r, c = divmod(k, bx)
                y0, x0 = r * b, c * b
                y1, x1 = min(H, y0 + b), min(W, x0 + b)
                if style == "smear":  # the last good row repeated down the block
                    positive[y0:y1, x0:x1] = base[max(0, y0 - 1), x0:x1][None]
                else:  # "shift": a block copied from the wrong place
                    sy, sx = int(rng.integers(0, H - (y1 - y0) + 1)), int(rng.integers(0, W - (x1 - x0) + 1))
                    positive[y0:y1, x0:x1] = base[sy:sy + y1 - y0, sx:sx + x1 - x0]
        if np.count_nonzero(np.any(positive != base, axis=2) & bug) < 0.2 * np.count_nonzero(bug):
            # A smear or shift over a flat area (sky) changes next to nothing: that positive would
            # be a negative with a bug label, so the run gets decoder noise instead.
            style = "noise"
            positive[bug] = rng.integers(0, 256, size=(int(bug.sum()), 3), dtype=np.uint8)
        meta = {"variant": "corrupt", "style": style, "block": b, "blocks": run, "start_block": start,
                "exposure": round(gain, 3), "target_frame_id": target.frame_id}
        return self._samples(positive, base, bug, meta)
