"""Weak labels for frames: a handful of labeled exemplars vote on every unlabeled frame (kNN).

Frame vector = CLIP embedding of the *whole frame* (letterboxed), not a pool of its mask
embeddings: the bugs we label are properties of the frame's layout (geometry in front of the
weapon, a surface filling the view, a black frame) that a mean of object crops cannot see, a pool
would depend on how well segmentation covered the frame, and frames with no masks would get no
vector at all. One forward pass per frame also costs less than the frame's masks.

Each unlabeled frame finds its ``knn`` most similar exemplars in a FAISS inner-product index;
their votes are weighted by ``softmax(similarity / temperature)``; the winning class's share of
the weight is the confidence, and below ``min_confidence`` the frame abstains (no label). Coverage
= labeled share of unlabeled frames; agreement = share of covered frames whose label matches their
ground truth (when frames carry it).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from bugdet.embed.store import get_model, load_embeddings
from bugdet.errors import InputError
from bugdet.project import Project
from bugdet.scale.ann import knn_search
from bugdet.scale.config import IndexConfig
from bugdet.store.database import ensure_schema, transaction
from bugdet.store.frames import FrameRow, iter_frames, training_frames
from bugdet.store.labels import GOOD, current_labels, sample_labels_from_ground_truth
from bugdet.weaklabel.config import WeakLabelConfig

SCHEMA = [
    """
    CREATE TABLE weak_label_runs (
        id INTEGER PRIMARY KEY,
        model_key TEXT NOT NULL,
        exemplars TEXT NOT NULL,          -- JSON {frame_id: class}
        params TEXT NOT NULL,             -- JSON knn / temperature / min_confidence
        coverage REAL NOT NULL,
        agreement REAL,                   -- NULL when no covered frame has ground truth
        created_at REAL NOT NULL
    );
    CREATE TABLE weak_labels (
        run_id INTEGER NOT NULL REFERENCES weak_label_runs(id),
        frame_id INTEGER NOT NULL,
        label TEXT,                       -- class, or NULL when the vote abstained
        confidence REAL NOT NULL,
        votes TEXT NOT NULL,              -- JSON {class: weight share}
        PRIMARY KEY (run_id, frame_id)
    );
    """,
]


@dataclass
class WeakLabelReport:
    run_id: int
    exemplars: int
    unlabeled: int
    covered: int
    with_truth: int                       # covered frames that carry ground truth
    agreeing: int
    per_class: dict[str, int] = field(default_factory=dict)
    pretrained: bool = True

    @property
    def coverage(self) -> float:
        return self.covered / self.unlabeled if self.unlabeled else 0.0

    @property
    def agreement(self) -> float | None:
        return self.agreeing / self.with_truth if self.with_truth else None

    def describe(self) -> str:
        agree = f"{self.agreement:.1%} agreement with ground truth on {self.with_truth} frames" \
            if self.agreement is not None else "no ground truth to check agreement"
        warn = "" if self.pretrained else " [UNPRETRAINED embeddings]"
        return (f"weak-label run {self.run_id}: {self.exemplars} exemplars -> {self.covered}/{self.unlabeled} frames "
                f"labeled ({self.coverage:.1%} coverage), {agree}; per class {self.per_class}{warn}")


def ensure_weaklabel_schema(conn: sqlite3.Connection) -> None:
    ensure_schema(conn, "weak_labels", SCHEMA)


def frame_class(judgement: Mapping[str, int]) -> str | None:
    """One class per labeled frame: its (first, sorted) bug type, 'good', or None if undecided."""
    bugs = sorted(t for t, v in judgement.items() if t != GOOD and v == 1)
    if bugs:
        return bugs[0]
    return GOOD if judgement.get(GOOD) == 1 else None


def truth_class(frame: FrameRow) -> str | None:
    if frame.ground_truth is None:
        return None
    bugs = sorted(t for t, v in frame.ground_truth.items() if v.get("present"))
    return bugs[0] if bugs else GOOD


def knn_vote(exemplar_vectors: np.ndarray, exemplar_classes: list[str], queries: np.ndarray, knn: int,
             temperature: float, index_cfg: IndexConfig | None = None) -> tuple[list[str], np.ndarray, list[dict[str, float]]]:
    """Winning class, its weight share and the full vote per query (rows are unit vectors).

    ``index_cfg``: exact search below ``scale.index.flat_below`` exemplars, IVF above (bugdet.scale.ann)."""
    k = min(knn, len(exemplar_classes))
    sims, nn = knn_search(exemplar_vectors, queries, k, index_cfg or IndexConfig())
    sims = np.where(nn >= 0, sims, -np.inf)  # an IVF search can find fewer than k: those slots get no weight
    weights = np.exp((sims - sims.max(axis=1, keepdims=True)) / temperature)
    weights /= weights.sum(axis=1, keepdims=True)
    winners, confidence, votes = [], np.zeros(len(queries), np.float32), []
    for q in range(len(queries)):
        vote: dict[str, float] = {}
        for j, w in zip(nn[q][nn[q] >= 0], weights[q][nn[q] >= 0]):
            vote[exemplar_classes[j]] = vote.get(exemplar_classes[j], 0.0) + float(w)
        best = max(sorted(vote), key=vote.__getitem__)
        winners.append(best)
        confidence[q] = vote[best]
        votes.append(vote)
    return winners, confidence, votes


def exemplars_from_labels(project: Project) -> dict[int, str]:
    """Exemplars from the frame labels testers recorded (``bugdet.store.labels``)."""
    conn = project.connect()
    try:
        judgements = current_labels(conn)
        allowed = {f.id for f in training_frames(conn, project.config.detect.train_split)}
    finally:
        conn.close()
    # validation/test labels judge the detector; they are never exemplars
    out = {fid: frame_class(j) for fid, j in judgements.items() if fid in allowed}
    return {fid: c for fid, c in out.items() if c is not None}


def exemplars_from_ground_truth(project: Project, bug_types: list[str], bugs_per_type: int, good: int,
                                seed: int = 0) -> dict[int, str]:
    """Simulated tester: a few ground-truth frames per class (for evaluations; nothing is recorded)."""
    conn = project.connect()
    try:
        frames = training_frames(conn, project.config.detect.train_split)
    finally:
        conn.close()
    rows = sample_labels_from_ground_truth(frames, bug_types, bugs_per_type, good, seed)
    return {fid: t for fid, t, _ in rows}


def propagate_labels(project: Project, exemplars: Mapping[int, str], model_key: str,
                     cfg: WeakLabelConfig | None = None) -> WeakLabelReport:
    """Label every embedded, unlabeled frame from ``exemplars`` ({frame_id: class}) and store the run."""
    cfg = cfg or project.config.filter.weaklabel
    if not exemplars:
        raise InputError("no labeled exemplar frames (label a few frames, or sample them from ground truth)")
    conn = project.connect()
    try:
        ensure_weaklabel_schema(conn)
        info = get_model(conn, model_key)
        ids, vectors = load_embeddings(project.root, conn, model_key, "frame")
        frames = {f.id: f for f in iter_frames(conn)}
    finally:
        conn.close()
    row_of = {int(i): r for r, i in enumerate(ids)}
    missing = [fid for fid in exemplars if fid not in row_of]
    if missing:
        raise InputError(f"exemplar frame(s) {missing[:5]} have no frame embedding (run `bugdet embed --frames`)")
    ex_ids = sorted(exemplars)
    ex_vectors = vectors[[row_of[f] for f in ex_ids]]
    query_rows = [r for r, i in enumerate(ids) if int(i) not in exemplars]
    winners, confidence, votes = knn_vote(ex_vectors, [exemplars[f] for f in ex_ids], vectors[query_rows],
                                          cfg.knn, cfg.temperature, project.config.scale.index) if query_rows else ([], np.zeros(0), [])
    labels = [w if c >= cfg.min_confidence else None for w, c in zip(winners, confidence)]

    covered = with_truth = agreeing = 0
    per_class: dict[str, int] = {}
    for row, label in zip(query_rows, labels):
        if label is None:
            continue
        covered += 1
        per_class[label] = per_class.get(label, 0) + 1
        truth = truth_class(frames[int(ids[row])]) if int(ids[row]) in frames else None
        if truth is not None:
            with_truth += 1
            agreeing += int(truth == label)
    report = WeakLabelReport(0, len(ex_ids), len(query_rows), covered, with_truth, agreeing, per_class,
                             info.pretrained if info else True)
    conn = project.connect()
    try:
        with transaction(conn):
            cur = conn.execute(
                "INSERT INTO weak_label_runs(model_key, exemplars, params, coverage, agreement, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (model_key, json.dumps({str(k): v for k, v in exemplars.items()}), json.dumps(cfg.model_dump()),
                 report.coverage, report.agreement, time.time()),
            )
            report.run_id = cur.lastrowid
            rows = [(report.run_id, int(f), exemplars[f], 1.0, json.dumps({exemplars[f]: 1.0})) for f in ex_ids]
            rows += [(report.run_id, int(ids[r]), lab, float(c), json.dumps(v))
                     for r, lab, c, v in zip(query_rows, labels, confidence, votes)]
            conn.executemany("INSERT INTO weak_labels(run_id, frame_id, label, confidence, votes) VALUES (?, ?, ?, ?, ?)", rows)
    finally:
        conn.close()
    return report


def load_weak_labels(project: Project, run_id: int | None = None) -> dict[int, tuple[str | None, float]]:
    """{frame_id: (label or None, confidence)} of a run (default: the latest)."""
    conn = project.connect()
    try:
        ensure_weaklabel_schema(conn)
        if run_id is None:
            row = conn.execute("SELECT MAX(id) FROM weak_label_runs").fetchone()
            if row[0] is None:
                raise InputError("no weak-label run yet (run `bugdet weaklabel` first)")
            run_id = row[0]
        rows = conn.execute("SELECT frame_id, label, confidence FROM weak_labels WHERE run_id = ?", (run_id,))
        return {r["frame_id"]: (r["label"], r["confidence"]) for r in rows}
    finally:
        conn.close()
