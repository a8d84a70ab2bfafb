"""Frame labels: a tester's judgement of whole frames (bug of a type, or good).

These are the handful of real labels the method starts from and the confirmations testers add
later (the review app's flag review writes here too). Rows are never updated: each judgement is
a new row with who, when and where it came from, and the latest judgement of a (frame, type)
wins, so history is kept and an undo is just another row. A retraction row removes the
judgement (the pair is unjudged again) while the rows before it stay as history.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Iterable, Sequence

import numpy as np

from bugdet.store.database import ensure_schema, require_transaction, transaction
from bugdet.store.frames import FrameRow, ensure_frames_schema

#: ``bug_type`` value meaning "this frame shows no bug of any type".
GOOD = "good"

SCHEMA = [
    """
    CREATE TABLE frame_labels (
        id INTEGER PRIMARY KEY,
        frame_id INTEGER NOT NULL REFERENCES frames(id),
        bug_type TEXT NOT NULL,        -- a bug type, or 'good'
        label INTEGER NOT NULL,        -- 1 = yes, 0 = no (a 'good' row with 0 retracts it)
        who TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL DEFAULT '', -- cli / review / groundtruth-sample / nightly
        created_at REAL NOT NULL
    );
    CREATE INDEX frame_labels_frame ON frame_labels(frame_id, bug_type);
    """,
    # v2: ``box``, where the bug is (JSON [x0, y0, x1, y1] in pixels, from a labels file), and
    # ``retracted`` = 1 for a row that removes the judgement while the rows before it stay as history.
    # (No SQL comments here: SQLite keeps an added column's text in the table definition.)
    """
    ALTER TABLE frame_labels ADD COLUMN box TEXT;
    ALTER TABLE frame_labels ADD COLUMN retracted INTEGER NOT NULL DEFAULT 0
    """,
]


def ensure_labels_schema(conn: sqlite3.Connection) -> None:
    ensure_frames_schema(conn)
    ensure_schema(conn, "frame_labels", SCHEMA)


def insert_labels(conn: sqlite3.Connection, rows: Iterable[tuple[int, str, int]], who: str = "",
                  source: str = "", boxes: Sequence[Sequence[int] | None] | None = None) -> list[int]:
    """Append judgements ``(frame_id, bug_type_or_good, 0/1)`` inside the caller's open transaction;
    their row ids, in order.

    For callers whose label is one half of a larger write (a flag verdict and the review row that
    points at its label): both commit together or neither does. Call :func:`ensure_labels_schema`
    first (schema changes take their own transaction).
    """
    require_transaction(conn, "insert_labels")
    now = time.time()
    rows = list(rows)
    boxes = list(boxes) if boxes is not None else [None] * len(rows)
    return [int(conn.execute(
        "INSERT INTO frame_labels (frame_id, bug_type, label, who, source, created_at, box) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (int(frame_id), bug_type, int(bool(label)), who, source, now, json.dumps(list(box)) if box else None),
    ).lastrowid) for (frame_id, bug_type, label), box in zip(rows, boxes)]


def record_labels(conn: sqlite3.Connection, rows: Iterable[tuple[int, str, int]], who: str = "", source: str = "") -> int:
    """Append judgements ``(frame_id, bug_type_or_good, 0/1)`` in one transaction; how many."""
    ensure_labels_schema(conn)
    with transaction(conn):
        return len(insert_labels(conn, rows, who=who, source=source))


def retract_labels(conn: sqlite3.Connection, pairs: Iterable[tuple[int, str]], who: str = "", source: str = "") -> int:
    """Remove the current judgement of each ``(frame_id, bug_type_or_good)`` inside the caller's
    transaction; how many judgements were removed. A retraction is a row of its own (history
    kept); the pair then has no judgement at all, as if never labeled, unlike a recorded "no"."""
    require_transaction(conn, "retract_labels")
    standing = {(r["frame_id"], r["bug_type"]) for r in _standing_rows(conn)}
    todo = list(dict.fromkeys((int(f), t) for f, t in pairs if (int(f), t) in standing))
    now = time.time()
    conn.executemany(
        "INSERT INTO frame_labels (frame_id, bug_type, label, who, source, created_at, retracted) VALUES (?, ?, 0, ?, ?, ?, 1)",
        [(f, t, who, source, now) for f, t in todo],
    )
    return len(todo)


def current_label_rows(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    """The standing judgement rows (latest per frame and type, retractions dropped), by frame."""
    ensure_labels_schema(conn)
    return _standing_rows(conn)


def _standing_rows(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    return list(conn.execute(
        "SELECT id, frame_id, bug_type, label, box, who, source FROM frame_labels WHERE retracted = 0 AND id IN "
        "(SELECT MAX(id) FROM frame_labels GROUP BY frame_id, bug_type) ORDER BY frame_id, bug_type"
    ))


def current_labels(conn: sqlite3.Connection) -> dict[int, dict[str, int]]:
    """Latest judgement per (frame, type): ``{frame_id: {bug_type_or_good: 0/1}}``; a retracted
    judgement is absent."""
    out: dict[int, dict[str, int]] = {}
    for r in current_label_rows(conn):
        out.setdefault(r["frame_id"], {})[r["bug_type"]] = r["label"]
    return out


def labeled_bug_types(conn: sqlite3.Connection) -> list[str]:
    """Bug types that at least one standing "yes" judgement names (sorted)."""
    return sorted({r["bug_type"] for r in current_label_rows(conn) if r["bug_type"] != GOOD and r["label"] == 1})


def label_vector(judgement: dict[str, int], bug_types: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(labels, known) over ``bug_types``: 'good' makes every type a known 0; a bug label makes
    its own type known; an unjudged type stays unknown (masked out of the loss)."""
    labels = np.zeros(len(bug_types), np.float32)
    known = np.zeros(len(bug_types), bool)
    if judgement.get(GOOD) == 1:
        known[:] = True
    for i, t in enumerate(bug_types):
        if t in judgement:
            labels[i] = float(judgement[t])
            known[i] = True
    if labels.any():  # a frame with a bug is not good, whatever an older 'good' row said
        known[:] = known | (labels > 0)
    return labels, known


def sample_labels_from_ground_truth(
    frames: Sequence[FrameRow], bug_types: Sequence[str], bugs_per_type: int, good: int, seed: int
) -> list[tuple[int, str, int]]:
    """What a tester with a small budget would label: ``bugs_per_type`` bug frames of each type and
    ``good`` clean frames, drawn at random from frames that carry ground truth. Used by the demo
    and the quality benchmark to simulate the low-label regime."""
    rng = np.random.default_rng(seed)
    with_truth = [f for f in frames if f.ground_truth is not None]
    rows: list[tuple[int, str, int]] = []
    for t in bug_types:
        pool = [f for f in with_truth if f.is_bug(t)]
        for i in rng.permutation(len(pool))[:bugs_per_type]:
            rows.append((pool[i].id, t, 1))
    clean = [f for f in with_truth if not f.is_bug()]
    for i in rng.permutation(len(clean))[:good]:
        rows.append((clean[i].id, GOOD, 1))
    return rows
