"""Point prompts answered from an engine's object-ID map: a click selects exactly the object under it.

When a capture carries an ID map (``aux.ids``, written by engines such as the playtest world),
the engine already knows where every object is, so guessing from colours would only add error.
Clicks select the connected part of the ID under each positive point (as :mod:`engine` stores
engine masks: one mask per visible part); negative points remove the parts they touch. Box
prompts, and a negative point inside a clicked part (the tester wants only a piece of one
object), go to the pixel backend, whose answer is then kept inside the clicked object.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from bugdet.segment.base import Candidate, Predictor
from bugdet.segment.errors import SegmentError
from bugdet.segment.prompts import Prompt


class ObjectIdPredictor(Predictor):
    """A :class:`Predictor` over one frame's object-ID map, with a pixel backend for what IDs cannot say.

    ``name`` tells who answered the latest prompt: ``engine`` for an ID-map answer, else the pixel
    backend's name (what a saved mask records as its model).
    """

    name = "engine"

    def __init__(self, ids: np.ndarray, fallback: Predictor):
        super().__init__()
        self.ids = np.asarray(ids)
        self.fallback = fallback
        self._parts: dict[int, np.ndarray] = {}  # object id -> its connected-part labels

    def _prepare(self, rgb: np.ndarray) -> None:
        if self.ids.shape[:2] != rgb.shape[:2]:
            raise SegmentError(f"ID map of {self.ids.shape[1]}x{self.ids.shape[0]} does not match the "
                               f"{rgb.shape[1]}x{rgb.shape[0]} frame")
        self.fallback.set_image(rgb)
        self._parts = {}

    def part_at(self, x: int, y: int) -> np.ndarray:
        """The connected part (8-connected) of the object under (x, y)."""
        object_id = int(self.ids[y, x])
        labels = self._parts.get(object_id)
        if labels is None:
            _, labels = cv2.connectedComponents((self.ids == object_id).astype(np.uint8), connectivity=8)
            self._parts[object_id] = labels
        return labels == labels[y, x]

    def _predict(self, prompt: Prompt) -> tuple[np.ndarray, float]:
        self.name = ObjectIdPredictor.name
        if prompt.box is not None:
            return self._from_pixels(prompt)
        positive = [self.part_at(int(x), int(y)) for x, y in prompt.positive]
        negative = [(int(x), int(y)) for x, y in prompt.negative]
        if any(part[y, x] for part in positive for x, y in negative):
            # A background point inside a clicked object: cut that object with the pixel backend.
            mask, score = self._from_pixels(prompt)
            return mask & np.logical_or.reduce(positive), score
        mask = np.logical_or.reduce(positive)
        for x, y in negative:
            mask &= ~self.part_at(x, y)
        return mask, 1.0

    def _from_pixels(self, prompt: Prompt) -> tuple[np.ndarray, float]:
        self.name = self.fallback.name
        return self.fallback.predict(points=prompt.points, labels=prompt.labels, box=prompt.box)

    def _point_candidates(
        self, points: np.ndarray, area_range: tuple[float, float] | None, min_score: float
    ) -> list[list[Candidate]]:
        return self.fallback.point_candidates(points, area_range, min_score)


def wants_id_prompts(segment_cfg: Any, backend: str | None) -> bool:
    """Whether clicks on frames with an ID map should select engine objects: yes unless another backend
    was asked for by name, or engine masks are switched off (``segment.engine.enabled: false``)."""
    if backend not in (None, "engine"):
        return False
    return segment_cfg.backend == "engine" or bool(segment_cfg.engine.enabled)


def frame_predictor(project: Any, frame: Any, rgb: np.ndarray, backend: str | None = None, device: str = "cpu") -> Predictor:
    """The prompt predictor of one stored frame, ``set_image`` done: clicks select engine objects where
    the frame has an ID map (see :func:`wants_id_prompts`), else the pixel backend answers."""
    from bugdet.segment.factory import BuildContext, build_predictor
    from bugdet.segment.run import _load_ids  # the one place ID maps are read and fitted to the frame

    cfg = project.config.segment
    pixel_backend = backend if backend not in (None, "engine") else (cfg.backend if cfg.backend != "engine" else "opencv")
    predictor = build_predictor(cfg, pixel_backend, BuildContext(root=project.root, device=device))
    ids = _load_ids(project, frame, rgb.shape[:2]) if wants_id_prompts(cfg, backend) else None
    if ids is not None:
        predictor = ObjectIdPredictor(ids, predictor)
    predictor.set_image(rgb)
    return predictor
