"""Which seeds, scenes and layouts belong to train, validation and test sets.

Held-out evaluation needs frames from places a detector never trained on. The split is a pure
function of the seed, so anyone can tell which set a session belongs to:

* ``seed < 100_000``: **train**; ``100_000 <= seed < 200_000``: **val**; ``seed >= 200_000``: **test**.
* Every seed builds its own layout (the layout seed is the session seed), so layouts never
  repeat across splits.
* Each scene also has a held-out **variant** (park: ``autumn``, indoor: ``bunker``) that train
  and val sessions never draw; test sessions draw it half of the time. A variant can also be
  forced, e.g. to build a test set made only of unseen variants.
"""

from __future__ import annotations

import numpy as np

from bugdet.errors import InputError
from bugdet.playtest.seeding import stream

VAL_START = 100_000
TEST_START = 200_000
SCENE_VARIANTS = {"park": ("summer", "dry", "autumn"), "indoor": ("office", "warehouse", "bunker")}
HELD_OUT_VARIANTS = {"park": "autumn", "indoor": "bunker"}


def split_for_seed(seed: int) -> str:
    if seed < 0:
        raise InputError(f"seed must be >= 0, got {seed}")
    if seed < VAL_START:
        return "train"
    if seed < TEST_START:
        return "val"
    return "test"


def variant_for(scene: str, seed: int, requested: str | None = None) -> str:
    """The scene variant a session uses: the requested one, or one drawn for the seed's split."""
    if scene not in SCENE_VARIANTS:
        raise InputError(f"unknown scene {scene!r}; known: {', '.join(SCENE_VARIANTS)}")
    if requested:
        if requested not in SCENE_VARIANTS[scene]:
            raise InputError(f"unknown variant {requested!r} for {scene}; known: {', '.join(SCENE_VARIANTS[scene])}")
        return requested
    rng: np.random.Generator = stream(seed, "variant")
    held = HELD_OUT_VARIANTS[scene]
    seen = [v for v in SCENE_VARIANTS[scene] if v != held]
    if split_for_seed(seed) == "test" and rng.random() < 0.5:
        return held
    return seen[int(rng.integers(len(seen)))]
