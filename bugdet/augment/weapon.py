"""Finding the weapon (viewmodel) pixels of frames that carry no engine stencil.

Two estimators, both ending in the same per-frame step, :func:`propagate_mask`:

* **prompt** — a tester segments the weapon once (``bugdet prompt --save --role weapon``). The
  viewmodel is screen-anchored: from frame to frame it only bobs and sways by a few pixels, so
  the reference is followed by masked template matching (the best small translation) and the
  shifted mask is intersected with colour agreement (pixels that still look like the reference
  weapon), then grown a few pixels into same-coloured neighbours to recover edges that moved.
* **auto** — no prompt at all: over many unlabeled frames of one capture the world moves while
  the viewmodel does not, so its pixels have low temporal variance. The stable pixels anchored
  to the bottom edge of the screen (viewmodel arms run off the bottom) form the template mask on
  the per-pixel median frame, which is then propagated like a prompt.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np


@dataclass(frozen=True)
class PropagationParams:
    search: int = 16  # px: largest bob/sway offset looked for
    colour_tol: float = 40.0  # max channel difference to the gain-corrected reference
    grow_iterations: int = 3  # px the mask may grow into same-coloured neighbours
    grow_tol: float = 14.0
    min_component: int = 20  # px: smaller islands are noise
    # A frame whose best match is this many times worse than the capture's good matches (their
    # 20th percentile: the gun may be lowered in most frames) has no recognisable weapon
    # (lowered for a reload, switched, hidden): it gets an empty mask.
    outlier_residual: float = 3.0


@dataclass(frozen=True)
class TemporalParams:
    max_frames: int = 48  # frames of one capture used for the statistics
    min_frames: int = 8
    # Viewmodels are drawn with the same flat/baked shading every frame, so their pixels repeat
    # almost exactly; textured ground only repeats its mean colour. A tight tolerance separates them.
    stability_tol: float = 2.0  # grey levels a pixel may differ from the median and count as unchanged
    min_stability: float = 0.35  # fraction of frames a viewmodel pixel must be unchanged in
    min_speck: int = 12  # px: stable specks smaller than this are texture coincidences
    merge_px: int = 9  # closing diameter that joins the viewmodel's parts across their moving edges
    min_area_fraction: float = 0.004  # smallest viewmodel component, fraction of the frame
    bottom_band: float = 0.1  # a component must reach into this bottom fraction of the frame
    refine_passes: int = 1  # re-estimate on frames aligned to the first template (sharper edges)
    reference_frames: int = 8  # frames tried as the reference besides the median
    # After alignment only frames showing the gun remain, so the viewmodel is stable in nearly
    # all of them and a stricter threshold drops ground that the loose first pass let in.
    refine_min_stability: float = 0.6


@dataclass
class Propagated:
    mask: np.ndarray
    offset: tuple[int, int]  # (dx, dy) of the reference that matched best
    residual: float  # RMS colour error of the match, grey levels


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max() + 1), int(ys.max() + 1)


def _shift(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``image`` translated by (dx, dy), edge pixels replicated (the viewmodel continues off-screen)."""
    h, w = image.shape[:2]
    M = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, M, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)


def _masked_sqdiff(window: np.ndarray, templ: np.ndarray, tmask: np.ndarray) -> np.ndarray:
    return cv2.matchTemplate(window, templ, cv2.TM_SQDIFF, mask=tmask)


def match_offset(ref_rgb: np.ndarray, ref_mask: np.ndarray, frame_rgb: np.ndarray, search: int) -> tuple[int, int, float]:
    """The translation (dx, dy) within ``search`` px that best maps the reference weapon onto
    ``frame_rgb`` (masked squared difference), and the RMS colour error there.

    Coarse to fine: the whole search range at half resolution, then +/-1 px at full resolution,
    which keeps a 320x240 frame at a few milliseconds.
    """
    x0, y0, x1, y1 = _bbox(ref_mask)
    pad = search + 2
    padded = cv2.copyMakeBorder(frame_rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE).astype(np.float32)
    templ = ref_rgb[y0:y1, x0:x1].astype(np.float32)
    tmask = ref_mask[y0:y1, x0:x1].astype(np.float32)
    half = lambda a: cv2.resize(a, (max(1, a.shape[1] // 2), max(1, a.shape[0] // 2)), interpolation=cv2.INTER_AREA)
    s2 = search // 2
    window = padded[pad - 2 * s2 + y0:pad + 2 * s2 + y1, pad - 2 * s2 + x0:pad + 2 * s2 + x1]
    t_small, m_small = half(templ), half(tmask)
    coarse = _masked_sqdiff(half(window), t_small, np.repeat(m_small[..., None], 3, axis=2))
    _, _, loc, _ = cv2.minMaxLoc(coarse[: 2 * s2 + 1, : 2 * s2 + 1])
    cdx, cdy = 2 * (loc[0] - s2), 2 * (loc[1] - s2)
    fy, fx = pad + cdy + y0 - 1, pad + cdx + x0 - 1
    fine_window = padded[fy:fy + (y1 - y0) + 2, fx:fx + (x1 - x0) + 2]
    fine = _masked_sqdiff(fine_window, templ, np.repeat(tmask[..., None], 3, axis=2))
    _, _, floc, _ = cv2.minMaxLoc(fine)
    dx, dy = cdx + floc[0] - 1, cdy + floc[1] - 1
    n = 3.0 * float(tmask.sum())
    residual = float(np.sqrt(max(float(fine[floc[1], floc[0]]), 0.0) / max(n, 1.0)))
    return int(dx), int(dy), residual


def _grow(mask: np.ndarray, rgb: np.ndarray, iterations: int, tol: float) -> np.ndarray:
    """Let the mask take neighbours whose colour is within ``tol`` of an adjacent mask pixel
    (worked on the mask's box plus the growth margin only)."""
    if iterations <= 0 or not mask.any():
        return mask
    H, W = mask.shape
    x0, y0, x1, y1 = _bbox(mask)
    x0, y0 = max(0, x0 - iterations - 1), max(0, y0 - iterations - 1)
    x1, y1 = min(W, x1 + iterations + 1), min(H, y1 + iterations + 1)
    img = rgb[y0:y1, x0:x1].astype(np.int16)
    out = mask[y0:y1, x0:x1].copy()
    # close_x[y, x]: pixel (y, x) and (y, x + 1) have similar colours; close_y likewise downwards.
    close_x = np.abs(img[:, 1:] - img[:, :-1]).max(axis=2) <= tol
    close_y = np.abs(img[1:] - img[:-1]).max(axis=2) <= tol
    for _ in range(iterations):
        add = np.zeros_like(out)
        add[:, 1:] |= out[:, :-1] & close_x  # from the left neighbour
        add[:, :-1] |= out[:, 1:] & close_x  # from the right neighbour
        add[1:] |= out[:-1] & close_y
        add[:-1] |= out[1:] & close_y
        add &= ~out
        if not add.any():
            break
        out |= add
    grown = mask.copy()
    grown[y0:y1, x0:x1] = out
    return grown


def _drop_small(mask: np.ndarray, min_size: int) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    keep = np.zeros(n, dtype=bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_size
    return keep[labels]


def propagate_mask(
    ref_rgb: np.ndarray, ref_mask: np.ndarray, frame_rgb: np.ndarray, params: PropagationParams = PropagationParams()
) -> Propagated:
    """The weapon mask of ``frame_rgb`` from a reference frame and its weapon mask."""
    ref_mask = np.asarray(ref_mask, dtype=bool)
    if not ref_mask.any():
        return Propagated(np.zeros(frame_rgb.shape[:2], bool), (0, 0), float("inf"))
    dx, dy, residual = match_offset(ref_rgb, ref_mask, frame_rgb, params.search)
    moved = _shift(ref_mask.astype(np.uint8), dx, dy).astype(bool)
    ref_moved = _shift(ref_rgb, dx, dy).astype(np.float32)
    frame = frame_rgb.astype(np.float32)
    # Lighting may change the viewmodel's brightness a little: compare after a per-channel gain.
    num = np.median(frame[moved], axis=0)
    den = np.maximum(np.median(ref_moved[moved], axis=0), 1.0)
    gain = np.clip(num / den, 0.6, 1.6) if moved.any() else np.ones(3, np.float32)
    agree = np.abs(frame - ref_moved * gain).max(axis=2) <= params.colour_tol
    mask = moved & agree
    mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)).astype(bool) & moved
    mask = _grow(mask, frame_rgb, params.grow_iterations, params.grow_tol)
    mask = _drop_small(mask, params.min_component)
    return Propagated(mask, (dx, dy), residual)


def residual_limit(residuals: Sequence[float], params: PropagationParams = PropagationParams()) -> float:
    """Matches worse than this have no recognisable weapon, judged against the good ones."""
    finite = np.array([r for r in residuals if np.isfinite(r)])
    if finite.size == 0:
        return float("inf")
    return params.outlier_residual * max(float(np.percentile(finite, 20)), 1.0)


def propagate_masks(
    ref_rgb: np.ndarray,
    ref_mask: np.ndarray,
    frames: Sequence[np.ndarray],
    params: PropagationParams = PropagationParams(),
    limit: float | None = None,
) -> list[Propagated]:
    """:func:`propagate_mask` over frames of one capture, emptying the masks of frames whose match
    is an outlier (weapon lowered, holstered or off-screen): worse than ``limit``, by default
    :func:`residual_limit` of these frames' own matches."""
    out = [propagate_mask(ref_rgb, ref_mask, f, params) for f in frames]
    if limit is None:
        limit = residual_limit([p.residual for p in out], params)
    for p in out:
        if p.residual > limit:
            p.mask = np.zeros_like(p.mask)
    return out


@dataclass
class WeaponTemplate:
    """The viewmodel of one capture: a reference image, its weapon mask, and the residual above
    which a frame is judged to show no weapon. Fixed per capture, so a frame's mask does not
    depend on which other frames are asked for at the same time."""

    reference: np.ndarray
    mask: np.ndarray
    limit: float
    propagation: PropagationParams = PropagationParams()
    info: dict | None = None

    @classmethod
    def from_prompt(cls, ref_rgb: np.ndarray, ref_mask: np.ndarray, pool: Sequence[np.ndarray],
                    propagation: PropagationParams = PropagationParams()) -> "WeaponTemplate":
        """A tester's mask on one frame; ``pool`` (frames of the capture) calibrates the limit."""
        ref_mask = np.asarray(ref_mask, dtype=bool)
        residuals = [match_offset(ref_rgb, ref_mask, f, propagation.search)[2] for f in pool] if ref_mask.any() else []
        return cls(ref_rgb, ref_mask, residual_limit(residuals, propagation), propagation, {"pool_frames": len(pool)})

    @classmethod
    def from_frames(cls, pool: Sequence[np.ndarray], temporal: TemporalParams = TemporalParams(),
                    propagation: PropagationParams = PropagationParams()) -> "WeaponTemplate":
        """No prompt: the temporally stable, screen-anchored region of the capture's frames."""
        pool = list(pool)
        if len(pool) > temporal.max_frames:
            pick = np.linspace(0, len(pool) - 1, temporal.max_frames).round().astype(int)
            pool = [pool[i] for i in pick]
        reference, mask = temporal_template(pool, temporal)
        for _ in range(temporal.refine_passes if mask.any() else 0):
            # Align the pool on the first template, so bobbing edges line up, and estimate again.
            matches = propagate_masks(reference, mask, pool, propagation)
            aligned = [_shift(f, -p.offset[0], -p.offset[1]) for f, p in zip(pool, matches) if p.mask.any()]
            if len(aligned) < temporal.min_frames:
                break
            refined_reference, refined = temporal_template(
                aligned, dataclasses.replace(temporal, min_stability=temporal.refine_min_stability))
            if not refined.any():
                break
            reference, mask = refined_reference, refined
        residuals = [match_offset(reference, mask, f, propagation.search)[2] for f in pool] if mask.any() else []
        info = {"template_frames": len(pool), "template_area": int(mask.sum())}
        return cls(reference, mask, residual_limit(residuals, propagation), propagation, info)

    def masks(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        if not self.mask.any():
            return [np.zeros(f.shape[:2], dtype=bool) for f in frames]
        return [p.mask for p in propagate_masks(self.reference, self.mask, frames, self.propagation, self.limit)]


def estimate_weapon_masks(
    frames: Sequence[np.ndarray],
    template_frames: Sequence[np.ndarray] | None = None,
    temporal: TemporalParams = TemporalParams(),
    propagation: PropagationParams = PropagationParams(),
) -> tuple[list[np.ndarray], dict]:
    """Weapon masks of ``frames`` with no prompt: the temporal template of ``template_frames``
    (default: ``frames`` themselves, evenly subsampled) propagated to every frame."""
    template = WeaponTemplate.from_frames(template_frames if template_frames is not None else frames,
                                          temporal, propagation)
    masks = template.masks(frames)
    info = dict(template.info or {})
    if template.mask.any():
        info["frames_without_weapon"] = sum(1 for m in masks if not m.any())
    return masks, info


def temporal_template(frames: Sequence[np.ndarray], params: TemporalParams = TemporalParams()) -> tuple[np.ndarray, np.ndarray]:
    """A reference image and the viewmodel mask on it, from frames of one capture.

    A pixel belongs to the viewmodel when it matches the reference in many frames (the world
    behind moves, the viewmodel does not) and its stable component reaches the bottom of the
    screen from the lower half (viewmodels are anchored there). The sky is also stable but hangs
    from the top, so the anchoring rule rejects it. The reference is the per-pixel median, or
    one of a few evenly spaced frames when that explains more stable viewmodel pixels: when
    the gun is lowered (reloads) in many frames, the median no longer shows it, a frame does.
    """
    if len(frames) < params.min_frames:
        raise ValueError(f"temporal weapon estimation needs at least {params.min_frames} frames, got {len(frames)}")
    stack = np.stack([np.asarray(f) for f in frames]).astype(np.int16)
    candidates = [np.median(stack, axis=0).astype(np.uint8)]
    picks = np.linspace(0, len(frames) - 1, params.reference_frames).round().astype(int)
    candidates += [np.asarray(frames[i]) for i in sorted(set(picks.tolist()))]
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for reference in candidates:
        unchanged = np.abs(stack - reference[None].astype(np.int16)).max(axis=3) <= params.stability_tol
        stability = unchanged.mean(axis=0)
        mask = _anchored_mask(stability, params)
        score = float(stability[mask].sum())
        if best is None or score > best[0]:
            best = (score, reference, mask)
    assert best is not None
    return best[1], best[2]


def _anchored_mask(stability: np.ndarray, params: TemporalParams) -> np.ndarray:
    """Stable components anchored to the bottom of the screen, merged and hole-filled."""
    stable = _drop_small(stability >= params.min_stability, params.min_speck)
    # The viewmodel's flat-shaded parts are separated by edges that bob (unstable): close them
    # into one silhouette before deciding which components are anchored to the screen bottom.
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (params.merge_px, params.merge_px))
    merged = cv2.morphologyEx(stable.astype(np.uint8), cv2.MORPH_CLOSE, k)
    H, W = merged.shape
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(merged, connectivity=8)
    keep = np.zeros(n, dtype=bool)
    for c in range(1, n):
        top = stats[c, cv2.CC_STAT_TOP]
        bottom = top + stats[c, cv2.CC_STAT_HEIGHT]
        keep[c] = (
            stats[c, cv2.CC_STAT_AREA] >= params.min_area_fraction * H * W
            and bottom >= H * (1 - params.bottom_band)
            and top > 0  # the sky hangs from the top edge
            and centroids[c][1] >= H / 2
        )
    return _fill_holes(keep[labels])


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Set every pixel not reachable from the border through unset pixels."""
    padded = np.pad(mask.astype(np.uint8), 1)
    flood = padded.copy()
    cv2.floodFill(flood, None, (0, 0), 1)
    holes = flood[1:-1, 1:-1] == 0
    return mask | holes


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union
