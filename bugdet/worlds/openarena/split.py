"""Train / val / test by map, so held-out evaluation sees level art a detector never trained on.

The seven ``oa_dm`` maps cover the game's main art sets: gothic stone (dm1, dm4, dm7), marble
(dm2), concrete (dm3), mossy stone (dm5) and base metal (dm6). Any other installed map counts as
test: it is unseen by construction.
"""

from __future__ import annotations

MAP_SPLITS: dict[str, str] = {
    "oa_dm1": "train", "oa_dm2": "train", "oa_dm3": "train", "oa_dm4": "train",
    "oa_dm5": "val",
    "oa_dm6": "test", "oa_dm7": "test",
}


def split_for_map(map_name: str) -> str:
    return MAP_SPLITS.get(map_name, "test")


def maps_in(split: str) -> list[str]:
    return [m for m, s in MAP_SPLITS.items() if s == split]
