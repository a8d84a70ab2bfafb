"""Pseudo-labels for self-training: the unlabeled pool labeled by a model, not by a tester.

Issue 17's lever 3 asks whether the unlabeled footage can teach more than the few labels once a
first detector exists (weak-to-strong generalisation, Burns et al. 2023): a *teacher* (the
detector trained on objective + labels) scores every unlabeled train frame, and a *student*,
started again from the pre-trained weights, learns from the tester's labels and from those
scores. Two things keep the student from copying the teacher's mistakes:

- soft targets re-centred on the teacher's calibrated threshold (a frame exactly at threshold is
  a 50/50 guess, one far below it a confident "no bug"), so the student learns the teacher's
  *decision*, not its raw scores, which training with oversampled bugs inflates;
- Burns' auxiliary confidence loss, applied in :class:`bugdet.detect.train.Trainer`: on pseudo
  rows the target is mixed with the student's own hardened prediction, so where the student is
  confident it may disagree with the teacher instead of imitating its errors.

The same loop also takes kNN weak labels (:mod:`bugdet.weaklabel.propagate`: the labeled frames
vote on each unlabeled frame by embedding similarity), so the two ways of labeling the unlabeled
pool (a few-shot detector vs automated weak supervision, AutoWS-Bench-101's question) can be
compared at the same label budget with everything else equal.

Pseudo-positives are rare at realistic prevalence (a teacher flags a handful of the pool), so the
sampler oversamples them like :class:`bugdet.detect.data.LabeledSampler` oversamples real bugs.

A teacher's threshold is calibrated on validation, whose prevalence need not be the footage's: on
OpenArena a teacher calibrated on an enriched split flagged 234 of 400 pool frames, and its student
learned those false alarms. Bugs are rare in gameplay, so the teacher may call at most
``max_positive_share`` of the pool a bug of any one type: where its threshold would flag more, the
cut rises to the pool's own score quantile (the teacher's ranking is kept; only its cut moves).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from bugdet.detect.data import Batch, jitter_frame, resize_rgb, to_tensor

_EPS = 1e-6


@dataclass
class PseudoLabels:
    """Unlabeled frames with a guessed label per bug type.

    ``targets`` are soft labels in [0, 1] (0.5 = undecided); ``keep`` marks the frames the
    labeler committed to (a kNN vote below its confidence abstains: those frames are not used).
    """

    images: list[np.ndarray]  # RGB at the detector's input size
    targets: np.ndarray  # [N, T] float32
    keep: np.ndarray  # [N] bool
    source: str  # "teacher" or "knn"

    def __post_init__(self) -> None:
        if len(self.images) != len(self.targets) or len(self.targets) != len(self.keep):
            raise ValueError(f"{len(self.images)} images, {len(self.targets)} targets and {len(self.keep)} keep flags")

    @property
    def positives(self) -> np.ndarray:
        """Indices of kept frames guessed to hold at least one bug."""
        return np.flatnonzero(self.keep & (self.targets >= 0.5).any(axis=1))

    @property
    def negatives(self) -> np.ndarray:
        return np.flatnonzero(self.keep & ~(self.targets >= 0.5).any(axis=1))

    def describe(self) -> dict:
        return {"source": self.source, "frames": len(self.images), "kept": int(self.keep.sum()),
                "positives": int(len(self.positives))}


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def teacher_targets(scores: np.ndarray, thresholds: Sequence[float], temperature: float = 1.0) -> np.ndarray:
    """Soft targets from a teacher's scores [N, T]: ``sigmoid((logit(s) - logit(threshold)) / T)``.

    The calibrated threshold maps to 0.5: it is where the teacher's decision flips at the
    deployment prevalence, whatever its raw scores mean. ``temperature`` > 1 softens."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    z = (_logit(np.asarray(scores, np.float64)) - _logit(np.asarray(thresholds, np.float64))[None, :]) / temperature
    return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


def capped_thresholds(scores: np.ndarray, thresholds: Sequence[float], max_positive_share: float) -> np.ndarray:
    """Per bug type, the calibrated threshold or, where that would flag more than
    ``max_positive_share`` of the frames, the score that flags exactly that share (ties aside)."""
    if not 0 < max_positive_share <= 1:
        raise ValueError(f"max_positive_share must be in (0, 1], got {max_positive_share}")
    scores = np.asarray(scores, np.float64)
    cuts = np.asarray(thresholds, np.float64).copy()
    if max_positive_share >= 1 or not len(scores):
        return cuts
    allowed = int(np.floor(max_positive_share * len(scores)))
    ranked = -np.sort(-scores, axis=0)  # descending per column
    for t in range(scores.shape[1]):
        if (scores[:, t] >= cuts[t]).sum() > allowed:
            # halfway between the last score kept and the first dropped, so that a soft target
            # rounded to float32 still falls on the right side of 0.5
            above = ranked[allowed - 1, t] if allowed else 1.0
            cuts[t] = (above + ranked[allowed, t]) / 2
    return cuts


def teacher_pseudo_labels(scores: np.ndarray, thresholds: Mapping[str, float], bug_types: Sequence[str],
                          images: Sequence[np.ndarray], size: tuple[int, int], temperature: float = 1.0,
                          max_positive_share: float = 1.0) -> PseudoLabels:
    """Every unlabeled frame, labeled by the teacher's scores (nothing abstains); at most
    ``max_positive_share`` of them guessed a bug of any one type (see the module's docstring)."""
    scores = np.asarray(scores, np.float32)
    if scores.shape != (len(images), len(bug_types)):
        raise ValueError(f"scores of shape {scores.shape} for {len(images)} frames and {len(bug_types)} bug types")
    cuts = capped_thresholds(scores, [thresholds[t] for t in bug_types], max_positive_share)
    targets = teacher_targets(scores, cuts, temperature)
    return PseudoLabels([resize_rgb(im, size) for im in images], targets, np.ones(len(images), bool), "teacher")


def knn_pseudo_labels(votes: Sequence[Mapping[str, float]], confidence: np.ndarray, min_confidence: float,
                      bug_types: Sequence[str], images: Sequence[np.ndarray], size: tuple[int, int]) -> PseudoLabels:
    """Frames labeled by the labeled exemplars' kNN vote: a bug type's target is its share of the
    vote; frames whose winning share is under ``min_confidence`` abstain (``keep`` False)."""
    if len(votes) != len(images):
        raise ValueError(f"{len(votes)} votes for {len(images)} frames")
    targets = np.array([[float(v.get(t, 0.0)) for t in bug_types] for v in votes], np.float32).reshape(len(votes), len(bug_types))
    keep = np.asarray(confidence, np.float32) >= min_confidence
    return PseudoLabels([resize_rgb(im, size) for im in images], targets, keep, "knn")


class PseudoLabelSampler:
    """Batches of pseudo-labeled frames, guessed positives oversampled to ``positive_fraction``.

    Rows carry ``pseudo`` = True so the trainer applies the confidence loss to them alone, and
    every bug type counts as known (the labeler scored them all)."""

    def __init__(self, labels: PseudoLabels, input_size: tuple[int, int], positive_fraction: float = 0.25):
        if not labels.keep.any():
            raise ValueError(f"the {labels.source} pseudo-labels kept no frame to train on")
        self.labels = labels
        self.input_size = input_size
        self.positives = labels.positives
        self.negatives = labels.negatives
        self.positive_fraction = positive_fraction if len(self.positives) and len(self.negatives) else \
            (1.0 if len(self.positives) else 0.0)

    def batch(self, rng: np.random.Generator, n: int) -> Batch:
        n_pos = int(round(n * self.positive_fraction))
        rows = list(self.positives[rng.integers(0, len(self.positives), n_pos)]) if n_pos else []
        rows += list(self.negatives[rng.integers(0, len(self.negatives), n - n_pos)]) if n - n_pos else []
        images = [jitter_frame(self.labels.images[i], rng) for i in rows]
        t = self.labels.targets.shape[1]
        return Batch(
            images=to_tensor(images, self.input_size),
            labels=torch.from_numpy(self.labels.targets[rows].copy()),
            known=torch.ones((len(rows), t), dtype=torch.bool),
            pseudo=torch.ones(len(rows), dtype=torch.bool),
        )


def confidence_targets(labels: torch.Tensor, logits: torch.Tensor, pseudo: torch.Tensor, weight: float) -> torch.Tensor:
    """Burns et al.'s auxiliary confidence loss, folded into the targets.

    Binary cross-entropy is linear in its target, so ``(1 - a) CE(p, teacher) + a CE(p, hard(p))``
    equals ``CE(p, (1 - a) teacher + a hard(p))``: on pseudo rows the target becomes that mix,
    with ``hard(p)`` the student's own decision (logit > 0), taken without gradient. Rows a tester
    labeled keep their labels."""
    if weight <= 0 or pseudo is None or not bool(pseudo.any()):
        return labels
    hard = (logits.detach() > 0).to(labels.dtype)
    mixed = (1 - weight) * labels + weight * hard
    return torch.where(pseudo[:, None].to(labels.device), mixed, labels)
