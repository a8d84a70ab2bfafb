"""Weak labels for frames: kNN vote of a few labeled exemplars through a FAISS index."""

from __future__ import annotations

import numpy as np
import pytest

from bugdet.embed.histogram import ColourHistogramTestEmbedder
from bugdet.embed.pipeline import embed_frames
from bugdet.errors import InputError
from bugdet.store.labels import record_labels
from bugdet.weaklabel.config import WeakLabelConfig
from bugdet.weaklabel.propagate import (
    exemplars_from_ground_truth,
    exemplars_from_labels,
    knn_vote,
    load_weak_labels,
    propagate_labels,
)
from filter_toydata import add_frames, new_project

KEY = ColourHistogramTestEmbedder.key


def test_knn_vote_weights_by_similarity_and_reports_confidence():
    exemplars = np.eye(3, dtype=np.float32)
    classes = ["fppc", "good", "good"]
    queries = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0]], np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    winners, confidence, votes = knn_vote(exemplars, classes, queries, knn=3, temperature=0.05)
    assert winners[:2] == ["fppc", "good"]
    assert confidence[0] > 0.99 and confidence[1] > 0.99
    # equidistant from one fppc and one good exemplar (the third is far): a coin flip, confidence ~0.5
    assert abs(confidence[2] - 0.5) < 0.01 and abs(votes[2]["fppc"] - votes[2]["good"]) < 0.01


def _frames(kind: str, n: int):
    colour = {"bug": "red", "good": "blue"}[kind]
    return [[(colour, "circle"), (colour, "rect")]] * n


@pytest.fixture()
def labeled_project(tmp_path):
    project = new_project(tmp_path / "p")
    shapes = _frames("bug", 6) + _frames("good", 9)
    truth = [{"fppc": {"present": i < 6, "severity": 1.0, "mask": None}} for i in range(15)]
    frames = add_frames(project, shapes, ground_truth=truth)
    embed_frames(project, ColourHistogramTestEmbedder())
    return project, [f[0] for f in frames]


def test_labels_propagate_with_full_coverage_and_agreement(labeled_project):
    project, ids = labeled_project
    exemplars = {ids[0]: "fppc", ids[1]: "fppc", ids[6]: "good", ids[7]: "good"}
    cfg = WeakLabelConfig(knn=3, temperature=0.01, min_confidence=0.6)
    report = propagate_labels(project, exemplars, KEY, cfg)
    assert (report.exemplars, report.unlabeled) == (4, 11)
    assert report.coverage == 1.0 and report.agreement == 1.0 and report.with_truth == 11
    assert report.per_class == {"fppc": 4, "good": 7}
    labels = load_weak_labels(project, report.run_id)
    assert all(labels[i][0] == "fppc" for i in ids[:6]) and all(labels[i][0] == "good" for i in ids[6:])
    assert labels[ids[0]] == ("fppc", 1.0)  # exemplars keep their own label


def test_low_confidence_abstains(labeled_project):
    project, ids = labeled_project
    exemplars = {ids[0]: "fppc", ids[6]: "good"}
    # a very high temperature flattens the vote to ~50/50: nothing reaches 0.6
    report = propagate_labels(project, exemplars, KEY, WeakLabelConfig(knn=2, temperature=100.0, min_confidence=0.6))
    assert report.covered == 0 and report.coverage == 0.0 and report.agreement is None
    assert all(label is None for fid, (label, _) in load_weak_labels(project).items() if fid not in exemplars)


def test_exemplars_come_from_recorded_labels_or_a_ground_truth_sample(labeled_project):
    project, ids = labeled_project
    conn = project.connect()
    try:
        record_labels(conn, [(ids[0], "fppc", 1), (ids[6], "good", 1), (ids[7], "fppc", 0)], who="ana", source="cli")
    finally:
        conn.close()
    assert exemplars_from_labels(project) == {ids[0]: "fppc", ids[6]: "good"}  # a lone 'not fppc' is undecided
    sample = exemplars_from_ground_truth(project, ["fppc"], bugs_per_type=2, good=3, seed=0)
    assert sorted(sample.values()) == ["fppc", "fppc", "good", "good", "good"]
    assert all((fid in ids[:6]) == (c == "fppc") for fid, c in sample.items())


def test_weak_label_bad_inputs(labeled_project, tmp_path):
    project, ids = labeled_project
    with pytest.raises(InputError, match="no labeled exemplar"):
        propagate_labels(project, {}, KEY)
    other = new_project(tmp_path / "other")
    frames = add_frames(other, _frames("bug", 1))
    with pytest.raises(InputError, match="no frame embedding"):
        propagate_labels(other, {frames[0][0]: "fppc"}, KEY)
