"""The worlds bugdet can record capture sessions in, by name.

Each world is a capture source that writes the capture-session format
(:mod:`bugdet.ingest.session_format`) with exact per-pixel bug ground truth, so ``bugdet ingest``
and every later stage take its sessions unchanged:

* ``playtest``: the Panda3D reference world (procedural levels, software renderer).
* ``openarena``: the real ioquake3 engine playing OpenArena maps with bots, its bugs injected
  through the engine's own cvars and pk3 overrides.

Modules are named here rather than imported so that listing the worlds costs nothing.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from bugdet.errors import InputError

#: world name -> the package that records it
WORLDS: dict[str, str] = {
    "playtest": "bugdet.playtest",
    "openarena": "bugdet.worlds.openarena",
}


def world_module(name: str) -> ModuleType:
    """The package of world ``name`` (a clear error for an unknown one)."""
    if name not in WORLDS:
        raise InputError(f"unknown world {name!r}; known: {', '.join(WORLDS)}")
    return importlib.import_module(WORLDS[name])
