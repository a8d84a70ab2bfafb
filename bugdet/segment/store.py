"""Bookkeeping of segmentation in the project database, on top of the masks table (masks.py).

``segment_frames`` records, per frame and stored backend, that the frame has been segmented
(also when it yielded no mask, e.g. a black frame), so re-running ``bugdet segment`` touches
only new frames and never duplicates masks. A frame's masks and its record are replaced in one
transaction, so an interrupted run leaves every frame either fully done or not started.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any, Iterable

import numpy as np

from bugdet.segment.masks import MaskRecord, ensure_masks_schema, insert_masks, iter_masks
from bugdet.store.database import ensure_schema, transaction

SCHEMA = [
    """
    CREATE TABLE segment_frames (
        frame_id INTEGER NOT NULL REFERENCES frames(id),
        backend TEXT NOT NULL,           -- the masks.backend value: grid / sam / engine
        status TEXT NOT NULL,            -- ok / empty (uniform frame) / no_masks / failed
        masks INTEGER NOT NULL,
        message TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        PRIMARY KEY (frame_id, backend)
    );
    """,
]

PROMPT_BACKEND = "prompt"


def ensure_segment_schema(conn: sqlite3.Connection) -> None:
    ensure_masks_schema(conn)
    ensure_schema(conn, "segment", SCHEMA)


def segmented_frame_ids(conn: sqlite3.Connection, backend: str) -> set[int]:
    ensure_segment_schema(conn)
    return {r[0] for r in conn.execute("SELECT frame_id FROM segment_frames WHERE backend = ?", (backend,))}


def replace_frame_masks(
    conn: sqlite3.Connection,
    frame_id: int,
    backend: str,
    records: list[MaskRecord],
    status: str = "ok",
    message: str = "",
) -> None:
    """Swap a frame's masks of one backend for ``records`` and mark it done (caller owns the transaction)."""
    conn.execute("DELETE FROM masks WHERE frame_id = ? AND backend = ?", (frame_id, backend))
    insert_masks(conn, records)
    conn.execute(
        "INSERT INTO segment_frames (frame_id, backend, status, masks, message, created_at) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(frame_id, backend) DO UPDATE SET status = excluded.status, masks = excluded.masks, "
        "message = excluded.message, created_at = excluded.created_at",
        (frame_id, backend, status, len(records), message, time.time()),
    )


def frame_status_counts(conn: sqlite3.Connection, backend: str | None = None) -> dict[str, int]:
    ensure_segment_schema(conn)
    where, params = ("WHERE backend = ?", (backend,)) if backend else ("", ())
    rows = conn.execute(f"SELECT status, COUNT(*) FROM segment_frames {where} GROUP BY status", params)
    return {r[0]: r[1] for r in rows}


def save_prompt_mask(
    conn: sqlite3.Connection,
    frame_id: int,
    mask: np.ndarray,
    score: float,
    *,
    model: str,
    prompt: dict[str, Any] | None = None,
    role: str | None = None,
    label: str | None = None,
) -> MaskRecord:
    """Store a tester's prompted mask (backend ``prompt``).

    With a ``role`` (e.g. ``"weapon"``: the viewmodel mask later stages composite against) the
    frame keeps one mask per role: saving again replaces the previous one.
    """
    ensure_segment_schema(conn)
    meta: dict[str, Any] = {"model": model, "prompt": prompt or {}}
    if role:
        meta["role"] = role
    record = MaskRecord.from_mask(frame_id, PROMPT_BACKEND, mask, score, label=label or role, meta=meta)
    with transaction(conn):
        if role:
            conn.execute(
                "DELETE FROM masks WHERE frame_id = ? AND backend = ? AND json_extract(meta, '$.role') = ?",
                (frame_id, PROMPT_BACKEND, role),
            )
        insert_masks(conn, [record])
    return record


def role_masks(conn: sqlite3.Connection, role: str, frame_ids: Iterable[int] | None = None) -> list[MaskRecord]:
    """Prompted masks saved with ``role`` (newest last), e.g. the tester's weapon mask."""
    return [m for m in iter_masks(conn, frame_ids=frame_ids, backend=PROMPT_BACKEND) if m.meta.get("role") == role]


def latest_role_mask(conn: sqlite3.Connection, role: str) -> MaskRecord | None:
    found = role_masks(conn, role)
    return found[-1] if found else None


def candidate_records(frame_id: int, backend: str, candidates: Iterable[Any], extra_meta: dict[str, Any] | None = None) -> list[MaskRecord]:
    """MaskRecords (RLE, bbox, area) of :class:`~bugdet.segment.base.Candidate` objects."""
    out = []
    for c in candidates:
        meta = {**(extra_meta or {}), **c.meta}
        out.append(MaskRecord.from_mask(frame_id, backend, c.mask, c.score, label=c.label, meta=meta))
    return out
