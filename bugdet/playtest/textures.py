"""Procedural surface textures made with numpy, and the broken variants the texture bugs swap in.

Textures are tileable (built from periodic noise), seeded, and small (128 px): the software
renderer samples them per pixel, and at 320x240 larger ones would only cost time. The bug
variants (magenta-black placeholder checker, a low-resolution copy) are built from the same
images, so a bug frame differs from the correct frame in exactly the affected surface.
"""

from __future__ import annotations

import numpy as np
from panda3d.core import SamplerState, Texture

SIZE = 128


def periodic_noise(rng: np.random.Generator, size: int = SIZE, beta: float = 2.0, low_cut: float = 1.0) -> np.ndarray:
    """Tileable 1/f^beta noise in [0, 1] (FFT of filtered white noise, so it wraps seamlessly)."""
    white = rng.standard_normal((size, size))
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    f = np.sqrt(fx * fx + fy * fy) * size
    f[0, 0] = 1.0
    spectrum = np.fft.fft2(white) / np.maximum(f, low_cut) ** (beta / 2.0)
    spectrum[0, 0] = 0
    out = np.real(np.fft.ifft2(spectrum))
    out -= out.min()
    return out / max(out.max(), 1e-9)


def _tint(gray: np.ndarray, low: tuple[float, float, float], high: tuple[float, float, float]) -> np.ndarray:
    lo, hi = np.array(low, dtype=np.float32), np.array(high, dtype=np.float32)
    return lo + (hi - lo) * gray[..., None]


def _to_u8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)


def grass(rng: np.random.Generator) -> np.ndarray:
    n = 0.6 * periodic_noise(rng, beta=2.2) + 0.4 * periodic_noise(rng, beta=0.6)
    blades = (rng.random((SIZE, SIZE)) > 0.93).astype(np.float32) * 0.25
    return _to_u8(_tint(np.clip(n + blades, 0, 1), (0.16, 0.30, 0.08), (0.45, 0.62, 0.22)))


def dirt(rng: np.random.Generator) -> np.ndarray:
    n = 0.7 * periodic_noise(rng, beta=2.0) + 0.3 * periodic_noise(rng, beta=0.4)
    return _to_u8(_tint(n, (0.36, 0.27, 0.17), (0.66, 0.55, 0.40)))


def bark(rng: np.random.Generator) -> np.ndarray:
    streaks = periodic_noise(rng, beta=2.5)
    streaks = np.repeat(streaks[:, :1], SIZE, axis=1) * 0.0 + streaks
    vertical = np.tile(periodic_noise(rng, beta=1.5)[:1, :], (SIZE, 1))
    n = np.clip(0.55 * vertical + 0.45 * streaks, 0, 1)
    return _to_u8(_tint(n, (0.18, 0.12, 0.08), (0.45, 0.33, 0.22)))


def leaves(rng: np.random.Generator) -> np.ndarray:
    n = 0.5 * periodic_noise(rng, beta=1.0) + 0.5 * periodic_noise(rng, beta=0.2)
    return _to_u8(_tint(n, (0.10, 0.25, 0.06), (0.40, 0.62, 0.20)))


def rock(rng: np.random.Generator) -> np.ndarray:
    n = 0.6 * periodic_noise(rng, beta=2.4) + 0.4 * periodic_noise(rng, beta=1.0)
    cracks = (np.abs(periodic_noise(rng, beta=2.0) - 0.5) < 0.015).astype(np.float32)
    return _to_u8(_tint(np.clip(n - 0.35 * cracks, 0, 1), (0.30, 0.30, 0.29), (0.66, 0.64, 0.60)))


def bricks(rng: np.random.Generator, base: tuple[float, float, float] = (0.55, 0.25, 0.18)) -> np.ndarray:
    """Running-bond bricks: 8 rows of 4 bricks, mortar lines, per-brick colour variation."""
    img = np.zeros((SIZE, SIZE, 3), dtype=np.float32)
    rows, cols = 8, 4
    bh, bw = SIZE // rows, SIZE // cols
    noise = periodic_noise(rng, beta=1.2)
    for r in range(rows):
        offset = (bw // 2) * (r % 2)
        for c in range(cols + 1):
            shade = rng.uniform(0.75, 1.15)
            x0 = c * bw - offset
            ys = slice(r * bh, (r + 1) * bh)
            for x in range(max(x0, 0), min(x0 + bw, SIZE)):
                img[ys, x] = np.array(base) * shade
    img *= (0.8 + 0.4 * noise)[..., None]
    mortar = np.zeros((SIZE, SIZE), dtype=bool)
    for r in range(rows):
        mortar[r * bh:r * bh + 2, :] = True
        offset = (bw // 2) * (r % 2)
        for c in range(cols + 1):
            x = (c * bw - offset) % SIZE
            mortar[r * bh:(r + 1) * bh, x:x + 2] = True
    img[mortar] = np.array([0.62, 0.60, 0.55]) * (0.85 + 0.3 * noise[mortar])[:, None]
    return _to_u8(img)


def concrete(rng: np.random.Generator, tone: float = 0.6) -> np.ndarray:
    n = 0.5 * periodic_noise(rng, beta=2.0) + 0.5 * periodic_noise(rng, beta=0.3)
    stains = periodic_noise(rng, beta=3.0)
    g = np.clip(tone * (0.8 + 0.3 * n) - 0.12 * (stains > 0.7), 0, 1)
    return _to_u8(np.repeat(g[..., None], 3, axis=2) * np.array([1.0, 0.98, 0.95]))


def plaster(rng: np.random.Generator, color: tuple[float, float, float]) -> np.ndarray:
    n = 0.85 + 0.15 * periodic_noise(rng, beta=1.0)
    return _to_u8(np.array(color)[None, None, :] * n[..., None])


def wall_panels(rng: np.random.Generator, color: tuple[float, float, float]) -> np.ndarray:
    """Interior wall: painted panels with seams, a dark skirting band and scuffs (one 2 m tile)."""
    img = np.array(color)[None, None, :] * (0.82 + 0.2 * periodic_noise(rng, beta=1.2))[..., None]
    stains = periodic_noise(rng, beta=2.6)
    img *= (1.0 - 0.25 * np.clip(stains - 0.6, 0, 1) * 2.5)[..., None]
    img[:, :3] *= 0.55  # vertical seam between panels
    img[:, SIZE // 2:SIZE // 2 + 2] *= 0.7
    img[SIZE // 2 - 2:SIZE // 2] *= 0.6  # rail
    img[SIZE // 2 + 1:SIZE // 2 + 3] *= 1.15
    img[SIZE // 2:] *= 0.8  # darker lower half, a painted dado
    return _to_u8(np.clip(img, 0, 1))


def planks(rng: np.random.Generator, base: tuple[float, float, float] = (0.52, 0.36, 0.20)) -> np.ndarray:
    """Wooden planks (floors, benches, crates): 4 boards with grain and dark seams."""
    img = np.zeros((SIZE, SIZE, 3), dtype=np.float32)
    grain = np.tile(periodic_noise(rng, beta=1.6)[:, :1], (1, SIZE))
    fine = periodic_noise(rng, beta=0.8)
    boards = 4
    w = SIZE // boards
    for b in range(boards):
        shade = rng.uniform(0.8, 1.15)
        img[:, b * w:(b + 1) * w] = np.array(base) * shade
    img *= (0.75 + 0.35 * (0.6 * np.roll(grain.T, 0, axis=0) + 0.4 * fine))[..., None]
    for b in range(boards):
        img[:, b * w:b * w + 2] *= 0.45
    return _to_u8(img)


def crate(rng: np.random.Generator) -> np.ndarray:
    """A crate face: planks with a dark frame and a diagonal brace."""
    img = planks(rng, (0.60, 0.45, 0.25)).astype(np.float32) / 255.0
    border = 12
    img[:border] *= 0.6
    img[-border:] *= 0.6
    img[:, :border] *= 0.6
    img[:, -border:] *= 0.6
    for i in range(SIZE):
        img[i, max(0, i - 7):min(SIZE, i + 7)] *= 0.7
    return _to_u8(img)


def metal(rng: np.random.Generator, tone: float = 0.5) -> np.ndarray:
    brushed = np.tile(periodic_noise(rng, beta=1.0)[:1, :], (SIZE, 1))
    n = np.clip(tone * (0.85 + 0.2 * brushed + 0.1 * periodic_noise(rng, beta=2.0)), 0, 1)
    return _to_u8(np.repeat(n[..., None], 3, axis=2) * np.array([0.95, 0.97, 1.0]))


def tiles(rng: np.random.Generator, a: tuple[float, float, float], b: tuple[float, float, float]) -> np.ndarray:
    """Floor tiles: a 4x4 two-tone pattern with grout and wear."""
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    cell = SIZE // 4
    pattern = ((x // cell + y // cell) % 2).astype(np.float32)
    img = np.where(pattern[..., None] > 0, np.array(a), np.array(b)).astype(np.float32)
    img *= (0.85 + 0.2 * periodic_noise(rng, beta=1.5))[..., None]
    grout = (x % cell < 2) | (y % cell < 2)
    img[grout] = 0.25
    return _to_u8(img)


def roof(rng: np.random.Generator) -> np.ndarray:
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    rows = 8
    h = SIZE // rows
    shade = 0.75 + 0.25 * ((y % h) / h)
    img = np.array([0.45, 0.18, 0.14])[None, None, :] * shade[..., None]
    img *= (0.85 + 0.25 * periodic_noise(rng, beta=1.5))[..., None]
    img[(x + (y // h) * (SIZE // 16)) % (SIZE // 8) < 2] *= 0.6
    return _to_u8(img)


def poster(rng: np.random.Generator) -> np.ndarray:
    """A game-world poster: bold bands, a disc emblem and a title bar, in a seeded palette."""
    palette = rng.uniform(0.1, 0.95, size=(4, 3))
    img = np.zeros((SIZE, SIZE, 3), dtype=np.float32) + palette[0]
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    img[(y // 16) % 3 == 0] = palette[1]
    cx, cy, r = rng.integers(40, 88), rng.integers(50, 90), rng.integers(18, 34)
    img[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = palette[2]
    img[8:30, 10:118] = palette[3]
    for k in range(6):  # "letters" on the title bar
        x0 = 16 + k * 17
        img[13:25, x0:x0 + 10] = palette[0] * 0.4
    img[:4] = img[-4:] = 0.95
    img[:, :4] = img[:, -4:] = 0.95
    return _to_u8(img)


def placeholder_checker(size: int = SIZE, cells: int = 8) -> np.ndarray:
    """The engine's missing-texture stand-in: a magenta/black checkerboard."""
    y, x = np.mgrid[0:size, 0:size]
    on = ((x // (size // cells) + y // (size // cells)) % 2) == 0
    img = np.zeros((size, size, 3), dtype=np.uint8)
    img[on] = (255, 0, 255)
    return img


def low_resolution(image: np.ndarray, size: int = 4) -> np.ndarray:
    """What a texture looks like when only a tiny mip level streamed in: a few blocky texels."""
    import cv2

    small = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)


def to_texture(name: str, rgb: np.ndarray, nearest: bool = False) -> Texture:
    """A Panda3D texture from an RGB uint8 image (row 0 = top of the image)."""
    h, w = rgb.shape[:2]
    tex = Texture(name)
    tex.setup2dTexture(w, h, Texture.T_unsigned_byte, Texture.F_rgb)
    tex.setRamImage(np.ascontiguousarray(rgb[::-1, :, ::-1]).tobytes())  # Panda: bottom-up, BGR
    tex.setWrapU(SamplerState.WM_repeat)
    tex.setWrapV(SamplerState.WM_repeat)
    if nearest:
        tex.setMagfilter(SamplerState.FT_nearest)
        tex.setMinfilter(SamplerState.FT_nearest)
    else:
        tex.setMagfilter(SamplerState.FT_linear)
        tex.setMinfilter(SamplerState.FT_linear_mipmap_linear)
    return tex


class TextureLibrary:
    """All textures of one world, built once from the layout seed, keyed by material name."""

    def __init__(self, rng: np.random.Generator):
        self._rng = rng
        self.images: dict[str, np.ndarray] = {}
        self.textures: dict[str, Texture] = {}

    def add(self, name: str, rgb: np.ndarray) -> Texture:
        self.images[name] = rgb
        self.textures[name] = to_texture(name, rgb)
        return self.textures[name]

    def get(self, name: str) -> Texture:
        return self.textures[name]

    @property
    def rng(self) -> np.random.Generator:
        return self._rng

    def placeholder(self) -> Texture:
        if "__placeholder" not in self.textures:
            self.textures["__placeholder"] = to_texture("placeholder", placeholder_checker(), nearest=True)
        return self.textures["__placeholder"]

    def detail(self, name: str) -> float:
        """How much a texture loses at low resolution (mean absolute 8-bit difference): plain
        plaster loses almost nothing, so low-res and stretched bugs on it would be invisible."""
        image = self.images[name].astype(np.float32)
        return float(np.abs(image - low_resolution(self.images[name]).astype(np.float32)).mean())

    def low_res(self, name: str) -> Texture:
        key = "__lowres_" + name
        if key not in self.textures:
            self.textures[key] = to_texture(key, low_resolution(self.images[name]), nearest=True)
        return self.textures[key]
