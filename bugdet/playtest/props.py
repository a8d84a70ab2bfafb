"""Geometry of the things scenes are furnished with: trees, rocks, walls, buildings, benches...

Each function returns the parts of one object as ``(GeomNode, material)`` pairs plus, where the
object blocks the player, its collision footprint. Scene modules only decide where things go.
"""

from __future__ import annotations

import math

import numpy as np
from panda3d.core import GeomNode

from bugdet.playtest.collision import Box, Circle, Collider
from bugdet.playtest.meshes import MeshBuilder

Part = tuple[GeomNode, str | None]
WHITE = (1.0, 1.0, 1.0, 1.0)


def _shade(rng: np.random.Generator, base: float = 1.0, spread: float = 0.12) -> tuple[float, float, float, float]:
    k = base + rng.uniform(-spread, spread)
    return (k, k, k, 1.0)


def tree(rng: np.random.Generator, x: float, y: float, z: float) -> tuple[list[Part], list[Collider]]:
    """A broadleaf tree (trunk + lumpy crown) or a pine (trunk + stacked cones)."""
    trunk_r = rng.uniform(0.16, 0.32)
    trunk, crown = MeshBuilder(), MeshBuilder()
    if rng.random() < 0.35:
        height = rng.uniform(5.0, 8.0)
        trunk.cylinder((x, y, z - 0.2), trunk_r, trunk_r * 0.5, height * 0.5, _shade(rng), segments=7, uv_scale=1.0)
        tint = (rng.uniform(0.55, 0.75), rng.uniform(0.8, 1.0), rng.uniform(0.6, 0.8), 1.0)
        for k in range(3):
            base_z = z + 2.1 + k * height * 0.22  # lowest branches above head height
            r = (1.9 - k * 0.5) * rng.uniform(0.85, 1.15)
            crown.cylinder((x, y, base_z), r, 0.0, height * 0.38, tint, segments=8, uv_scale=1.5)
    else:
        height = rng.uniform(2.6, 3.6)  # crowns start above the eye, so no clean frame looks into foliage
        trunk.cylinder((x, y, z - 0.2), trunk_r, trunk_r * 0.7, height + 0.5, _shade(rng), segments=7, uv_scale=1.0)
        tint = (rng.uniform(0.8, 1.05), rng.uniform(0.85, 1.1), rng.uniform(0.6, 0.85), 1.0)
        for _ in range(int(rng.integers(3, 6))):
            off = rng.normal(0, 0.7, size=2)
            r = rng.uniform(1.1, 1.9)
            crown.blob((x + off[0], y + off[1], z + height + r * 0.6 + rng.uniform(0, 0.8)), (r, r, r * 0.8), tint,
                       rng=rng, jitter=0.18, rings=5, segments=8, uv_scale=1.5, color_jitter=0.1)
    parts = [(trunk.build("trunk"), "bark"), (crown.build("crown"), "leaves")]
    return parts, [Circle(x, y, trunk_r + 0.05)]


def rock(rng: np.random.Generator, x: float, y: float, z: float, size: float | None = None) -> tuple[list[Part], list[Collider]]:
    r = size if size is not None else rng.uniform(0.5, 1.6)
    mb = MeshBuilder()
    mb.blob((x, y, z + r * 0.25), (r * rng.uniform(0.9, 1.3), r * rng.uniform(0.8, 1.1), r * rng.uniform(0.5, 0.8)),
            _shade(rng, 1.0, 0.1), rng=rng, jitter=0.22, rings=5, segments=9, uv_scale=1.2, color_jitter=0.08)
    return [(mb.build("rock"), "rock")], [Circle(x, y, r * 0.9)]


def wall(x: float, y: float, length: float, height: float, thickness: float, heading: float, material: str,
         cap: bool = True) -> tuple[list[Part], list[Collider]]:
    """A straight wall centred at (x, y) running along its local x axis; ``heading`` rotates it."""
    mb = MeshBuilder()
    mb.box((0, 0, height / 2 - 0.3), (length, thickness, height + 0.6), WHITE, uv_scale=2.0)
    mb.shade_by_height(-0.6, min(height, 2.0), 0.68)
    parts: list[Part] = [(mb.build("wall"), material)]
    if cap:
        top = MeshBuilder()
        top.box((0, 0, height + 0.05), (length + 0.1, thickness + 0.12, 0.1), (0.8, 0.8, 0.8, 1.0), uv_scale=1.0)
        parts.append((top.build("cap"), "concrete"))
    return parts, [Box(x, y, length / 2, thickness / 2, heading)]


def building(rng: np.random.Generator, sx: float, sy: float, height: float, wall_material: str) -> list[Part]:
    """A house-like block at the origin: walls, a pitched roof, door and windows that stand proud."""
    body = MeshBuilder()
    body.box((0, 0, height / 2 - 0.5), (sx, sy, height + 1.0), WHITE, uv_scale=2.5)
    roof = MeshBuilder()
    ridge = rng.uniform(1.5, 2.5)
    over = 0.4
    x0, x1, y0, y1 = -sx / 2 - over, sx / 2 + over, -sy / 2 - over, sy / 2 + over
    zt = height
    slope_len = math.hypot(sy / 2 + over, ridge)
    ny, nz = (sy / 2 + over) / slope_len, ridge / slope_len
    roof.quad([(x0, y0, zt), (x1, y0, zt), (x1, 0, zt + ridge), (x0, 0, zt + ridge)], (0, -nz, ny), [(0, 0), (sx / 2, 0), (sx / 2, slope_len / 2), (0, slope_len / 2)], WHITE)
    roof.quad([(x1, y1, zt), (x0, y1, zt), (x0, 0, zt + ridge), (x1, 0, zt + ridge)], (0, nz, ny), [(0, 0), (sx / 2, 0), (sx / 2, slope_len / 2), (0, slope_len / 2)], WHITE)
    gables = MeshBuilder()
    for side in (-1, 1):
        xs = side * sx / 2
        a, b, c = (xs, -sy / 2, zt), (xs, sy / 2, zt), (xs, 0, zt + ridge - 0.2)
        idx = [gables.vertex(p, (side, 0, 0), (p[1] / 2.5, p[2] / 2.5), WHITE) for p in (a, b, c)]
        gables.triangles.append((idx[0], idx[1], idx[2]) if side > 0 else (idx[0], idx[2], idx[1]))
    trim = MeshBuilder()
    trim.box((0, -sy / 2 - 0.05, 1.1), (1.2, 0.12, 2.2), (0.45, 0.3, 0.2, 1.0), uv_scale=1.0)  # door
    glass = (0.25, 0.35, 0.45, 1.0)
    n_win = max(1, int(sx // 3))
    for i in range(n_win):
        wx = -sx / 2 + (i + 0.5) * sx / n_win
        if -2.4 < wx < 1.0:  # keep the door and the poster spot left of it clear
            continue
        trim.box((wx, -sy / 2 - 0.04, 1.7), (1.1, 0.1, 1.2), glass, uv_scale=4.0)
        trim.box((wx, sy / 2 + 0.04, 1.7), (1.1, 0.1, 1.2), glass, uv_scale=4.0)
    for j in range(max(1, int(sy // 3))):
        wy = -sy / 2 + (j + 0.5) * sy / max(1, int(sy // 3))
        trim.box((sx / 2 + 0.04, wy, 1.7), (0.1, 1.1, 1.2), glass, uv_scale=4.0)
        trim.box((-sx / 2 - 0.04, wy, 1.7), (0.1, 1.1, 1.2), glass, uv_scale=4.0)
    return [(body.build("body"), wall_material), (gables.build("gables"), wall_material), (roof.build("roof"), "roof"), (trim.build("trim"), "metal")]


def bench() -> list[Part]:
    """A park bench at the origin, seat along local x (2 m long)."""
    wood, iron = MeshBuilder(), MeshBuilder()
    for k in range(3):
        wood.box((0, -0.2 + k * 0.16, 0.45), (2.0, 0.12, 0.05), WHITE, uv_scale=1.0)
    for k in range(2):
        wood.box((0, 0.22, 0.65 + k * 0.18), (2.0, 0.05, 0.12), WHITE, uv_scale=1.0)
    dark = (0.25, 0.25, 0.27, 1.0)
    for sx in (-0.85, 0.85):
        iron.box((sx, -0.15, 0.21), (0.06, 0.06, 0.42), dark, uv_scale=1.0)
        iron.box((sx, 0.2, 0.4), (0.06, 0.06, 0.8), dark, uv_scale=1.0)
        iron.box((sx, 0.02, 0.42), (0.06, 0.45, 0.05), dark, uv_scale=1.0)
    return [(wood.build("seat"), "planks"), (iron.build("frame"), "metal")]


def lamp_post(rng: np.random.Generator) -> list[Part]:
    mb = MeshBuilder()
    dark = (0.2, 0.22, 0.24, 1.0)
    mb.cylinder((0, 0, 0), 0.12, 0.07, 3.6, dark, segments=8, uv_scale=1.0)
    mb.box((0, 0.25, 3.55), (0.08, 0.55, 0.08), dark, uv_scale=1.0)
    lamp = MeshBuilder()
    lamp.cylinder((0, 0.5, 3.25), 0.16, 0.22, 0.3, (1.0, 0.95, 0.75, 1.0), segments=8, uv_scale=1.0)
    return [(mb.build("post"), "metal"), (lamp.build("lamp"), None)]


def crate(size: float) -> list[Part]:
    mb = MeshBuilder()
    mb.box((0, 0, size / 2), (size, size, size), WHITE, uv_scale=size)
    return [(mb.build("crate"), "crate")]


def barrel(rng: np.random.Generator) -> list[Part]:
    mb = MeshBuilder()
    color = [(0.55, 0.15, 0.12, 1.0), (0.2, 0.35, 0.55, 1.0), (0.3, 0.45, 0.25, 1.0)][int(rng.integers(3))]
    mb.cylinder((0, 0, 0), 0.3, 0.3, 0.9, color, segments=10, uv_scale=0.9)
    mb.cylinder((0, 0, 0.2), 0.31, 0.31, 0.05, (0.3, 0.3, 0.3, 1.0), segments=10, caps=False)
    mb.cylinder((0, 0, 0.65), 0.31, 0.31, 0.05, (0.3, 0.3, 0.3, 1.0), segments=10, caps=False)
    return [(mb.build("barrel"), "metal")]


def trash_bin() -> list[Part]:
    mb = MeshBuilder()
    mb.cylinder((0, 0, 0), 0.25, 0.28, 0.85, (0.25, 0.38, 0.28, 1.0), segments=10, uv_scale=1.0)
    mb.cylinder((0, 0, 0.85), 0.3, 0.3, 0.06, (0.2, 0.2, 0.2, 1.0), segments=10)
    return [(mb.build("bin"), "metal")]


def fence_segment(length: float) -> list[Part]:
    """Wooden fence along local x: posts every 2 m, two rails."""
    mb = MeshBuilder()
    n = max(1, int(length // 2))
    for i in range(n + 1):
        mb.box((-length / 2 + i * length / n, 0, 0.35), (0.12, 0.12, 1.7), WHITE, uv_scale=1.0)  # sunk 0.5 m: slopes
    for zr in (0.45, 0.95):
        mb.box((0, 0, zr), (length, 0.05, 0.14), WHITE, uv_scale=1.0)
    return [(mb.build("fence"), "planks")]


def pillar(radius: float, height: float) -> list[Part]:
    mb = MeshBuilder()
    mb.cylinder((0, 0, 0), radius, radius, height, WHITE, segments=10, uv_scale=1.5)
    mb.cylinder((0, 0, 0), radius * 1.3, radius * 1.3, 0.25, (0.85, 0.85, 0.85, 1.0), segments=10)
    return [(mb.build("pillar"), "concrete")]


def poster_quad(width: float, height: float, bands: list[tuple[float, float]] | None = None) -> GeomNode:
    """A poster in its local frame (facing -y); with ``bands`` only those (v0, v1) strips are built,
    which is how the z-fighting bug draws a poster losing the depth test in stripes."""
    mb = MeshBuilder()
    for v0, v1 in bands or [(0.0, 1.0)]:
        z0, z1 = height * v0, height * v1
        mb.quad([(-width / 2, 0, z0), (width / 2, 0, z0), (width / 2, 0, z1), (-width / 2, 0, z1)], (0, -1, 0),
                [(0, v0), (1, v0), (1, v1), (0, v1)], WHITE)
    return mb.build("poster")
