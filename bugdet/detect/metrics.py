"""Detection metrics at realistic prevalence.

Bugs are rare (well under 1% of frames), so accuracy means nothing and precision dominates. Every
metric here is computed from scores and binary labels with plain numpy so the values can be
checked by hand. Where the evaluation set's prevalence differs from the deployment prevalence,
:func:`f1_at_prevalence` re-weights false positives: precision depends on prevalence, recall
and false-positive rate do not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class Confusion:
    tp: int
    fp: int
    tn: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def _validate(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).astype(bool).ravel()
    if scores.shape != labels.shape:
        raise ValueError(f"scores {scores.shape} and labels {labels.shape} differ in length")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or infinity")
    return scores, labels


def confusion_at(scores: np.ndarray, labels: np.ndarray, threshold: float) -> Confusion:
    """Counts with ``score >= threshold`` flagged as a bug."""
    scores, labels = _validate(scores, labels)
    pred = scores >= threshold
    return Confusion(
        tp=int(np.sum(pred & labels)),
        fp=int(np.sum(pred & ~labels)),
        tn=int(np.sum(~pred & ~labels)),
        fn=int(np.sum(~pred & labels)),
    )


def precision_recall_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and thresholds at every distinct score, from the highest threshold down.

    Ties are handled as one operating point (all frames with the same score flip together).
    """
    scores, labels = _validate(scores, labels)
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]
    tp = np.cumsum(y)[last_of_group]
    fp = (last_of_group + 1) - tp
    positives = max(int(y.sum()), 1)
    precision = tp / (tp + fp)
    recall = tp / positives
    return precision, recall, s[last_of_group]


def best_f1(scores: np.ndarray, labels: np.ndarray) -> float:
    """The highest F1 any threshold reaches on these frames: an oracle, for measuring how much F1 a
    threshold chosen elsewhere (on validation) gives away on new levels, never to choose one."""
    scores, labels = _validate(scores, labels)
    if not labels.any():
        return float("nan")
    precision, recall, _ = precision_recall_curve(scores, labels)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    return float(f1.max())


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """PR-AUC as average precision: sum over recall steps of precision (no interpolation)."""
    scores, labels = _validate(scores, labels)
    if not labels.any():
        return float("nan")
    precision, recall, _ = precision_recall_curve(scores, labels)
    steps = np.diff(np.r_[0.0, recall])
    return float(np.sum(steps * precision))


def precision_at_recall(scores: np.ndarray, labels: np.ndarray, min_recall: float = 0.5) -> float:
    """Best precision among operating points that reach ``min_recall``."""
    scores, labels = _validate(scores, labels)
    if not labels.any():
        return float("nan")
    precision, recall, _ = precision_recall_curve(scores, labels)
    ok = recall >= min_recall - 1e-12
    return float(precision[ok].max()) if ok.any() else 0.0


def f1_at_prevalence(tpr: np.ndarray, fpr: np.ndarray, prevalence: float) -> np.ndarray:
    """F1 an operating point (TPR, FPR) would have on data with the given bug prevalence."""
    tp = prevalence * tpr
    fp = (1.0 - prevalence) * fpr
    precision = np.divide(tp, tp + fp, out=np.zeros_like(tp, dtype=float), where=(tp + fp) > 0)
    return np.divide(2 * precision * tpr, precision + tpr, out=np.zeros_like(tp, dtype=float), where=(precision + tpr) > 0)


def calibrate_threshold(scores: np.ndarray, labels: np.ndarray, prevalence: float | None = None) -> float:
    """The threshold that maximises F1 on a validation split.

    With ``prevalence`` set, F1 is evaluated as it would be at that prevalence (the split's own
    class balance is factored out), so a validation set enriched with bugs still yields a
    threshold strict enough for deployment. Ties prefer the higher threshold (fewer alerts); the
    threshold returned lies midway between the best-scoring one and the next lower score.
    """
    scores, labels = _validate(scores, labels)
    if not labels.any() or labels.all():
        raise ValueError("threshold calibration needs both bug and good frames in the validation split")
    thresholds = np.unique(scores)[::-1]
    pos, neg = labels.sum(), (~labels).sum()
    sorted_pos = np.sort(scores[labels])
    sorted_neg = np.sort(scores[~labels])
    tpr = (pos - np.searchsorted(sorted_pos, thresholds, side="left")) / pos
    fpr = (neg - np.searchsorted(sorted_neg, thresholds, side="left")) / neg
    if prevalence is None:
        prevalence = pos / (pos + neg)
    f1 = f1_at_prevalence(tpr, fpr, prevalence)
    best = int(np.argmax(f1))  # first maximum = highest threshold among ties
    if best + 1 == len(thresholds):
        return float(thresholds[best])
    # Any threshold in the gap down to the next lower score flags the same validation frames; the
    # middle of the gap, not its edge at the lowest flagged score, leaves unseen frames room on
    # both sides (on a cleanly separated split the edge sits on its weakest bug frame, so about
    # half of the test's bug frames would fall under it).
    return float((thresholds[best] + thresholds[best + 1]) / 2)


@dataclass
class DetectionMetrics:
    f1: float
    pr_auc: float
    precision_at_recall_0_5: float
    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int
    positives: int
    negatives: int

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate_scores(scores: np.ndarray, labels: np.ndarray, threshold: float) -> DetectionMetrics:
    c = confusion_at(scores, labels, threshold)
    return DetectionMetrics(
        f1=c.f1,
        pr_auc=average_precision(scores, labels),
        precision_at_recall_0_5=precision_at_recall(scores, labels, 0.5),
        threshold=float(threshold),
        tp=c.tp, fp=c.fp, tn=c.tn, fn=c.fn,
        positives=c.tp + c.fn,
        negatives=c.tn + c.fp,
    )
