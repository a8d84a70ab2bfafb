"""Colour jitter on training batches: what it may change and what it must not."""

import numpy as np
import torch

from bugdet.detect.photometric import _hue_rotation, color_jitter


def _batch(n: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand((n, 3, 24, 32), generator=g)


def test_zero_strength_is_identity():
    x = _batch()
    assert color_jitter(x, np.random.default_rng(0), 0.0) is x


def test_stays_in_range_and_changes_colours():
    x = _batch()
    y = color_jitter(x.clone(), np.random.default_rng(1), 1.0)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    per_frame_change = (y - x).abs().mean(dim=(1, 2, 3))
    assert bool((per_frame_change > 0.005).all())


def test_same_generator_state_gives_same_batch():
    x = _batch()
    a = color_jitter(x.clone(), np.random.default_rng(7), 0.8)
    b = color_jitter(x.clone(), np.random.default_rng(7), 0.8)
    c = color_jitter(x.clone(), np.random.default_rng(8), 0.8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_hue_rotation_keeps_grey_and_luminance_order_of_a_grey_ramp():
    for angle in (-0.6, 0.3, 1.0):
        m = _hue_rotation(angle)
        grey = np.array([0.4, 0.4, 0.4], np.float32)
        np.testing.assert_allclose(m @ grey, grey, atol=1e-6)
        # A rotation: lengths are kept.
        v = np.array([0.9, 0.1, 0.3], np.float32)
        np.testing.assert_allclose(np.linalg.norm(m @ v), np.linalg.norm(v), rtol=1e-5)


def test_spatial_structure_is_untouched():
    """Jitter is per-pixel colour only: an edge stays exactly where it was (occlusion order is
    what the detector must read, and jitter must never move it)."""
    x = torch.zeros((2, 3, 16, 16))
    x[:, :, :, 8:] = 0.8
    y = color_jitter(x, np.random.default_rng(3), 1.0)
    left, right = y[:, :, :, :8], y[:, :, :, 8:]
    assert torch.allclose(left, left[:, :, :1, :1].expand_as(left), atol=1e-6)
    assert torch.allclose(right, right[:, :, :1, :1].expand_as(right), atol=1e-6)
    assert bool(((right - left).abs().sum(1) > 0.05).all())
