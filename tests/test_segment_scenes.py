"""Synthetic game-like frames with exact object-ID maps, for the segmentation tests.

Frames are drawn with OpenCV: a sky gradient, a noisy textured ground, and shaded, textured
objects (crates, barrels, rocks) with blended outlines and sensor-like noise, plus the 16-bit ID
map and the id -> {name, category} legend an engine capture would carry. The helpers are
imported by the other ``test_segment*`` files; the tests below check the helper itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CATEGORIES = ("crate", "barrel", "rock")


@dataclass
class Scene:
    rgb: np.ndarray
    ids: np.ndarray  # uint16, 0 = sky
    legend: dict[str, dict[str, str]]  # str(id) -> {name, category}


def surface_texture(rng: np.random.Generator, height: int, width: int, amplitude: float) -> np.ndarray:
    """Smooth 1/f noise with standard deviation ``amplitude``: the look of procedural game textures."""
    white = rng.standard_normal((height, width))
    fy, fx = np.fft.fftfreq(height)[:, None], np.fft.fftfreq(width)[None, :]
    f = np.maximum(np.sqrt(fx * fx + fy * fy) * max(height, width), 1.0)
    noise = np.real(np.fft.ifft2(np.fft.fft2(white) / f))
    return amplitude * (noise - noise.mean()) / max(noise.std(), 1e-9)


def _shaded_fill(
    canvas: np.ndarray, region: np.ndarray, colour: np.ndarray, rng: np.random.Generator, texture: float
) -> None:
    """Fill ``region`` with ``colour`` lit by a linear gradient (about +-12 levels across the object)
    and modulated by a texture of ``texture`` levels standard deviation."""
    ys, xs = np.nonzero(region)
    if xs.size == 0:
        return
    direction = rng.normal(size=2)
    direction /= np.linalg.norm(direction)
    proj = (xs - xs.mean()) * direction[0] + (ys - ys.mean()) * direction[1]
    span = max(1.0, float(np.abs(proj).max()))
    shade = 12.0 * proj / span
    if texture > 0:
        shade = shade + surface_texture(rng, *region.shape, texture)[ys, xs]
    canvas[ys, xs] = np.clip(colour[None, :] + shade[:, None], 0, 255)


def _distinct_colour(rng: np.random.Generator, avoid: list[np.ndarray], min_distance: float = 60.0) -> np.ndarray:
    """A random object colour at least ``min_distance`` (RGB) from the sky and ground colours.

    An object coloured like the ground is invisible in the pixels: the engine knows it, no
    image segmenter can, so the scenes avoid that case instead of testing the impossible.
    """
    while True:
        colour = rng.uniform(40, 230, size=3)
        if all(np.linalg.norm(colour - a) >= min_distance for a in avoid):
            return colour


def draw_scene(seed: int, width: int = 320, height: int = 240, n_objects: int = 6, texture: float = 8.0) -> Scene:
    rng = np.random.default_rng(seed)
    canvas = np.zeros((height, width, 3), dtype=np.float64)
    ids = np.zeros((height, width), dtype=np.uint16)
    legend: dict[str, dict[str, str]] = {}
    horizon = int(height * rng.uniform(0.35, 0.5))
    sky_top, sky_bottom = np.array([90.0, 140.0, 220.0]), np.array([170.0, 200.0, 240.0])
    t = np.linspace(0, 1, horizon)[:, None, None]
    canvas[:horizon] = sky_top * (1 - t) + sky_bottom * t
    ground_mean = np.array([70.0, 120.0, 50.0])
    ground = ground_mean + rng.normal(0, 10, size=(height - horizon, width, 1))
    canvas[horizon:] = cv2.GaussianBlur(ground, (0, 0), 1.2).reshape(height - horizon, width, -1)
    ids[horizon:] = 1
    legend["1"] = {"name": "ground", "category": "terrain"}
    for k in range(n_objects):
        object_id = k + 2
        category = CATEGORIES[k % len(CATEGORIES)]
        cx = int(rng.uniform(0.1, 0.9) * width)
        cy = int(rng.uniform(horizon - 0.1 * height, 0.9 * height))
        size = int(rng.uniform(0.06, 0.14) * width)
        region = np.zeros((height, width), dtype=np.uint8)
        if category == "crate":
            cv2.rectangle(region, (cx - size // 2, cy - size // 2), (cx + size // 2, cy + size // 3), 1, -1)
        elif category == "barrel":
            cv2.ellipse(region, (cx, cy), (size // 3, size // 2), 0, 0, 360, 1, -1)
        else:
            angles = np.sort(rng.uniform(0, 2 * np.pi, 7))
            radii = size * rng.uniform(0.35, 0.6, 7)
            poly = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1).astype(np.int32)
            cv2.fillPoly(region, [poly], 1)
        colour = _distinct_colour(rng, [ground_mean, sky_top, sky_bottom])
        _shaded_fill(canvas, region > 0, colour, rng, texture)
        ids[region > 0] = object_id  # later objects occlude earlier ones, in both image and IDs
        legend[str(object_id)] = {"name": f"{category}_{k}", "category": category}
    canvas += rng.normal(0, 2.0, size=canvas.shape)
    rgb = np.clip(canvas, 0, 255).astype(np.uint8)
    # Anti-aliasing: a renderer blends colours across outlines; a light blur does the same here.
    rgb = cv2.GaussianBlur(rgb, (3, 3), 0.6)
    return Scene(rgb=rgb, ids=ids, legend=legend)


def object_masks(scene: Scene, min_area: int) -> dict[int, np.ndarray]:
    """Engine objects (ids >= 2, not ground or sky) with at least ``min_area`` visible pixels."""
    out = {}
    for object_id in np.unique(scene.ids):
        if object_id < 2:
            continue
        mask = scene.ids == object_id
        if mask.sum() >= min_area:
            out[int(object_id)] = mask
    return out


def test_scene_ids_match_drawn_objects():
    scene = draw_scene(seed=3)
    assert scene.rgb.shape == (240, 320, 3) and scene.rgb.dtype == np.uint8
    assert scene.ids.dtype == np.uint16
    present = {int(i) for i in np.unique(scene.ids)}
    assert {0, 1} <= present
    assert all(str(i) in scene.legend for i in present - {0})
    # Object pixels differ in colour from the ground right around them (they were drawn).
    masks = object_masks(scene, min_area=50)
    assert masks, "the scene must contain visible objects"


def test_scene_is_deterministic():
    a, b = draw_scene(seed=9), draw_scene(seed=9)
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.ids, b.ids)
