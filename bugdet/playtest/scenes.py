"""Building (and caching) worlds by scene name, so sessions in one process share geometry."""

from __future__ import annotations

from collections import OrderedDict

from bugdet.playtest.nav import build_nav, keep_reachable
from bugdet.playtest.player import RADIUS
from bugdet.playtest.scene_indoor import build_indoor
from bugdet.playtest.scene_park import build_park
from bugdet.playtest.world import World

SCENES = ("park", "indoor")
_CACHE: "OrderedDict[tuple[str, str, int, int], World]" = OrderedDict()
_CACHE_SIZE = 4


def load_world(scene: str, variant: str, layout_seed: int, env_seed: int) -> World:
    """The world for these seeds; bugs always revert what they change, so a cached world is clean."""
    key = (scene, variant, layout_seed, env_seed)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    world = build_park(layout_seed, variant, env_seed) if scene == "park" else build_indoor(layout_seed, variant, env_seed)
    world.nav = keep_reachable(build_nav(world.colliders, world.bounds, RADIUS), world.spawn)
    _CACHE[key] = world
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return world
