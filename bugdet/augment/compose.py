"""Compositing primitives shared by every objective.

A pasted region is a :class:`Layer`: colour and alpha for a rectangle of the target (its ROI),
so a 320x240 pair costs a few small array operations instead of full-frame passes. The random
*appearance* of a paste (scale, feathered edge, slight blur, lighting matched to the target,
colour jitter, sensor noise) is decided once per pair and applied to the layer before the
positive and the negative are composed from it: both carry exactly the same paste artefacts,
so a model cannot separate them by looking for paste seams.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import cv2
import numpy as np

from bugdet.augment.base import SourceMask, UnusableTarget

# Rec. 601 luma weights: the "lighting" of a region is its mean luma.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class AppearanceParams:
    """Ranges of the random appearance of a paste (uniform draws)."""

    feather_sigma: tuple[float, float] = (0.4, 1.6)  # px, inward edge softening
    blur_prob: float = 0.5
    blur_sigma: tuple[float, float] = (0.3, 0.9)  # px, slight defocus of the pasted texture
    light_match: tuple[float, float] = (0.3, 0.9)  # 0 = keep source lighting, 1 = target's mean luma
    brightness: tuple[float, float] = (0.85, 1.15)
    contrast: tuple[float, float] = (0.85, 1.15)
    channel_jitter: float = 0.05  # per-channel gain in 1 +/- this
    noise_sigma: tuple[float, float] = (0.0, 2.5)  # grey levels of Gaussian sensor noise


@dataclass
class Appearance:
    """One drawn appearance (kept in ``Sample.meta`` so a sheet can show what was done)."""

    feather_sigma: float
    blur_sigma: float
    light_match: float
    brightness: float
    contrast: float
    channel_gain: tuple[float, float, float]
    noise_sigma: float

    @classmethod
    def draw(cls, p: AppearanceParams, rng: np.random.Generator) -> "Appearance":
        blur = float(rng.uniform(*p.blur_sigma)) if rng.random() < p.blur_prob else 0.0
        gains = 1.0 + rng.uniform(-p.channel_jitter, p.channel_jitter, size=3)
        return cls(
            feather_sigma=float(rng.uniform(*p.feather_sigma)),
            blur_sigma=blur,
            light_match=float(rng.uniform(*p.light_match)),
            brightness=float(rng.uniform(*p.brightness)),
            contrast=float(rng.uniform(*p.contrast)),
            channel_gain=tuple(float(g) for g in gains),
            noise_sigma=float(rng.uniform(*p.noise_sigma)),
        )

    def to_meta(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else [round(x, 4) for x in v]) for k, v in self.__dict__.items()}


@dataclass
class Layer:
    """Colour and alpha of a paste over the rectangle ``[y0:y1, x0:x1]`` of the target."""

    y0: int
    y1: int
    x0: int
    x1: int
    rgb: np.ndarray  # float32 (y1-y0)x(x1-x0)x3
    alpha: np.ndarray  # float32 (y1-y0)x(x1-x0) in [0, 1]

    @property
    def roi(self) -> tuple[slice, slice]:
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def full_alpha(self, shape: tuple[int, int]) -> np.ndarray:
        out = np.zeros(shape, dtype=np.float32)
        out[self.roi] = self.alpha
        return out

    def composite(self, image: np.ndarray, alpha: np.ndarray | None = None, rgb: np.ndarray | None = None) -> np.ndarray:
        """``image`` with this layer blended on top (optionally with another ROI alpha or colour)."""
        a = self.alpha if alpha is None else alpha
        c = self.rgb if rgb is None else rgb
        out = image.copy()
        roi = out[self.roi].astype(np.float32)
        blended = roi + a[..., None] * (c - roi)
        out[self.roi] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
        return out


def fill_outside(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Colour outside the alpha replaced by the region's mean, so resizing and blurring never
    bleed the crop's neutral background into the region's edge."""
    inside = alpha > 0.5
    out = rgb.astype(np.float32, copy=True)
    if inside.any() and not inside.all():
        out[~inside] = out[inside].mean(axis=0)
    return out


def resized_source(source: SourceMask, scale_xy: tuple[float, float], flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Source colour (float32, background filled) and alpha (float32) resized by ``scale_xy``."""
    alpha = source.alpha_float()
    rgb = fill_outside(source.rgb, alpha)
    h, w = alpha.shape
    nw, nh = max(1, int(round(w * scale_xy[0]))), max(1, int(round(h * scale_xy[1])))
    interp = cv2.INTER_AREA if nw * nh < w * h else cv2.INTER_LINEAR
    rgb = cv2.resize(rgb, (nw, nh), interpolation=interp)
    alpha = cv2.resize(alpha, (nw, nh), interpolation=cv2.INTER_LINEAR)
    if rgb.ndim == 2:
        rgb = rgb[..., None]
    if flip:
        rgb, alpha = rgb[:, ::-1], alpha[:, ::-1]
    return np.ascontiguousarray(rgb), np.ascontiguousarray(alpha)


def clip_to_canvas(
    rgb: np.ndarray, alpha: np.ndarray, x: int, y: int, shape: tuple[int, int]
) -> Layer | None:
    """Place an array with its top-left corner at (x, y); None when nothing lands on the canvas."""
    H, W = shape
    h, w = alpha.shape
    x0, y0, x1, y1 = max(0, x), max(0, y), min(W, x + w), min(H, y + h)
    if x1 <= x0 or y1 <= y0:
        return None
    sy, sx = slice(y0 - y, y1 - y), slice(x0 - x, x1 - x)
    return Layer(y0, y1, x0, x1, np.ascontiguousarray(rgb[sy, sx]), np.ascontiguousarray(alpha[sy, sx]))


def feather(alpha: np.ndarray, sigma: float) -> np.ndarray:
    """Soften the edge inward only: the alpha never grows beyond the original region, so the
    feathered paste shows no halo of whatever surrounded the source."""
    if sigma <= 0:
        return alpha
    return cv2.GaussianBlur(alpha, (0, 0), sigma) * alpha


def luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) @ _LUMA


_NOISE_TILE = 64


def _noise(shape: tuple[int, ...], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian sensor noise; large areas repeat a 64x64 tile (a full-frame draw costs more than
    the rest of a pair, and a repeat of 1-2 grey-level noise is invisible)."""
    h, w = shape[:2]
    th, tw = min(h, _NOISE_TILE), min(w, _NOISE_TILE)
    tile = rng.standard_normal((th, tw, shape[2]), dtype=np.float32) * np.float32(sigma)
    if (th, tw) == (h, w):
        return tile
    return np.tile(tile, (-(-h // th), -(-w // tw), 1))[:h, :w]


def apply_appearance(layer: Layer, target: np.ndarray, look: Appearance, rng: np.random.Generator) -> Layer:
    """Light-match, jitter, blur, noise and feather ``layer`` in place against ``target``'s ROI."""
    return apply_shared_appearance([layer], target, look, rng)[0]


def _mean_luma(layer: Layer) -> float:
    inside = (layer.alpha > 0.5).astype(np.uint8)
    if not inside.any():
        inside = (layer.alpha > 0).astype(np.uint8)
    return float(np.dot(cv2.mean(layer.rgb, mask=inside)[:3], _LUMA)) if inside.any() else 128.0


def apply_shared_appearance(
    layers: Sequence[Layer], target: np.ndarray, look: Appearance, rng: np.random.Generator, lit_by: int = 0
) -> list[Layer]:
    """One appearance applied identically to layers that cover the same ROI with different colour
    (a bug and the clean content it is contrasted with), in place: one colour map, one blur, one
    noise draw, one feathered alpha. The lighting is matched from ``layers[lit_by]`` alone, so the
    map does not depend on the content that differs; e.g. a black bug region keeps its darkness
    instead of being brightened up to the target's mean."""
    first = layers[0]
    if any((layer.roi, layer.alpha.shape) != (first.roi, first.alpha.shape) for layer in layers):
        raise ValueError("shared appearance needs layers over the same ROI")
    src_mean = _mean_luma(layers[lit_by])
    tgt_mean = float(np.dot(cv2.mean(np.ascontiguousarray(target[first.roi]))[:3], _LUMA))
    # Move the source's mean luma toward the target's: pasted geometry should look lit by the
    # target scene, or brightness alone would give the paste away.
    want = src_mean + look.light_match * (tgt_mean - src_mean)
    gain = (want / max(src_mean, 1.0)) * look.brightness
    # contrast about the mean, then gain and channel jitter: one affine map per channel
    scale = look.contrast * gain * np.asarray(look.channel_gain, dtype=np.float64)
    offset = src_mean * (1.0 - look.contrast) * gain * np.asarray(look.channel_gain, dtype=np.float64)
    affine = np.zeros((3, 4), dtype=np.float64)
    affine[[0, 1, 2], [0, 1, 2]] = scale
    affine[:, 3] = offset
    noise = None
    alpha = feather(first.alpha, look.feather_sigma)
    for layer in layers:
        rgb = cv2.transform(np.ascontiguousarray(layer.rgb, dtype=np.float32), affine)
        if look.blur_sigma > 0:
            rgb = cv2.GaussianBlur(rgb, (0, 0), look.blur_sigma)
        if look.noise_sigma > 0:
            if noise is None:
                noise = _noise(rgb.shape, look.noise_sigma, rng)
            rgb += noise
        np.clip(rgb, 0, 255, out=rgb)
        layer.rgb = rgb
        layer.alpha = alpha.copy()
    return list(layers)


def choose_source(sources, rng: np.random.Generator) -> tuple[int, SourceMask]:
    if len(sources) == 0:
        raise UnusableTarget("no source masks to paste (the mask bank is empty)")
    weights = np.fromiter((s.weight for s in sources), dtype=np.float64, count=len(sources))
    if np.all(weights == weights[0]) or not np.all(np.isfinite(weights)) or weights.sum() <= 0:
        i = int(rng.integers(len(sources)))
    else:
        # The bank's weights give every cluster the same share, so omnipresent grass does not
        # dominate what gets pasted.
        i = int(np.searchsorted(np.cumsum(weights), rng.random() * weights.sum(), side="right"))
        i = min(i, len(sources) - 1)
    return i, sources[i]


def source_meta(source: SourceMask) -> dict[str, Any]:
    return {"source_mask_id": source.mask_id, "source_frame_id": source.frame_id, "source_label": source.label}
