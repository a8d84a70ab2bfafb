"""Evaluate a detector on labeled frames: per bug type F1 at its threshold, PR-AUC, precision at
50% recall and confusion counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from bugdet.detect.data import LabeledFrame
from bugdet.detect.metrics import DetectionMetrics, evaluate_scores
from bugdet.detect.model import BugDetector
from bugdet.detect.train import predict_scores


@dataclass
class Evaluation:
    bug_types: list[str]
    scores: np.ndarray  # [N, T]
    labels: np.ndarray  # [N, T]
    known: np.ndarray  # [N, T]
    metrics: dict[str, DetectionMetrics]

    def to_dict(self) -> dict:
        return {t: m.to_dict() for t, m in self.metrics.items()}


def evaluate_frames(
    detector: BugDetector,
    frames: Sequence[LabeledFrame],
    thresholds: dict[str, float],
    device: str = "cpu",
    scores: np.ndarray | None = None,
) -> Evaluation:
    """Metrics for every bug type that has both bug and good frames among ``frames``."""
    if scores is None:
        scores = predict_scores(detector, [f.rgb for f in frames], device=device)
    labels = np.stack([f.labels for f in frames])
    known = np.stack([f.known for f in frames])
    metrics = {}
    for t, name in enumerate(detector.bug_types):
        rows = known[:, t]
        y = labels[rows, t] > 0
        if y.any() and not y.all():
            metrics[name] = evaluate_scores(scores[rows, t], y, thresholds.get(name, 0.5))
    return Evaluation(list(detector.bug_types), scores, labels, known, metrics)
