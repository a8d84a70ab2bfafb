"""Detection metrics against values computed by hand."""

import numpy as np
import pytest

from bugdet.detect.metrics import (
    average_precision,
    calibrate_threshold,
    confusion_at,
    evaluate_scores,
    f1_at_prevalence,
    precision_at_recall,
    precision_recall_curve,
)

# 10 frames, 3 bugs. Sorted by score: B(.9) g(.8) B(.7) g(.6) g(.5) B(.4) g(.3) g(.2) g(.1) g(.05)
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
LABELS = np.array([1, 0, 1, 0, 0, 1, 0, 0, 0, 0])


def test_confusion_and_f1_at_a_threshold() -> None:
    c = confusion_at(SCORES, LABELS, 0.65)  # flags .9 .8 .7
    assert (c.tp, c.fp, c.tn, c.fn) == (2, 1, 6, 1)
    assert c.precision == pytest.approx(2 / 3) and c.recall == pytest.approx(2 / 3)
    assert c.f1 == pytest.approx(2 / 3)


def test_precision_recall_curve_points() -> None:
    p, r, t = precision_recall_curve(SCORES, LABELS)
    assert p[:3] == pytest.approx([1.0, 0.5, 2 / 3])
    assert r[:3] == pytest.approx([1 / 3, 1 / 3, 2 / 3])
    assert t[0] == 0.9


def test_average_precision_by_hand() -> None:
    # recall steps at ranks 1, 3, 6 with precision 1, 2/3, 1/2
    assert average_precision(SCORES, LABELS) == pytest.approx((1 + 2 / 3 + 0.5) / 3)


def test_ties_flip_together() -> None:
    scores = np.array([0.5, 0.5, 0.5, 0.1])
    labels = np.array([1, 0, 0, 0])
    assert average_precision(scores, labels) == pytest.approx(1 / 3)


def test_precision_at_half_recall() -> None:
    # recall >= 0.5 first reached at rank 3 (precision 2/3); rank 6 gives 1/2
    assert precision_at_recall(SCORES, LABELS, 0.5) == pytest.approx(2 / 3)


def test_f1_at_prevalence_matches_counting() -> None:
    # TPR 0.8, FPR 0.01 at 1% prevalence over 10000 frames: 80 TP, 99 FP, 20 FN
    f1 = f1_at_prevalence(np.array([0.8]), np.array([0.01]), 0.01)[0]
    assert f1 == pytest.approx(2 * 80 / (2 * 80 + 99 + 20))


def test_calibration_picks_the_best_f1_threshold_and_respects_prevalence() -> None:
    # best F1 flags .9 .8 .7; the threshold sits midway to the next score (.6)
    assert calibrate_threshold(SCORES, LABELS) == pytest.approx(0.65)
    # At a much lower prevalence every false positive costs more: the threshold rises.
    strict = calibrate_threshold(SCORES, LABELS, prevalence=0.001)
    assert strict == pytest.approx(0.85)
    with pytest.raises(ValueError, match="both bug and good"):
        calibrate_threshold(SCORES, np.zeros(10))


def test_calibration_leaves_a_margin_on_a_separated_split() -> None:
    scores = np.array([0.99, 0.95, 0.9, 0.3, 0.2, 0.1])
    labels = np.array([1, 1, 1, 0, 0, 0])
    threshold = calibrate_threshold(scores, labels)
    assert threshold == pytest.approx(0.6)  # midway between the weakest bug and the strongest good frame
    assert confusion_at(scores, labels, threshold).f1 == 1.0
    assert calibrate_threshold(np.array([0.9, 0.8]), np.array([0, 1])) == pytest.approx(0.8)  # no lower score


def test_evaluate_scores_bundle() -> None:
    m = evaluate_scores(SCORES, LABELS, 0.65)
    assert (m.tp, m.fp, m.fn, m.positives, m.negatives) == (2, 1, 1, 3, 7)
    assert m.pr_auc == pytest.approx((1 + 2 / 3 + 0.5) / 3)
    with pytest.raises(ValueError, match="differ in length"):
        evaluate_scores(SCORES, LABELS[:5], 0.5)
