"""The augment stage: self-supervised bug objectives built from the mask bank and target frames."""

from bugdet.augment.base import (
    OBJECTIVES,
    Objective,
    Sample,
    SourceMask,
    TargetFrame,
    UnusableTarget,
)
from bugdet.augment.catalogue import build_objective

__all__ = [
    "OBJECTIVES",
    "Objective",
    "Sample",
    "SourceMask",
    "TargetFrame",
    "UnusableTarget",
    "build_objective",
]
