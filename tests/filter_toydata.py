"""Small real projects for the filtering-stage tests: OpenCV-drawn frames with coloured shapes,
stored through the frame manifest, and one mask per shape through the masks table."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from bugdet.imageio import pixel_sha256, write_rgb
from bugdet.project import Project
from bugdet.segment.masks import MaskRecord, ensure_masks_schema, insert_masks
from bugdet.store.database import transaction
from bugdet.store.frames import insert_frame

COLOURS = {
    "red": (210, 40, 40),
    "green": (50, 160, 50),
    "blue": (40, 70, 210),
    "yellow": (230, 210, 50),
    "magenta": (210, 40, 210),
}
BACKGROUND = (90, 90, 90)


def new_project(root: Path, **overrides: object) -> Project:
    Project.init(root)
    return Project.open(root, [f"{k}={v}" for k, v in overrides.items()])


def _source(conn, name: str) -> int:
    now = time.time()
    cur = conn.execute(
        "INSERT INTO sources(kind, uri, fingerprint, status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        ("folder", name, f"{name}-{time.time_ns()}", "complete", now, now),
    )
    return cur.lastrowid


def draw_frame(shapes: Sequence[tuple[str, str]], rng: np.random.Generator, size=(96, 72)) -> tuple[np.ndarray, list[np.ndarray]]:
    """A frame with one shape per (colour, kind) at a random place; returns the image and the shape masks."""
    w, h = size
    rgb = np.empty((h, w, 3), np.uint8)
    rgb[:] = BACKGROUND
    masks = []
    for i, (colour, kind) in enumerate(shapes):
        layer = np.zeros((h, w), np.uint8)
        cx = int(rng.integers(14 + 30 * (i % 2), 34 + 30 * (i % 2)))
        cy = int(rng.integers(14, h - 14))
        r = int(rng.integers(7, 12))
        if kind == "circle":
            cv2.circle(layer, (cx, cy), r, 255, -1)
        else:
            cv2.rectangle(layer, (cx - r, cy - r // 2), (cx + r, cy + r // 2), 255, -1)
        mask = layer > 0
        for m in masks:  # later shapes occlude earlier ones
            m &= ~mask
        shade = np.clip(np.asarray(COLOURS[colour]) + rng.integers(-12, 13, 3), 0, 255)
        rgb[mask] = shade.astype(np.uint8)
        masks.append(mask)
    return rgb, masks


def add_frames(project: Project, frames: Sequence[Sequence[tuple[str, str]]], seed: int = 0,
               ground_truth: Sequence[dict | None] | None = None) -> list[tuple[int, list[int], list[str]]]:
    """Insert frames (each a list of (colour, kind) shapes) and their masks.

    Returns per frame (frame_id, mask_ids, mask colours). Each mask's ``label`` is its colour, the
    truth the tests compare against.
    """
    rng = np.random.default_rng(seed)
    out = []
    conn = project.connect()
    try:
        ensure_masks_schema(conn)
        with transaction(conn):
            source = _source(conn, f"toy-{seed}")
        for index, shapes in enumerate(frames):
            rgb, masks = draw_frame(shapes, rng)
            sha = pixel_sha256(rgb)
            rel = Path("frames") / sha[:2] / f"{sha}.png"
            write_rgb(project.root / rel, rgb)
            gt = ground_truth[index] if ground_truth is not None else None
            with transaction(conn):
                insert_frame(conn, {"sha256": sha, "source_id": source, "source_index": index, "timestamp": index / 30,
                                    "path": rel.as_posix(), "width": rgb.shape[1], "height": rgb.shape[0],
                                    "ground_truth": json.dumps(gt) if gt is not None else None})
                frame_id = conn.execute("SELECT id FROM frames WHERE sha256 = ?", (sha,)).fetchone()[0]
                records = [MaskRecord.from_mask(frame_id, "toy", m, 1.0, label=shapes[i][0])
                           for i, m in enumerate(masks) if m.any()]
                ids = insert_masks(conn, records)
            out.append((frame_id, ids, [r.label for r in records]))
    finally:
        conn.close()
    return out
