"""The outdoor park level: rolling grass, paths, trees, rocks, walls, houses, benches, lamps.

Modelled on the kind of map the FPPC paper's team tested (an open park with trees, trails and
buildings). The layout is procedural from the layout seed; variants change the palette and the
density, and one variant is held out for test sets (see :mod:`bugdet.playtest.split`).
"""

from __future__ import annotations

import math

import numpy as np
from panda3d.core import NodePath

from bugdet.playtest import props, textures as tx
from bugdet.playtest.lighting import apply_lights, make_sky, pick_environment
from bugdet.playtest.meshes import MeshBuilder
from bugdet.playtest.seeding import stream
from bugdet.playtest.shadows import blob_shadows
from bugdet.playtest.decals import add_poster
from bugdet.playtest.world import World

HALF = 30.0  # the walkable area is [-HALF, HALF]^2, fenced
VARIANTS = {
    "summer": {"leaf_tint": (0.9, 1.0, 0.85), "grass_tint": (1.0, 1.0, 1.0), "trees": (26, 34)},
    "dry": {"leaf_tint": (1.05, 1.0, 0.6), "grass_tint": (1.25, 1.05, 0.65), "trees": (18, 26)},
    "autumn": {"leaf_tint": (1.6, 0.85, 0.35), "grass_tint": (1.1, 0.95, 0.7), "trees": (24, 32)},
}


class _Occupancy:
    """Keeps props apart so every object is reachable and the player can walk between them."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.discs: list[tuple[float, float, float]] = []

    def free(self, x: float, y: float, r: float, margin: float = 1.0) -> bool:
        return all(math.hypot(x - ox, y - oy) > r + orad + margin for ox, oy, orad in self.discs)

    def place(self, r: float, margin: float = 1.0, limit: float = HALF - 2.0, tries: int = 200) -> tuple[float, float] | None:
        for _ in range(tries):
            x, y = self.rng.uniform(-limit, limit, size=2)
            if self.free(x, y, r, margin):
                self.discs.append((float(x), float(y), r))
                return float(x), float(y)
        return None


def _height_function(rng: np.random.Generator):
    p = rng.uniform(0, 2 * math.pi, size=4)

    def height(x: float, y: float) -> float:
        h = 0.45 * math.sin(0.11 * x + p[0]) * math.cos(0.09 * y + p[1]) + 0.25 * math.sin(0.21 * x + 0.17 * y + p[2])
        rim = max(abs(x), abs(y)) - HALF
        if rim > 0:  # hills beyond the fence close the horizon
            h += min(0.025 * rim * rim, 9.0) * (1.0 + 0.3 * math.sin(0.3 * (x + y) + p[3]))
        return h

    return height


def _path_distance(segments: np.ndarray, x: float, y: float) -> float:
    """Distance from (x, y) to the nearest trail segment (rows of ax, ay, bx, by)."""
    a, b = segments[:, :2], segments[:, 2:]
    ab = b - a
    p = np.array([x, y])
    t = np.clip(((p - a) * ab).sum(1) / np.maximum((ab * ab).sum(1), 1e-9), 0, 1)
    return float(np.min(np.linalg.norm(p - (a + t[:, None] * ab), axis=1)))


def build_park(layout_seed: int, variant: str, env_seed: int) -> World:
    style = VARIANTS[variant]
    rng = stream(layout_seed, f"park/{variant}/layout")
    lib = tx.TextureLibrary(stream(layout_seed, "park/textures"))
    trng = lib.rng
    for name, image in (
        ("grass", tx.grass(trng)), ("bark", tx.bark(trng)), ("leaves", tx.leaves(trng)), ("rock", tx.rock(trng)),
        ("bricks", tx.bricks(trng)), ("stone", tx.bricks(trng, (0.5, 0.48, 0.44))), ("concrete", tx.concrete(trng)),
        ("plaster", tx.plaster(trng, tuple(rng.uniform(0.6, 0.9, size=3)))), ("planks", tx.planks(trng)),
        ("crate", tx.crate(trng)), ("metal", tx.metal(trng)), ("roof", tx.roof(trng)),
    ):
        lib.add(name, image)
    env = pick_environment(stream(env_seed, "environment"), indoor=False)
    root = NodePath("park")
    height = _height_function(rng)
    world = World(scene="park", variant=variant, root=root, textures=lib, environment=env, height=height,
                  bounds=(-HALF, -HALF, HALF, HALF))
    apply_lights(root, env)
    world.sky = make_sky(env)

    # paths: two meandering trails across the park, tinted into the grass
    paths = []
    for axis in (0, 1):
        ts = np.linspace(-HALF - 8, HALF + 8, 9)
        wobble = rng.uniform(-6, 6, size=len(ts)).cumsum() * 0.4 + rng.uniform(-10, 10)
        pts = np.stack([ts, wobble], axis=1) if axis == 0 else np.stack([wobble, ts], axis=1)
        paths.append(pts)
    grass_tint = np.array(style["grass_tint"])
    segments = np.array([[*a, *b] for line in paths for a, b in zip(line[:-1], line[1:])])

    def ground_color(x: float, y: float) -> tuple[float, float, float, float]:
        d = _path_distance(segments, x, y)
        n = 0.92 + 0.08 * math.sin(0.7 * x + 0.3 * y) * math.cos(0.5 * y)
        if d < 1.4:
            return (1.35 * n, 1.05 * n, 0.62 * n, 1.0)  # worn trail: grass texture tinted to dirt
        return (grass_tint[0] * n, grass_tint[1] * n, grass_tint[2] * n, 1.0)

    chunk, cells = 10.0, 5
    span = HALF + 30
    ground_parts = []
    for cx in np.arange(-span, span, chunk):
        for cy in np.arange(-span, span, chunk):
            mb = MeshBuilder()
            inside = max(abs(cx + chunk / 2), abs(cy + chunk / 2)) < HALF
            n = cells if inside else 3  # the hills beyond the fence are only seen from afar
            mb.grid(cx, cy, cx + chunk, cy + chunk, n, n, height, ground_color, uv_scale=3.0)
            ground_parts.append((mb.build("terrain"), "grass"))
    terrain = world.add("terrain", "ground", ground_parts)
    shadow_casters: list[tuple[float, float, float, float]] = []

    occ = _Occupancy(rng)
    for line in paths:  # keep trails clear of big objects
        for a, b in zip(line[:-1], line[1:]):
            for t in np.linspace(0, 1, 4):
                p = a + t * (b - a)
                occ.discs.append((float(p[0]), float(p[1]), 1.2))

    # houses, each with a poster by the door
    for _ in range(int(rng.integers(3, 5))):
        sx, sy = rng.uniform(6, 10), rng.uniform(5, 8)
        spot = occ.place(math.hypot(sx, sy) / 2, margin=2.0, limit=HALF - 8)
        if spot is None:
            continue
        heading = float(rng.choice([0.0, 90.0, 180.0, 270.0]))
        x, y = spot
        z = height(x, y)
        material = "bricks" if rng.random() < 0.5 else "plaster"
        obj = world.add("house", "building", props.building(rng, sx, sy, rng.uniform(3.2, 4.2), material), (x, y, z), heading,
                        _house_collider(x, y, sx, sy, heading),
                        texture_target=True)
        add_poster(world, rng, obj.node, local=(-1.45, -sy / 2, 0.7), width=1.0, height=1.4)

    # free-standing walls, some forming corners (testers push into corners)
    for _ in range(int(rng.integers(4, 7))):
        length = rng.uniform(5, 10)
        spot = occ.place(length / 2, margin=1.5)
        if spot is None:
            continue
        x, y = spot
        heading = float(rng.uniform(0, 180))
        material = "stone" if rng.random() < 0.6 else "bricks"
        h = rng.uniform(1.8, 3.0)
        parts, colliders = props.wall(x, y, length, h, 0.4, heading, material)
        obj = world.add("wall", "wall", parts, (x, y, height(x, y)), heading, colliders, texture_target=True)
        if h > 2.3 and rng.random() < 0.6:
            add_poster(world, rng, obj.node, local=(rng.uniform(-length / 4, length / 4), -0.2, 0.6), width=0.9, height=1.2)
        if rng.random() < 0.5:  # an L: a second wall at the end, at right angles
            a = math.radians(heading)
            ex, ey = x + math.cos(a) * length / 2, y + math.sin(a) * length / 2
            l2 = rng.uniform(3, 5)
            h2 = heading + 90
            b = math.radians(h2)
            wx, wy = ex + math.cos(b) * (l2 / 2 - 0.2), ey + math.sin(b) * (l2 / 2 - 0.2)
            if abs(wx) < HALF - 1 and abs(wy) < HALF - 1:
                parts, colliders = props.wall(wx, wy, l2, h, 0.4, h2, material)
                world.add("wall", "wall", parts, (wx, wy, height(wx, wy)), h2, colliders, texture_target=True)
                occ.discs.append((wx, wy, l2 / 2))

    leaf_tint = style["leaf_tint"]
    for _ in range(int(rng.integers(*style["trees"]))):
        spot = occ.place(1.0, margin=0.8)
        if spot is None:
            continue
        x, y = spot
        parts, colliders = props.tree(rng, 0.0, 0.0, 0.0)
        obj = world.add("tree", "tree", parts, (x, y, height(x, y)), float(rng.uniform(0, 360)),
                        [props.Circle(x, y, colliders[0].r)])
        obj.node.getChild(1).setColorScale(*leaf_tint, 1.0)
        crown = obj.node.getChild(1).getTightBounds()
        if crown is not None:
            (x0, y0, z0), (x1, y1, z1) = crown
            shadow_casters.append((x, y, 0.45 * max(x1 - x0, y1 - y0), (z0 + z1) / 2))
    for _ in range(int(rng.integers(10, 16))):
        r = float(rng.uniform(0.5, 1.5))
        spot = occ.place(r, margin=1.0)
        if spot is None:
            continue
        x, y = spot
        parts, _ = props.rock(rng, 0.0, 0.0, 0.0, r)
        world.add("rock", "rock", parts, (x, y, height(x, y) - 0.1), float(rng.uniform(0, 360)), [props.Circle(x, y, r * 0.95)],
                  texture_target=r > 1.0)

    # benches, lamps and bins along the trails
    for i in range(int(rng.integers(10, 16))):
        line = paths[i % 2]
        k = int(rng.integers(1, len(line) - 2))
        a, b = line[k], line[k + 1]
        t = rng.uniform(0.2, 0.8)
        p = a + t * (b - a)
        d = (b - a) / max(np.linalg.norm(b - a), 1e-9)
        side = 1 if rng.random() < 0.5 else -1
        x, y = p + np.array([-d[1], d[0]]) * side * 2.0
        if abs(x) > HALF - 1 or abs(y) > HALF - 1 or not occ.free(x, y, 0.6, margin=0.4):
            continue
        occ.discs.append((float(x), float(y), 1.0))
        heading = math.degrees(math.atan2(d[1], d[0])) + (180 if side > 0 else 0)
        kind = i % 3
        z = height(x, y)
        if kind == 0:
            world.add("bench", "bench", props.bench(), (x, y, z), heading, [props.Box(x, y, 1.0, 0.3, heading)], floatable=True)
        elif kind == 1:
            world.add("lamp_post", "lamp_post", props.lamp_post(rng), (x, y, z), heading, [props.Circle(x, y, 0.15)])
        else:
            world.add("trash_bin", "prop", props.trash_bin(), (x, y, z), 0.0, [props.Circle(x, y, 0.3)], floatable=True)
    for _ in range(int(rng.integers(6, 10))):
        spot = occ.place(0.6, margin=0.8)
        if spot is None:
            continue
        x, y = spot
        if rng.random() < 0.5:
            s = float(rng.uniform(0.7, 1.1))
            world.add("crate", "crate", props.crate(s), (x, y, height(x, y) - 0.05), float(rng.uniform(0, 90)),
                      [props.Box(x, y, s / 2, s / 2, 0.0)], floatable=True)
        else:
            world.add("barrel", "prop", props.barrel(rng), (x, y, height(x, y) - 0.05), 0.0, [props.Circle(x, y, 0.3)], floatable=True)

    # the perimeter fence
    n_side = 6
    for side in range(4):
        for k in range(n_side):
            t = -HALF + (k + 0.5) * 2 * HALF / n_side
            x, y, heading = [(t, -HALF, 0.0), (HALF, t, 90.0), (t, HALF, 180.0), (-HALF, t, 270.0)][side]
            world.add("fence", "fence", props.fence_segment(2 * HALF / n_side), (x, y, height(x, y)), heading,
                      [props.Box(x, y, HALF / n_side, 0.1, heading)])

    blob_shadows(shadow_casters, env, height).reparentTo(terrain.node)  # ground pixels in the ID pass

    spawn = occ.place(0.5, margin=1.0) or (0.0, 0.0)
    world.spawn = spawn
    return world


def _house_collider(x: float, y: float, sx: float, sy: float, heading: float) -> list[props.Collider]:
    return [props.Box(x, y, sx / 2 + 0.06, sy / 2 + 0.06, heading)]  # windows and door stand 5 cm proud
