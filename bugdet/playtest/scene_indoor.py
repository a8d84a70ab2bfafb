"""The indoor level: rooms joined by corridors, with crates, pillars, doors, barrels and posters.

The floor plan is carved on a 1 m tile grid (rooms, then L-shaped corridors between them);
every boundary between floor and solid becomes a wall, merged into long segments so each wall
is one object with one ID and one collision box. Variants change the palette and the clutter;
one is held out for test sets.
"""

from __future__ import annotations


import numpy as np
from panda3d.core import NodePath

from bugdet.playtest import props, textures as tx
from bugdet.playtest.collision import Box, Circle
from bugdet.playtest.decals import add_poster
from bugdet.playtest.lighting import apply_lights, pick_environment
from bugdet.playtest.meshes import MeshBuilder
from bugdet.playtest.seeding import stream
from bugdet.playtest.world import World

GRID = 40  # tiles per side, 1 m each
CEILING = 3.2
VARIANTS = {
    "office": {"wall": (0.78, 0.76, 0.7), "floor": ((0.55, 0.5, 0.45), (0.42, 0.38, 0.34)), "crates": (6, 10)},
    "warehouse": {"wall": (0.62, 0.6, 0.58), "floor": ((0.5, 0.5, 0.52), (0.45, 0.45, 0.47)), "crates": (14, 22)},
    "bunker": {"wall": (0.5, 0.56, 0.5), "floor": ((0.35, 0.38, 0.35), (0.28, 0.3, 0.28)), "crates": (8, 14)},
}


def _carve(rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    floor = np.zeros((GRID, GRID), dtype=bool)
    rooms: list[tuple[int, int, int, int]] = []
    for _ in range(200):
        if len(rooms) >= 7:
            break
        w, h = int(rng.integers(6, 12)), int(rng.integers(6, 12))
        x, y = int(rng.integers(1, GRID - w - 1)), int(rng.integers(1, GRID - h - 1))
        if floor[max(0, x - 2):x + w + 2, max(0, y - 2):y + h + 2].any():
            continue
        floor[x:x + w, y:y + h] = True
        rooms.append((x, y, w, h))
    centres = [(x + w // 2, y + h // 2) for x, y, w, h in rooms]
    for a, b in zip(centres[:-1], centres[1:]):  # a chain of L-shaped corridors, 3 tiles wide
        (ax, ay), (bx, by) = a, b
        if rng.random() < 0.5:
            floor[min(ax, bx):max(ax, bx) + 1, ay - 1:ay + 2] = True
            floor[bx - 1:bx + 2, min(ay, by):max(ay, by) + 1] = True
        else:
            floor[ax - 1:ax + 2, min(ay, by):max(ay, by) + 1] = True
            floor[min(ax, bx):max(ax, bx) + 1, by - 1:by + 2] = True
    return floor, rooms


def _wall_runs(floor: np.ndarray) -> list[tuple[float, float, float, float, float]]:
    """Merged wall segments as (cx, cy, length, heading, side): side > 0 when the floor is on the +x/+y side."""
    runs = []
    n = floor.shape[0]
    for i in range(1, n):  # walls on x = i between tiles (i-1, j) and (i, j)
        j = 0
        while j < n:
            if floor[i - 1, j] != floor[i, j]:
                j0 = j
                side = floor[i, j]
                while j < n and floor[i - 1, j] != floor[i, j] and floor[i, j] == side:
                    j += 1
                runs.append((float(i), (j0 + j) / 2, float(j - j0), 90.0, 1.0 if side else -1.0))
            else:
                j += 1
    for j in range(1, n):  # walls on y = j
        i = 0
        while i < n:
            if floor[i, j - 1] != floor[i, j]:
                i0 = i
                side = floor[i, j]
                while i < n and floor[i, j - 1] != floor[i, j] and floor[i, j] == side:
                    i += 1
                runs.append(((i0 + i) / 2, float(j), float(i - i0), 0.0, 1.0 if side else -1.0))
            else:
                i += 1
    return runs


def _facing_tile(cx: float, cy: float, heading: float, side: float) -> tuple[int, int]:
    """The floor tile in the middle of a wall run, on the side the wall faces (``side`` > 0: +x/+y)."""
    if heading == 90.0:
        return int(cx if side > 0 else cx - 1), int(cy)
    return int(cx), int(cy if side > 0 else cy - 1)


def build_indoor(layout_seed: int, variant: str, env_seed: int) -> World:
    style = VARIANTS[variant]
    rng = stream(layout_seed, f"indoor/{variant}/layout")
    lib = tx.TextureLibrary(stream(layout_seed, "indoor/textures"))
    trng = lib.rng
    a, b = style["floor"]
    for name, image in (
        ("plaster", tx.wall_panels(trng, style["wall"])), ("bricks", tx.bricks(trng, (0.5, 0.3, 0.24))),
        ("concrete", tx.concrete(trng, 0.55)), ("tiles", tx.tiles(trng, a, b)), ("planks", tx.planks(trng)),
        ("crate", tx.crate(trng)), ("metal", tx.metal(trng, 0.45)), ("ceiling", tx.concrete(trng, 0.75)),
    ):
        lib.add(name, image)
    env = pick_environment(stream(env_seed, "environment"), indoor=True)
    root = NodePath("indoor")
    floor, rooms = _carve(rng)
    offset = GRID / 2
    world = World(scene="indoor", variant=variant, root=root, textures=lib, environment=env,
                  height=lambda x, y: 0.0, bounds=(-offset, -offset, offset, offset))
    apply_lights(root, env)

    slab = MeshBuilder()
    slab.box((0, 0, -0.1), (GRID, GRID, 0.2), (1, 1, 1, 1), uv_scale=2.0, faces="Z")
    world.add("floor", "ground", [(slab.build("floor"), "tiles")])
    ceil = MeshBuilder()
    ceil.box((0, 0, CEILING + 0.1), (GRID, GRID, 0.2), (1, 1, 1, 1), uv_scale=3.0, faces="z")
    world.add("ceiling", "ceiling", [(ceil.build("ceiling"), "ceiling")])

    room_material = {}
    for k, (x, y, w, h) in enumerate(rooms):
        room_material[k] = "bricks" if (variant == "warehouse" and k % 2) or (variant == "bunker" and k % 3 == 0) else "plaster"

    def room_of(tile: tuple[int, int]) -> int | None:
        for k, (x, y, w, h) in enumerate(rooms):
            if x <= tile[0] < x + w and y <= tile[1] < y + h:
                return k
        return None

    for cx, cy, length, heading, side in _wall_runs(floor):
        wx, wy = cx - offset, cy - offset
        k = room_of(_facing_tile(cx, cy, heading, side))  # the room a wall faces decides its material
        material = room_material[k] if k is not None else "concrete"
        parts, colliders = props.wall(wx, wy, length + 0.3, CEILING + 0.3, 0.3, heading, material, cap=False)
        obj = world.add("wall", "wall", parts, (wx, wy, 0.0), heading, colliders, texture_target=True)
        if length >= 4 and rng.random() < 0.35:
            # posters go on the wall's local -y face; turn the anchor when the floor is on +y
            anchor = obj.node.attachNewNode("poster_side")
            if (heading == 90.0) != (side > 0):
                anchor.setH(180)
            add_poster(world, rng, anchor, (float(rng.uniform(-length / 4, length / 4)), -0.15, 1.0), 0.9, 1.2)

    free = [(i, j) for i in range(GRID) for j in range(GRID) if floor[i, j] and floor[max(i - 1, 0):i + 2, max(j - 1, 0):j + 2].all()]
    used: set[tuple[int, int]] = set()

    def take() -> tuple[float, float] | None:
        for _ in range(50):
            i, j = free[int(rng.integers(len(free)))]
            if any((i + di, j + dj) in used for di in (-1, 0, 1) for dj in (-1, 0, 1)):
                continue
            used.update({(i + di, j + dj) for di in (-1, 0, 1) for dj in (-1, 0, 1)})
            return i + 0.5 - offset, j + 0.5 - offset
        return None

    for k, (x, y, w, h) in enumerate(rooms):  # pillars in the larger rooms
        if w >= 9 and h >= 9:
            for px, py in ((x + 3, y + 3), (x + w - 3, y + h - 3)):
                used.update({(px + di, py + dj) for di in (-1, 0, 1) for dj in (-1, 0, 1)})
                wx, wy = px + 0.5 - offset, py + 0.5 - offset
                world.add("pillar", "pillar", props.pillar(0.35, CEILING), (wx, wy, 0.0), 0.0, [Circle(wx, wy, 0.36)],
                          texture_target=True)
    for _ in range(int(rng.integers(*style["crates"]))):
        spot = take()
        if spot is None:
            break
        s = float(rng.uniform(0.8, 1.2))
        heading = float(rng.uniform(-15, 15))
        obj = world.add("crate", "crate", props.crate(s), (spot[0], spot[1], 0.0), heading, [Box(spot[0], spot[1], s / 2 + 0.02, s / 2 + 0.02, heading)],
                        texture_target=True, floatable=True)
        if rng.random() < 0.3:  # stacked
            world.add("crate", "crate", props.crate(s * 0.8), (spot[0], spot[1], s), heading + float(rng.uniform(-20, 20)), [])
    for _ in range(int(rng.integers(4, 8))):
        spot = take()
        if spot is None:
            break
        world.add("barrel", "prop", props.barrel(rng), (spot[0], spot[1], 0.0), 0.0, [Circle(spot[0], spot[1], 0.32)], floatable=True)

    # doors: a frame and a closed door leaf on walls next to room corners (decoration that blocks)
    for k, (x, y, w, h) in enumerate(rooms):
        dx = x + 0.5 + float(rng.integers(1, max(2, w - 2))) - offset
        dy = y - offset + 0.16
        door = MeshBuilder()
        door.box((0, 0, 1.05), (1.0, 0.06, 2.1), (0.5, 0.34, 0.22, 1.0), uv_scale=1.0)
        door.box((-0.56, 0, 1.1), (0.12, 0.1, 2.2), (0.3, 0.3, 0.3, 1.0), uv_scale=1.0)
        door.box((0.56, 0, 1.1), (0.12, 0.1, 2.2), (0.3, 0.3, 0.3, 1.0), uv_scale=1.0)
        door.box((0, 0, 2.25), (1.24, 0.1, 0.12), (0.3, 0.3, 0.3, 1.0), uv_scale=1.0)
        door.box((0.35, -0.06, 1.0), (0.12, 0.04, 0.04), (0.8, 0.75, 0.5, 1.0), uv_scale=1.0)
        if floor[int(dx + offset), y] and not floor[int(dx + offset), y - 1]:
            world.add("door", "door", [(door.build("door"), "planks")], (dx, dy, 0.0), 180.0, [Box(dx, dy, 0.6, 0.06, 0.0)])

    # ceiling lights: unlit bright panels
    for k, (x, y, w, h) in enumerate(rooms):
        panel = MeshBuilder()
        for px in np.arange(x + 2, x + w - 1, 4):
            for py in np.arange(y + 2, y + h - 1, 4):
                panel.box((px + 0.5 - offset, py + 0.5 - offset, CEILING - 0.03), (1.2, 0.4, 0.06), (1.0, 0.98, 0.9, 1.0), uv_scale=1.0)
        if panel.triangles:
            obj = world.add("light_panel", "light", [(panel.build("panels"), None)])
            obj.node.setLightOff(1)

    start = take() or (rooms[0][0] + 1.5 - offset, rooms[0][1] + 1.5 - offset)
    world.spawn = start
    return world
