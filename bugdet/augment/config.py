"""The ``augment:`` section of the project file.

Where target frames get their weapon masks, which masks may be pasted, per-objective
parameter overrides (validated against each objective's parameter dataclass when it is built),
and whether the project's own labeled bug frames become paste sources (exemplars).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

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
    exemplars: Literal["off", "mix", "only"] = Field(
        "off",
        description="Use the train split's labeled bug frames as paste sources (exemplars), so objective positives "
        "look like THIS engine's bug: the bug region (the label's box, else the difference from the nearest clean "
        "frame of the capture, else the whole frame) pasted into good/unlabeled frames, against the same paste of "
        "clean content. off: built-in simulations only. mix: a bug type with exemplars draws exemplar pairs with "
        "probability exemplar_prob and its simulation otherwise. only: exemplars replace the simulation. With mix or "
        "only, a bug type that has no simulation (your own types) trains on its exemplars alone.",
    )
    exemplar_prob: float = Field(
        0.5, ge=0, le=1, description="exemplars=mix: share of a bug type's objective pairs drawn from its exemplars."
    )
    exemplar_params: dict[str, Any] = Field(
        default_factory=dict,
        description="Overrides of the exemplar objective's parameters, e.g. {scale: [0.5, 2.0], keep_position_prob: 0.5, "
        "region: {threshold: 30}} (see bugdet.augment.exemplar.ExemplarParams).",
    )

    @field_validator("exemplars", mode="before")
    @classmethod
    def _yaml_off_is_off(cls, value: Any) -> Any:
        """YAML 1.1 reads a bare ``off`` as false; ``exemplars: off`` means the mode of that name."""
        return "off" if value is False else value
