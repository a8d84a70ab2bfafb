"""Colour jitter on training batches, so a detector trained on one palette works on another.

Test captures come from scene variants training never saw (an autumn park, a bunker): the same
geometry under other colours and light. A from-scratch detector that sees ten labeled bugs and
the objective's pairs in one palette otherwise keys on colour, e.g. "brown trunk over the gun".
Jitter is drawn per frame: brightness, contrast, saturation, a hue rotation (a rotation about the
grey axis of RGB, linear, so it is one 3x3 matrix per frame) and per-channel gains. Clipping
order (what is drawn over what) does not change under any of these, which is what makes them
safe for every bug type here.

Random draws come from the caller's generator (seeded per step), so resumed training sees the
same batches.
"""

from __future__ import annotations

import math

import numpy as np
import torch

_LUMA = torch.tensor([0.299, 0.587, 0.114])


def _hue_rotation(angle: float) -> np.ndarray:
    """3x3 matrix rotating RGB about the grey diagonal by ``angle`` radians."""
    c, s = math.cos(angle), math.sin(angle)
    k = 1.0 / 3.0
    r = math.sqrt(k)
    return np.array([
        [c + (1 - c) * k, k * (1 - c) - r * s, k * (1 - c) + r * s],
        [k * (1 - c) + r * s, c + k * (1 - c), k * (1 - c) - r * s],
        [k * (1 - c) - r * s, k * (1 - c) + r * s, c + k * (1 - c)],
    ], np.float32)


def color_jitter(images: torch.Tensor, rng: np.random.Generator, strength: float) -> torch.Tensor:
    """Jitter float RGB images [N, 3, H, W] in [0, 1]; ``strength`` 0 returns them unchanged.

    At strength 1: brightness and contrast x[0.6, 1.4], saturation x[0.4, 1.6], hue +-36 degrees,
    per-channel gains x[0.8, 1.2].
    """
    if strength <= 0 or images.shape[0] == 0:
        return images
    n = images.shape[0]
    s = float(strength)
    brightness = rng.uniform(1 - 0.4 * s, 1 + 0.4 * s, n)
    contrast = rng.uniform(1 - 0.4 * s, 1 + 0.4 * s, n)
    saturation = rng.uniform(1 - 0.6 * s, 1 + 0.6 * s, n)
    hue = rng.uniform(-0.2 * math.pi * s, 0.2 * math.pi * s, n)
    gains = rng.uniform(1 - 0.2 * s, 1 + 0.2 * s, (n, 3))
    mats = np.stack([_hue_rotation(a) * g[:, None] for a, g in zip(hue, gains)])  # [N, 3, 3]
    x = torch.einsum("nij,njhw->nihw", torch.from_numpy(mats).to(images), images)
    luma = (x * _LUMA.to(x).view(1, 3, 1, 1)).sum(1, keepdim=True)
    x = luma + (x - luma) * torch.from_numpy(saturation).to(x).view(n, 1, 1, 1)
    mean = luma.mean(dim=(2, 3), keepdim=True)
    x = mean + (x - mean) * torch.from_numpy(contrast).to(x).view(n, 1, 1, 1)
    x = x * torch.from_numpy(brightness).to(x).view(n, 1, 1, 1)
    return x.clamp_(0.0, 1.0)
