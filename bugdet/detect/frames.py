"""Load a project's frames as :class:`LabeledFrame` for training, validation and evaluation.

Two kinds of judgement exist: a tester's labels (the ``frame_labels`` table, a handful of frames)
and ground truth carried in by capture sessions (the playtest world knows every bug exactly).
Training uses the labels; validation and benchmarks may use ground truth where a capture has it.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from bugdet.detect.data import LabeledFrame, resize_rgb
from bugdet.imageio import read_rgb
from bugdet.project import Project
from bugdet.store.frames import FrameRow, iter_frames
from bugdet.store.labels import current_labels, label_vector


def truth_vector(frame: FrameRow, bug_types: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(labels, known) from a frame's ground truth: a type the capture did not record is unknown."""
    labels = np.zeros(len(bug_types), np.float32)
    known = np.zeros(len(bug_types), bool)
    for i, t in enumerate(bug_types):
        if frame.ground_truth is not None and t in frame.ground_truth:
            labels[i] = float(bool(frame.ground_truth[t].get("present")))
            known[i] = True
    return labels, known


def load_images(project: Project, frames: Iterable[FrameRow], size: tuple[int, int]) -> list[np.ndarray]:
    return [resize_rgb(read_rgb(project.root / f.path), size) for f in frames]


def frames_with_ground_truth(
    project: Project, bug_types: Sequence[str], size: tuple[int, int], split: str | None = None
) -> list[LabeledFrame]:
    rows = [f for f in iter_frames(project.connect(), split=split) if f.ground_truth is not None]
    images = load_images(project, rows, size)
    out = []
    for f, rgb in zip(rows, images):
        labels, known = truth_vector(f, bug_types)
        out.append(LabeledFrame(rgb=rgb, labels=labels, known=known, frame_id=f.id))
    return out


def frames_with_labels(
    project: Project, bug_types: Sequence[str], size: tuple[int, int], split: str | None = None
) -> list[LabeledFrame]:
    """Frames a tester judged (latest judgement per type), optionally restricted to a split."""
    conn = project.connect()
    judged = current_labels(conn)
    rows = [f for f in iter_frames(conn, split=split) if f.id in judged]
    images = load_images(project, rows, size)
    out = []
    for f, rgb in zip(rows, images):
        labels, known = label_vector(judged[f.id], bug_types)
        if known.any():
            out.append(LabeledFrame(rgb=rgb, labels=labels, known=known, frame_id=f.id))
    return out
