"""Named, independent random streams derived from one session seed.

Every part of the playtest world (layout, textures, route, bug schedule) draws from its own
stream, so changing how one part consumes randomness never shifts another part's output, and the
same seed always yields the same session, byte for byte.
"""

from __future__ import annotations

import zlib

import numpy as np


def stream(seed: int, name: str) -> np.random.Generator:
    """A generator for ``name`` under ``seed``; stable across runs, platforms and Python versions."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode("utf-8"))])
