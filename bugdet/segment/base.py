"""The interface every segmentation backend implements.

Modelled on SAM's predictor: ``set_image`` does the expensive per-frame work once (SAM's image
embedding, OpenCV's smoothing and gradients), after which ``predict`` answers prompts quickly
enough for an interactive review app, and ``point_candidates`` answers a batch of single-point
prompts with several candidate masks each, which the automatic generator filters and
de-duplicates. Backends differ only behind this interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from bugdet.segment.errors import EmptyFrameError, ImageNotSetError, NoMaskError
from bugdet.segment.prompts import Prompt, make_prompt

#: A frame whose pixel values spread less than this (max - min over all channels) is uniform:
#: a black or single-colour frame, which has no objects to cut out.
UNIFORM_FRAME_RANGE = 3


@dataclass
class Candidate:
    """One candidate mask with the backend's quality estimate in [0, 1]."""

    mask: np.ndarray
    score: float
    label: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.area = int(np.count_nonzero(self.mask))  # filters and NMS ask for it repeatedly


def check_frame(rgb: np.ndarray) -> np.ndarray:
    """Validate an RGB uint8 HxWx3 frame; raise :class:`EmptyFrameError` for empty or uniform ones."""
    image = np.asarray(rgb)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise EmptyFrameError(f"expected an RGB uint8 HxWx3 image, got {image.dtype} array of shape {image.shape}")
    if image.shape[0] < 8 or image.shape[1] < 8:
        raise EmptyFrameError(f"frame of {image.shape[1]}x{image.shape[0]} pixels is too small to segment")
    if int(image.max()) - int(image.min()) < UNIFORM_FRAME_RANGE:
        raise EmptyFrameError("frame is uniform (black or a single colour): nothing to segment")
    return np.ascontiguousarray(image)


class Predictor(ABC):
    """A promptable segmenter bound to one image at a time."""

    #: Registry name of the backend (``opencv``, ``sam``).
    name: str = ""

    def __init__(self) -> None:
        self._shape: tuple[int, int] | None = None

    @property
    def image_shape(self) -> tuple[int, int]:
        if self._shape is None:
            raise ImageNotSetError("call set_image(rgb) before predicting")
        return self._shape

    @property
    def has_image(self) -> bool:
        return self._shape is not None

    def set_image(self, rgb: np.ndarray) -> None:
        """Do the per-frame work once; later prompts on this frame reuse it."""
        self._shape = None  # a rejected frame must not leave the previous frame answering prompts
        image = check_frame(rgb)
        self._prepare(image)
        self._shape = (image.shape[0], image.shape[1])

    def predict(
        self,
        points: Sequence[Sequence[float]] | np.ndarray | None = None,
        labels: Sequence[int] | np.ndarray | None = None,
        box: Sequence[float] | None = None,
    ) -> tuple[np.ndarray, float]:
        """One mask (bool HxW) and its score for positive/negative points and/or a box.

        Raises :class:`PromptError` for a malformed prompt and :class:`NoMaskError` when the
        prompt selects nothing.
        """
        prompt = make_prompt(self.image_shape, points, labels, box)
        mask, score = self._predict(prompt)
        if not mask.any():
            raise NoMaskError(f"{self.name}: the prompt selected no pixels")
        return mask, float(score)

    def point_candidates(
        self, points: np.ndarray, area_range: tuple[float, float] | None = None, min_score: float = 0.0
    ) -> list[list[Candidate]]:
        """For each (x, y) in ``points`` (single positive-point prompts), its candidate masks.

        ``area_range`` (pixels) and ``min_score`` are hints: a backend may skip building
        candidates outside them, because the caller drops those anyway.
        """
        self.image_shape  # raises when no image is set
        return self._point_candidates(np.asarray(points, dtype=np.float64).reshape(-1, 2), area_range, min_score)

    @abstractmethod
    def _prepare(self, rgb: np.ndarray) -> None: ...

    @abstractmethod
    def _predict(self, prompt: Prompt) -> tuple[np.ndarray, float]: ...

    @abstractmethod
    def _point_candidates(
        self, points: np.ndarray, area_range: tuple[float, float] | None, min_score: float
    ) -> list[list[Candidate]]: ...
