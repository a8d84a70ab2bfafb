"""Engine masks: when a capture carries an object-ID map, the engine already knows every object.

Each connected component of each ID becomes a mask labelled with the object's category (an
object split by an occluder yields one mask per visible part, as a segmenter would see it).
They are exact, cost no inference, and double as priors for the automatic grid: one point
inside each object makes sure objects smaller than the grid spacing get prompted.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import cv2
import numpy as np

from bugdet.segment.base import Candidate
from bugdet.store.frames import FrameRow


def frame_legend(conn: sqlite3.Connection, frame: FrameRow) -> dict[int, dict[str, Any]]:
    """id -> {name, category} for a frame: its own ``aux["objects"]``, else its capture session's."""
    raw = frame.aux.get("objects")
    if not raw:
        row = conn.execute("SELECT meta FROM sources WHERE id = ?", (frame.source_id,)).fetchone()
        meta = json.loads(row["meta"] or "{}") if row else {}
        if isinstance(meta, dict):
            session = meta.get("session") if isinstance(meta.get("session"), dict) else {}
            raw = meta.get("objects") or session.get("objects")
    legend: dict[int, dict[str, Any]] = {}
    for key, value in (raw or {}).items():
        try:
            legend[int(key)] = value if isinstance(value, dict) else {"name": str(value)}
        except (TypeError, ValueError):
            continue
    return legend


def object_label(legend: dict[int, dict[str, Any]], object_id: int) -> str:
    entry = legend.get(object_id, {})
    return str(entry.get("category") or entry.get("name") or f"id{object_id}")


def engine_candidates(ids: np.ndarray, legend: dict[int, dict[str, Any]] | None = None, min_area: int = 1) -> list[Candidate]:
    """One candidate per connected component (8-connected) of each non-zero ID, largest first."""
    legend = legend or {}
    out: list[Candidate] = []
    for object_id in np.unique(ids):
        if object_id == 0:
            continue  # background / sky
        count, labels, stats, _ = cv2.connectedComponentsWithStats((ids == object_id).astype(np.uint8), connectivity=8)
        for component in range(1, count):
            if stats[component, cv2.CC_STAT_AREA] < min_area:
                continue
            entry = legend.get(int(object_id), {})
            out.append(
                Candidate(
                    mask=labels == component,
                    score=1.0,
                    label=object_label(legend, int(object_id)),
                    meta={"object_id": int(object_id), "name": entry.get("name")},
                )
            )
    out.sort(key=lambda c: -c.area)
    return out


def interior_points(candidates: list[Candidate]) -> np.ndarray:
    """For each mask, the pixel farthest from its outline (x, y): a safe point prompt inside it."""
    points = []
    for c in candidates:
        dist = cv2.distanceTransform(np.pad(c.mask, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
        y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
        points.append((float(x), float(y)))
    return np.asarray(points, dtype=np.float64).reshape(-1, 2)
