"""The frame manifest: every ingested frame, where it came from, and its ground truth.

Frames are content-addressed: ``sha256`` of the decoded pixels (shape and bytes) is unique, so
ingesting the same capture twice, or a copy of it, adds nothing. Image files are stored under
``frames/ab/abcdef....png`` and written before their row is committed, so a row never points at
a missing file.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

from bugdet.store.database import ensure_schema, where_clause

SCHEMA = [
    """
    CREATE TABLE sources (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,               -- video / folder / session
        uri TEXT NOT NULL,                -- path as given, for people
        fingerprint TEXT NOT NULL UNIQUE, -- content fingerprint of the whole capture
        status TEXT NOT NULL,             -- ingesting / complete / failed
        frames_seen INTEGER NOT NULL DEFAULT 0,
        frames_added INTEGER NOT NULL DEFAULT 0,
        problems TEXT NOT NULL DEFAULT '[]',
        meta TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE frames (
        id INTEGER PRIMARY KEY,
        sha256 TEXT NOT NULL UNIQUE,
        source_id INTEGER NOT NULL REFERENCES sources(id),
        source_index INTEGER NOT NULL,    -- frame number within the capture
        timestamp REAL NOT NULL,          -- seconds from the capture's start
        path TEXT NOT NULL,               -- relative to the project directory
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        scene TEXT NOT NULL DEFAULT '',
        split TEXT NOT NULL DEFAULT '',
        pose TEXT,                        -- JSON {x,y,z,h,p,r} or NULL
        fov REAL,
        ground_truth TEXT,                -- JSON {bug_type: {present, severity, mask}} or NULL
        aux TEXT NOT NULL DEFAULT '{}',   -- JSON: weapon, ids/weapon_mask paths, capture extras
        created_at REAL NOT NULL
    );
    CREATE INDEX frames_source ON frames(source_id, source_index);
    """,
]


def ensure_frames_schema(conn: sqlite3.Connection) -> None:
    ensure_schema(conn, "frames", SCHEMA)


@dataclass
class FrameRow:
    """One ingested frame as later stages see it."""

    id: int
    sha256: str
    source_id: int
    source_index: int
    timestamp: float
    path: str
    width: int
    height: int
    scene: str = ""
    split: str = ""
    pose: dict[str, float] | None = None
    fov: float | None = None
    ground_truth: dict[str, dict[str, Any]] | None = None
    aux: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "FrameRow":
        return cls(
            id=row["id"],
            sha256=row["sha256"],
            source_id=row["source_id"],
            source_index=row["source_index"],
            timestamp=row["timestamp"],
            path=row["path"],
            width=row["width"],
            height=row["height"],
            scene=row["scene"],
            split=row["split"],
            pose=json.loads(row["pose"]) if row["pose"] else None,
            fov=row["fov"],
            ground_truth=json.loads(row["ground_truth"]) if row["ground_truth"] else None,
            aux=json.loads(row["aux"] or "{}"),
        )

    @property
    def has_ground_truth(self) -> bool:
        return self.ground_truth is not None

    def is_bug(self, bug_type: str | None = None) -> bool | None:
        """Ground-truth bug flag (any type, or one type); None when the frame has no ground truth."""
        if self.ground_truth is None:
            return None
        if bug_type is not None:
            return bool(self.ground_truth.get(bug_type, {}).get("present", False))
        return any(t.get("present", False) for t in self.ground_truth.values())


def frame_exists(conn: sqlite3.Connection, sha256: str) -> bool:
    return conn.execute("SELECT 1 FROM frames WHERE sha256 = ?", (sha256,)).fetchone() is not None


def insert_frame(conn: sqlite3.Connection, row: dict[str, Any]) -> bool:
    """Insert one frame; return False when a frame with the same content already exists."""
    cur = conn.execute(
        """INSERT OR IGNORE INTO frames (sha256, source_id, source_index, timestamp, path, width, height,
               scene, split, pose, fov, ground_truth, aux, created_at)
           VALUES (:sha256, :source_id, :source_index, :timestamp, :path, :width, :height,
               :scene, :split, :pose, :fov, :ground_truth, :aux, :created_at)""",
        {
            "scene": "",
            "split": "",
            "pose": None,
            "fov": None,
            "ground_truth": None,
            "aux": "{}",
            "created_at": time.time(),
            **row,
        },
    )
    return cur.rowcount == 1


def iter_frames(
    conn: sqlite3.Connection,
    *,
    split: str | None = None,
    scene: str | None = None,
    source_id: int | None = None,
    min_id: int | None = None,
) -> Iterator[FrameRow]:
    """Frames in ingest order, optionally filtered (``min_id`` lets incremental jobs see only new ones)."""
    ensure_frames_schema(conn)
    where, params = where_clause({"split": split, "scene": scene, "source_id": source_id}, min_id=min_id)
    for row in conn.execute(f"SELECT * FROM frames {where} ORDER BY id", params):
        yield FrameRow.from_row(row)


def get_frame_by_sha(conn: sqlite3.Connection, sha256: str) -> FrameRow | None:
    row = conn.execute("SELECT * FROM frames WHERE sha256 = ?", (sha256,)).fetchone()
    return FrameRow.from_row(row) if row else None


#: ``aux`` keys naming the image files a frame was read from (see :mod:`bugdet.store.resolve`).
FILE_KEY = "file"            # the path as given to ``bugdet ingest``
FILE_ABS_KEY = "file_abs"    # the same, absolute
ALSO_FILES_KEY = "also_files"  # other files with identical pixels, ingested later (content dedupe)
#: A static scene (a menu, a loading screen) can repeat one image thousands of times: remember a few names.
MAX_ALSO_FILES = 64


def add_frame_alias(conn: sqlite3.Connection, frame: FrameRow, file: str) -> None:
    """Remember that ``file`` holds the same pixels as ``frame`` (deduplicated at ingest), so a
    labels file may name the frame by either file."""
    known = {frame.aux.get(FILE_KEY), frame.aux.get(FILE_ABS_KEY), *frame.aux.get(ALSO_FILES_KEY, [])}
    if file in known or len(frame.aux.get(ALSO_FILES_KEY, [])) >= MAX_ALSO_FILES:
        return
    aux = dict(frame.aux)
    aux[ALSO_FILES_KEY] = [*aux.get(ALSO_FILES_KEY, []), file]
    frame.aux = aux
    conn.execute("UPDATE frames SET aux = ? WHERE id = ?", (json.dumps(aux, sort_keys=True), frame.id))


def set_frame_split(conn: sqlite3.Connection, frame_ids: list[int], split: str) -> None:
    conn.executemany("UPDATE frames SET split = ? WHERE id = ?", [(split, int(i)) for i in frame_ids])


def get_frame(conn: sqlite3.Connection, frame_id: int) -> FrameRow | None:
    ensure_frames_schema(conn)
    row = conn.execute("SELECT * FROM frames WHERE id = ?", (frame_id,)).fetchone()
    return FrameRow.from_row(row) if row else None


def count_frames(conn: sqlite3.Connection) -> int:
    ensure_frames_schema(conn)
    return conn.execute("SELECT COUNT(*) FROM frames").fetchone()[0]


def training_frames(conn: sqlite3.Connection, train_split: str = "train") -> list[FrameRow]:
    """The frames that may feed training (objective targets, paste sources, weak-label exemplars):
    those of ``train_split``. A project whose frames carry no split at all holds nothing out, so
    there every frame may; as soon as any frame has a split, only the train split's frames do, so
    validation and test frames never leak into what the detector learns from."""
    rows = list(iter_frames(conn))
    if not any(r.split for r in rows):
        return rows
    return [r for r in rows if r.split == train_split]


def sample_evenly(frames: Sequence[FrameRow], n: int) -> list[FrameRow]:
    """``n`` frames spread evenly over captures and over time within each capture.

    Each capture gets a share proportional to its length (every capture at least one while
    ``n`` allows), taken at evenly spaced positions of its timeline, so a sample of a long
    playtest sees its whole length and every capture, not the first minutes of the first one."""
    if n >= len(frames):
        return list(frames)
    by_capture: dict[int, list[FrameRow]] = {}
    for f in frames:
        by_capture.setdefault(f.source_id, []).append(f)
    captures = sorted(by_capture.values(), key=lambda c: (-len(c), c[0].id))
    shares = [0] * len(captures)
    if n >= len(captures):
        shares = [1] * len(captures)
    remaining = n - sum(shares)
    if remaining > 0:  # largest remainder over the frames still available per capture
        room = [len(c) - s for c, s in zip(captures, shares)]
        total = sum(room)
        exact = [remaining * r / total for r in room]
        extra = [int(e) for e in exact]
        for i in sorted(range(len(captures)), key=lambda i: exact[i] - extra[i], reverse=True)[: remaining - sum(extra)]:
            extra[i] += 1
        shares = [s + e for s, e in zip(shares, extra)]
    else:
        shares = [1 if i < n else 0 for i in range(len(captures))]
    picked: list[FrameRow] = []
    for capture, k in zip(captures, shares):
        if k:
            ordered = sorted(capture, key=lambda f: (f.source_index, f.id))
            positions = np.linspace(0, len(ordered) - 1, k) if k > 1 else np.array([(len(ordered) - 1) / 2])
            picked.extend(ordered[i] for i in sorted(set(positions.round().astype(int).tolist())))
    return sorted(picked, key=lambda f: f.id)
