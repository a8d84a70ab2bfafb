"""First-person player clipping (FPPC): world geometry in front of the gun.

Positive: a source region composited *over* the target's weapon (viewmodel) so that it hides a
good part of it, as when a wrongly set collision mesh lets the camera's near geometry poke
through the gun. Negative: the very same layer (same source, placement, scale, lighting, blur,
feathering, noise) composited *behind* the weapon: every weapon pixel keeps the target's value.
Outside the weapon the two images are identical, so the only cue left is the occlusion order.

A share of pairs (``scene_occluder_prob``) uses the scene itself as the occluder: the gun's far
end disappears behind a straight cut into the surface behind it (inpainted from the gun's
surroundings), which is what a viewmodel drawn in the world's depth pass looks like; the negative
is then the untouched target. The surface occluder (a textured wall over the gun's far end, or
over all of it) is the most common kind, because walking into a wall is how the bug shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import cv2
import numpy as np

from bugdet.augment.base import Objective, Sample, SourceMask, TargetFrame, UnusableTarget, register_objective
from bugdet.augment.compose import (
    Appearance,
    AppearanceParams,
    apply_appearance,
    choose_source,
    clip_to_canvas,
    fill_outside,
    resized_source,
    source_meta,
)


@dataclass(frozen=True)
class FPPCParams:
    """Placement of the source relative to the weapon, and the paste's appearance."""

    relative_size: tuple[float, float] = (0.6, 1.6)  # source's longer side / weapon box's longer side
    aspect_jitter: float = 0.2  # independent x/y scale change, 1 +/- this
    min_cover: float = 0.15  # fraction of weapon pixels the paste must hide (positive)
    min_outside: float = 0.25  # fraction of the paste that must lie outside the weapon (negative shows it)
    placement_tries: int = 16
    flip_prob: float = 0.5
    min_weapon_fraction: float = 0.004  # of the frame: a gun lowered almost out of view is no target
    cover_alpha: float = 0.25  # alpha above which a weapon pixel counts as covered (the bug mask)
    # The negative keeps this many pixels around the weapon untouched too: with estimated
    # (prompt/auto) masks that miss the gun's rim, 1-2 px stop the "behind" paste from drawing a
    # thin line over the gun's edge. 0 with exact engine masks.
    weapon_margin_px: int = 0
    # "scene" occluder: instead of a bank mask, the surface behind the gun swallows its far end,
    # as when the viewmodel is drawn in the world's depth pass (the playtest world's FPPC bug).
    scene_occluder_prob: float = 0.1
    scene_hidden: tuple[float, float] = (0.15, 0.55)  # fraction of the weapon, from the muzzle back
    scene_cut_tilt_deg: float = 35.0  # the surface's edge across the gun, tilted up to this much
    # "surface" occluder: a textured wall (a bank source's texture, stretched over a half-plane
    # that cuts the gun) drawn over the gun's far end (positive) or behind the whole gun
    # (negative). This is what the player walking into a wall looks like, and both samples carry
    # the same wall, so the only difference is which of gun and wall is in front.
    surface_occluder_prob: float = 0.5
    surface_hidden: tuple[float, float] = (0.25, 0.9)  # fraction of the weapon behind the wall
    # Share of surface pairs where the wall swallows the whole gun: a player pressed into a wall
    # often sees no gun at all (a third of the playtest world's FPPC frames hide all of it).
    surface_full_prob: float = 0.3
    surface_margin: tuple[float, float] = (0.3, 1.2)  # wall extent beyond the gun, x its box size
    appearance: AppearanceParams = field(default_factory=AppearanceParams)

    def __post_init__(self) -> None:
        if isinstance(self.appearance, dict):
            object.__setattr__(self, "appearance", AppearanceParams(**self.appearance))
        if not 0 < self.relative_size[0] <= self.relative_size[1]:
            raise ValueError("relative_size must be (low, high) with 0 < low <= high")
        if not 0 <= self.min_cover < 1 or not 0 <= self.min_outside < 1:
            raise ValueError("min_cover and min_outside must be in [0, 1)")


@register_objective("fppc", FPPCParams)
class FPPCObjective(Objective):
    needs_weapon = True

    def __init__(self, params: FPPCParams):
        self.params = params

    def make_pair(
        self, target: TargetFrame, sources: Sequence[SourceMask], rng: np.random.Generator
    ) -> tuple[Sample, Sample]:
        p = self.params
        weapon = target.weapon_mask
        if weapon is None:
            raise UnusableTarget(f"frame {target.frame_id}: no weapon mask (FPPC needs the viewmodel's pixels)")
        weapon = np.asarray(weapon, dtype=bool)
        ys, xs = np.nonzero(weapon)
        if xs.size < max(20, p.min_weapon_fraction * weapon.size):
            raise UnusableTarget(f"frame {target.frame_id}: weapon too small ({xs.size} px) for FPPC")
        H, W = weapon.shape
        draw = rng.random()
        if draw < p.scene_occluder_prob:
            return self._scene_pair(target, weapon, xs, ys, rng)
        if draw < p.scene_occluder_prob + p.surface_occluder_prob and sources:
            return self._surface_pair(target, weapon, xs, ys, sources, rng)
        index, source = choose_source(sources, rng)
        weapon_extent = max(xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
        sh, sw = source.alpha.shape
        longest = max(int(rng.uniform(*p.relative_size) * weapon_extent), 12)
        longest = min(longest, int(0.9 * max(H, W)))
        base = longest / max(sh, sw)
        jit = rng.uniform(1 - p.aspect_jitter, 1 + p.aspect_jitter, size=2)
        scale = (float(base * jit[0]), float(base * jit[1]))
        flip = bool(rng.random() < p.flip_prob)
        best = None
        rgb, alpha = resized_source(source, scale, flip)
        for attempt in range(p.placement_tries):
            if attempt and attempt % 4 == 0 and best is not None and best[4] < p.min_cover:
                # Thin or holey sources cannot hide enough of the gun at this size: grow them.
                scale = (scale[0] * 1.35, scale[1] * 1.35)
                rgb, alpha = resized_source(source, scale, flip)
            h, w = alpha.shape
            # Anchor on a random weapon pixel so the paste lands on the gun, then offset it so
            # the source does not always centre on the weapon.
            k = int(rng.integers(xs.size))
            cx = xs[k] + rng.uniform(-0.35, 0.35) * w
            cy = ys[k] + rng.uniform(-0.35, 0.35) * h
            x, y = int(round(cx - w / 2)), int(round(cy - h / 2))
            layer = clip_to_canvas(rgb, alpha, x, y, (H, W))
            if layer is None:
                continue
            solid = layer.alpha > 0.5
            area = int(solid.sum())
            if area == 0:
                continue
            hit = int((solid & weapon[layer.roi]).sum())
            cover, outside = hit / xs.size, (area - hit) / area
            score = min(cover / max(p.min_cover, 1e-6), 1.0) + min(outside / max(p.min_outside, 1e-6), 1.0)
            if best is None or score > best[0]:
                best = (score, layer, x, y, cover, outside, attempt, scale)
            if cover >= p.min_cover and outside >= p.min_outside:
                break
        if best is None or best[4] == 0:
            raise UnusableTarget(f"frame {target.frame_id}: could not place source {source.mask_id} over the weapon")
        _, layer, x, y, cover, outside, attempt, scale = best

        look = Appearance.draw(p.appearance, rng)
        layer = apply_appearance(layer, target.rgb, look, rng)
        protect = weapon
        if p.weapon_margin_px > 0:
            size = 2 * p.weapon_margin_px + 1
            protect = cv2.dilate(weapon.astype(np.uint8), np.ones((size, size), np.uint8)).astype(bool)
        behind = layer.alpha * ~protect[layer.roi]  # weapon pixels stay on top in the negative
        positive = layer.composite(target.rgb)
        negative = layer.composite(target.rgb, alpha=behind)
        bug = np.zeros((H, W), dtype=bool)
        bug[layer.roi] = weapon[layer.roi] & (layer.alpha > p.cover_alpha)
        meta = {
            **source_meta(source),
            "source_index": index,
            "target_frame_id": target.frame_id,
            "x": x,
            "y": y,
            "scale": [round(s, 4) for s in scale],
            "flip": flip,
            "weapon_cover": round(float(bug.sum()) / xs.size, 4),
            "outside_fraction": round(outside, 4),
            "placement_attempt": attempt,
            "appearance": look.to_meta(),
            "occluder": "source",
        }
        return self._samples(positive, negative, bug, meta)

    def _cut(self, weapon: np.ndarray, xs: np.ndarray, ys: np.ndarray, hidden: tuple[float, float],
             rng: np.random.Generator) -> tuple[np.ndarray, float, float]:
        """Depth of every pixel along the gun (grip -> muzzle, tilted at random), the depth where
        the cut falls so that a drawn fraction of the gun lies beyond it, and the cut's angle."""
        H, W = weapon.shape
        # The muzzle is the weapon pixel nearest the screen centre, the hands sit at its bottom.
        k = int(np.argmin((xs - W / 2) ** 2 + (ys - H / 2) ** 2))
        tip = np.array([xs[k], ys[k]], dtype=np.float64)
        grip = np.array([xs.mean(), ys.max()], dtype=np.float64)
        axis = tip - grip
        if np.linalg.norm(axis) < 1e-6:
            axis = np.array([0.0, -1.0])
        angle = np.arctan2(axis[1], axis[0]) + np.radians(rng.uniform(-self.params.scene_cut_tilt_deg,
                                                                        self.params.scene_cut_tilt_deg))
        gx, gy = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
        depth = (gx - grip[0]) * np.cos(angle) + (gy - grip[1]) * np.sin(angle)
        cut = float(np.quantile(depth[ys, xs], 1.0 - float(rng.uniform(*hidden))))
        return depth, cut, float(angle)

    def _surface_pair(
        self, target: TargetFrame, weapon: np.ndarray, xs: np.ndarray, ys: np.ndarray,
        sources: Sequence[SourceMask], rng: np.random.Generator,
    ) -> tuple[Sample, Sample]:
        p = self.params
        H, W = weapon.shape
        hidden = (1.0, 1.0) if rng.random() < p.surface_full_prob else p.surface_hidden
        depth, cut, angle = self._cut(weapon, xs, ys, hidden, rng)
        x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        mx = int((x1 - x0) * rng.uniform(*p.surface_margin))
        my = int((y1 - y0) * rng.uniform(*p.surface_margin))
        box = np.zeros((H, W), dtype=bool)
        box[max(0, y0 - my):min(H, y1 + my), max(0, x0 - mx):min(W, x1 + mx)] = True
        wall = box & (depth >= cut)
        bug = wall & weapon
        if bug.sum() < max(8, min(0.1, 0.5 * hidden[0]) * weapon.sum()):  # lower surface_hidden settings still pass
            raise UnusableTarget(f"frame {target.frame_id}: the wall would hide too little of the gun")
        index, source = choose_source(sources, rng)
        wy, wx = np.nonzero(wall)
        bx0, by0, bw, bh = int(wx.min()), int(wy.min()), int(wx.max() - wx.min() + 1), int(wy.max() - wy.min() + 1)
        texture = cv2.resize(fill_outside(source.rgb, source.alpha_float()), (bw, bh), interpolation=cv2.INTER_LINEAR)
        # Light the wall like the target around it, so brightness is no cue either way.
        around = target.rgb[box & ~weapon].astype(np.float32)
        if around.size:
            texture = texture - texture.mean(axis=(0, 1)) * float(rng.uniform(0.3, 0.7)) \
                + around.mean(axis=0) * float(rng.uniform(0.3, 0.7))
        texture += rng.standard_normal(texture.shape, dtype=np.float32) * np.float32(rng.uniform(1.0, 4.0))
        layer = np.zeros((H, W, 3), dtype=np.float32)
        layer[by0:by0 + bh, bx0:bx0 + bw] = texture
        alpha = wall.astype(np.float32)
        alpha = cv2.GaussianBlur(alpha, (0, 0), float(rng.uniform(0.5, 1.2))) * wall  # soft only inside
        def composite(region_alpha: np.ndarray) -> np.ndarray:
            out = target.rgb.astype(np.float32)
            out += region_alpha[..., None] * (layer - out)
            return np.clip(out + 0.5, 0, 255).astype(np.uint8)

        on_top = weapon
        if p.weapon_margin_px > 0:
            size = 2 * p.weapon_margin_px + 1
            on_top = cv2.dilate(weapon.astype(np.uint8), np.ones((size, size), np.uint8)).astype(bool)
        positive = composite(alpha)
        negative = composite(alpha * ~on_top)
        meta = {"target_frame_id": target.frame_id, "occluder": "surface",
                "weapon_cover": round(float(bug.sum() / weapon.sum()), 4),
                "cut_angle_deg": round(float(np.degrees(angle)), 1), **source_meta(source), "source_index": index}
        return self._samples(positive, negative, bug, meta)

    def _scene_pair(
        self, target: TargetFrame, weapon: np.ndarray, xs: np.ndarray, ys: np.ndarray, rng: np.random.Generator
    ) -> tuple[Sample, Sample]:
        """Positive: the gun's far end replaced by the scene continued over it (inpainted from
        its surroundings) behind a straight cut; negative: the target itself. No paste at all,
        so the pair differs only where the gun is swallowed."""
        p = self.params
        H, W = weapon.shape
        depth_map, cut, angle = self._cut(weapon, xs, ys, p.scene_hidden, rng)
        depth = depth_map[ys, xs]
        hidden_fraction = float((depth >= cut).mean())
        hide = depth >= cut
        bug = np.zeros((H, W), dtype=bool)
        bug[ys[hide], xs[hide]] = True
        bx, by, bw, bh = cv2.boundingRect(bug.astype(np.uint8))
        margin = 12
        x0, y0 = max(0, bx - margin), max(0, by - margin)
        x1, y1 = min(W, bx + bw + margin), min(H, by + bh + margin)
        roi = np.ascontiguousarray(target.rgb[y0:y1, x0:x1])
        # Fill from non-weapon pixels only: the whole gun (grown by a pixel for its anti-aliased
        # rim) is unknown to the inpainting.
        unknown = cv2.dilate(weapon[y0:y1, x0:x1].astype(np.uint8), np.ones((3, 3), np.uint8))
        behind = cv2.inpaint(roi, unknown, 3, cv2.INPAINT_TELEA).astype(np.float32)
        sigma = float(rng.uniform(*p.appearance.noise_sigma)) + 1.0
        behind += rng.standard_normal(behind.shape, dtype=np.float32) * np.float32(sigma)
        positive = target.rgb.copy()
        sub = bug[y0:y1, x0:x1]
        positive[y0:y1, x0:x1][sub] = np.clip(behind[sub] + 0.5, 0, 255).astype(np.uint8)
        negative = target.rgb.copy()
        meta = {"target_frame_id": target.frame_id, "occluder": "scene", "weapon_cover": round(hidden_fraction, 4),
                "cut_angle_deg": round(float(np.degrees(angle)), 1), "noise_sigma": round(sigma, 3),
                "source_mask_id": None, "source_frame_id": None, "source_label": None}
        return self._samples(positive, negative, bug, meta)
