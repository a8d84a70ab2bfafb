"""Mask storage: the contract between segmentation and every later stage.

A mask is stored as run-length encoding (COCO-style, column-major, uncompressed counts) in the
project database with its bbox, area, score, backend and source frame. RLE keeps a 320x240 mask
to a few hundred bytes and decodes in microseconds, so later stages never need mask files.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import numpy as np

from bugdet.store.database import ensure_schema, where_clause

SCHEMA = [
    """
    CREATE TABLE masks (
        id INTEGER PRIMARY KEY,
        frame_id INTEGER NOT NULL REFERENCES frames(id),
        backend TEXT NOT NULL,         -- grid / prompt / engine / sam
        x INTEGER NOT NULL, y INTEGER NOT NULL, w INTEGER NOT NULL, h INTEGER NOT NULL,
        area INTEGER NOT NULL,
        score REAL NOT NULL,           -- backend's quality estimate in [0, 1]
        label TEXT,                    -- semantic label when the backend knows it (engine IDs)
        rle TEXT NOT NULL,             -- JSON {"size": [h, w], "counts": [...]}
        meta TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL
    );
    CREATE INDEX masks_frame ON masks(frame_id, backend);
    """,
]


def ensure_masks_schema(conn: sqlite3.Connection) -> None:
    from bugdet.store.frames import ensure_frames_schema

    ensure_frames_schema(conn)
    ensure_schema(conn, "masks", SCHEMA)


def rle_encode(mask: np.ndarray) -> dict[str, Any]:
    """Column-major run lengths starting with a run of zeros (possibly empty)."""
    flat = np.asarray(mask, dtype=bool).flatten(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def rle_decode(rle: dict[str, Any]) -> np.ndarray:
    h, w = rle["size"]
    values = np.zeros(len(rle["counts"]), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, rle["counts"])
    return flat.reshape((w, h)).T


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight (x, y, w, h) of the set pixels; (0, 0, 0, 0) for an empty mask."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return (0, 0, 0, 0)
    return (int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))


@dataclass
class MaskRecord:
    frame_id: int
    backend: str
    bbox: tuple[int, int, int, int]
    area: int
    score: float
    rle: dict[str, Any]
    label: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    id: int | None = None

    @classmethod
    def from_mask(cls, frame_id: int, backend: str, mask: np.ndarray, score: float, **kw: Any) -> "MaskRecord":
        return cls(
            frame_id=frame_id,
            backend=backend,
            bbox=mask_bbox(mask),
            area=int(np.count_nonzero(mask)),
            score=float(score),
            rle=rle_encode(mask),
            **kw,
        )

    def decode(self) -> np.ndarray:
        return rle_decode(self.rle)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "MaskRecord":
        return cls(
            id=row["id"],
            frame_id=row["frame_id"],
            backend=row["backend"],
            bbox=(row["x"], row["y"], row["w"], row["h"]),
            area=row["area"],
            score=row["score"],
            label=row["label"],
            rle=json.loads(row["rle"]),
            meta=json.loads(row["meta"] or "{}"),
        )


def insert_masks(conn: sqlite3.Connection, records: Iterable[MaskRecord]) -> list[int]:
    """Insert masks (caller owns the transaction); returns their new ids."""
    ids = []
    now = time.time()
    for r in records:
        x, y, w, h = r.bbox
        cur = conn.execute(
            "INSERT INTO masks (frame_id, backend, x, y, w, h, area, score, label, rle, meta, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (r.frame_id, r.backend, x, y, w, h, r.area, r.score, r.label,
             json.dumps(r.rle, separators=(",", ":")), json.dumps(r.meta, sort_keys=True), now),
        )
        r.id = cur.lastrowid
        ids.append(cur.lastrowid)
    return ids


def iter_masks(
    conn: sqlite3.Connection,
    *,
    frame_ids: Iterable[int] | None = None,
    backend: str | None = None,
    min_id: int | None = None,
) -> Iterator[MaskRecord]:
    ensure_masks_schema(conn)
    where, params = where_clause({"backend": backend}, {"frame_id": frame_ids}, min_id=min_id)
    for row in conn.execute(f"SELECT * FROM masks {where} ORDER BY id", params):
        yield MaskRecord.from_row(row)


#: Neutral grey (CLIP's mean colour) that surrounds a masked region in its crop.
NEUTRAL_RGB = (122, 116, 104)


def mask_crop(rgb: np.ndarray, mask: np.ndarray, pad_fraction: float = 0.1) -> np.ndarray:
    """The masked region on a neutral background, cut to its (slightly padded) tight box.

    This is what gets embedded: the surrounding scene is blanked so the embedding describes the
    object, not its context.
    """
    x, y, w, h = mask_bbox(mask)
    if w == 0:
        raise ValueError("cannot crop an empty mask")
    pad = int(round(max(w, h) * pad_fraction))
    x0, y0 = max(0, x - pad), max(0, y - pad)
    x1, y1 = min(rgb.shape[1], x + w + pad), min(rgb.shape[0], y + h + pad)
    crop = np.empty((y1 - y0, x1 - x0, 3), dtype=np.uint8)
    crop[:] = NEUTRAL_RGB
    sub = mask[y0:y1, x0:x1]
    crop[sub] = rgb[y0:y1, x0:x1][sub]
    return crop
