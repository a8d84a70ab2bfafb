"""The contract of a self-supervised bug objective, and the registry objectives join.

An objective turns a *target* frame (a good or unlabeled frame) and *sources* (regions from the
mask bank) into a matched pair: a positive that shows the bug and a negative built from the same
content with the same edit artefacts but no bug. Training on such pairs teaches the one cue that
separates them (e.g. occlusion order of the weapon) instead of "was something pasted here".

Objectives are configured as data: each registers a parameter dataclass, and
:func:`bugdet.augment.catalogue.build_objective` validates keyword parameters against it, so a
project file can retune an objective (``augment.objectives.fppc.min_cover``) without code. This
module only holds the contract and the registry; it imports no objective, so the objective modules
can import it without a cycle.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

#: The bug types that have an objective, in the order commands list them (names follow
#: :data:`bugdet.ingest.session_format.BUG_TYPES`, so samples and ground truth share a vocabulary).
OBJECTIVES: tuple[str, ...] = (
    "fppc",
    "missing_texture",
    "low_res_texture",
    "stretched_texture",
    "z_fighting",
    "camera_clipping",
    "black_frame",
)


class UnusableTarget(ValueError):
    """This target (or source set) cannot make a pair for this objective, e.g. a target with no
    visible weapon for FPPC. Callers draw another target; it is not a user error by itself."""


@dataclass
class TargetFrame:
    """A frame to paste onto."""

    rgb: np.ndarray  # HxWx3 uint8
    weapon_mask: np.ndarray | None  # HxW bool, visible viewmodel pixels of THIS frame (None if unknown)
    frame_id: int | None = None


@dataclass
class SourceMask:
    """A region from the mask bank, cut out of its frame to its tight box."""

    rgb: np.ndarray  # hxwx3 uint8 crop
    alpha: np.ndarray  # hxw bool (or float in [0, 1]) inside the crop
    label: str | None = None
    mask_id: int | None = None
    frame_id: int | None = None
    weight: float = 1.0  # sampling weight (the mask bank's cluster balancing); relative to the others
    box: tuple[int, int, int, int] | None = None  # (x, y, w, h) of the crop in its frame

    def alpha_float(self) -> np.ndarray:
        a = np.asarray(self.alpha)
        return a.astype(np.float32) if a.dtype == bool else np.clip(a.astype(np.float32), 0.0, 1.0)


@dataclass
class Sample:
    """One training image with its label and bug location."""

    image: np.ndarray  # HxWx3 uint8, same size as the target
    bug_type: str
    label: int  # 1 = bug, 0 = no bug (same content)
    mask: np.ndarray  # HxW bool: where the bug is (all False for negatives)
    meta: dict[str, Any] = field(default_factory=dict)


class Objective(ABC):
    """Makes matched (positive, negative) pairs for one bug type; deterministic for a given ``rng``."""

    bug_type: str = ""
    #: True when the objective needs ``TargetFrame.weapon_mask`` (FPPC); loaders use it to decide
    #: whether weapon masks must be estimated.
    needs_weapon: bool = False
    #: True when ``make_pair`` draws on ``sources`` (the black-frame objective does not).
    needs_sources: bool = True

    @abstractmethod
    def make_pair(
        self, target: TargetFrame, sources: Sequence[SourceMask], rng: np.random.Generator
    ) -> tuple[Sample, Sample]:
        """A positive and a negative built from the SAME content (same source mask, same placement
        where that makes sense) so the only difference is the bug itself."""

    def _samples(
        self, pos_image: np.ndarray, neg_image: np.ndarray, bug_mask: np.ndarray, meta: dict[str, Any]
    ) -> tuple[Sample, Sample]:
        pos = Sample(pos_image, self.bug_type, 1, bug_mask.astype(bool), dict(meta))
        neg = Sample(neg_image, self.bug_type, 0, np.zeros(bug_mask.shape, dtype=bool), dict(meta))
        return pos, neg


@dataclass(frozen=True)
class Registration:
    factory: Callable[..., Objective]
    params: type


#: Filled by :func:`register_objective` as objective modules are imported; read through
#: :mod:`bugdet.augment.catalogue`, which imports them all first.
REGISTRY: dict[str, Registration] = {}


def register_objective(bug_type: str, params: type) -> Callable[[type], type]:
    """Class decorator: ``@register_objective("fppc", FPPCParams)`` on an objective whose
    ``__init__`` takes one ``params`` instance."""

    def wrap(cls: type) -> type:
        cls.bug_type = bug_type
        REGISTRY[bug_type] = Registration(factory=cls, params=params)
        return cls

    return wrap
