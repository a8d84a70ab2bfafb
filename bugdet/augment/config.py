"""The ``augment:`` section of the project file.

Where target frames get their weapon masks, which masks may be pasted, and per-objective
parameter overrides (validated against each objective's parameter dataclass when it is built).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from bugdet.config_base import Section


class AugmentConfig(Section):
    weapon_source: Literal["engine", "prompt", "auto"] = Field(
        "engine",
        description="Where target frames' weapon (viewmodel) masks come from: engine (the capture's viewmodel "
        "stencil, aux.weapon_mask), prompt (a tester's mask saved with --role weapon, propagated to other frames) "
        "or auto (estimated from the temporal stability of the screen-anchored viewmodel).",
    )
    include_bug_frames: bool = Field(
        False, description="Also use frames whose ground truth marks a bug as targets (normally only good/unlabeled ones)."
    )
    min_source_area: int = Field(64, ge=1, description="Smallest mask (pixels) usable as a paste source.")
    max_source_weapon_overlap: float = Field(
        0.3,
        ge=0,
        le=1,
        description="Skip source masks with more than this fraction of their pixels on their own frame's weapon "
        "(pasting the gun over the gun teaches nothing); the rest of a source loses its weapon pixels.",
    )
    max_sources: int = Field(5000, ge=1, description="At most this many source masks are loaded (evenly spread by id).")
    temporal_frames: int = Field(
        48, ge=8, description="Frames per capture used to estimate the viewmodel from temporal stability (auto)."
    )
    sheet_pairs: int = Field(12, ge=1, description="Pairs shown on the sample sheet PNG of `bugdet augment`.")
    objectives: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per-objective parameter overrides, e.g. {fppc: {min_cover: 0.3}} (see bugdet.augment objectives).",
    )
