"""A validation set carved out of the training labels, by capture or episode, never frame by frame.

Thresholds and early stopping need judged frames the detector did not train on. When the
validation split holds none (a studio that labeled one folder), training holds out a share of its
labeled frames instead. Neighbouring frames of one capture are near copies, so holding out single
frames would validate on frames the detector has all but seen; whole captures are held out, and
when the labels come from a single capture, whole contiguous episodes (blocks of its timeline).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from bugdet.detect.data import LabeledFrame
from bugdet.store.frames import FrameRow

#: Share of the labeled frames held out (at least one group, and never every group).
HOLDOUT_FRACTION = 0.25
#: A single capture is cut into this many contiguous episodes to hold some out.
EPISODES = 5


@dataclass
class Holdout:
    train: list[LabeledFrame]
    val: list[LabeledFrame]
    held_groups: list[str]
    excluded_frame_ids: set[int]  # every frame of a held-out group: no objective target or "no bug" frame either
    unit: str                     # "capture" or "episode"

    def describe(self, split: str) -> str:
        bugs = sum(f.is_bug for f in self.val)
        return (f"validation split {split!r} holds no labels or ground truth: holding out {len(self.val)} labeled frames "
                f"({bugs} with bugs) by {self.unit} ({', '.join(self.held_groups)}) for thresholds and early stopping")


def group_frames(rows: Sequence[FrameRow]) -> dict[str, list[FrameRow]]:
    """Labeled frames grouped by capture, or by contiguous episode when they all share one capture."""
    by_capture: dict[int, list[FrameRow]] = defaultdict(list)
    for r in rows:
        by_capture[r.source_id].append(r)
    if len(by_capture) >= 2:
        return {f"capture {sid}": members for sid, members in sorted(by_capture.items())}
    ordered = sorted(rows, key=lambda r: (r.source_index, r.id))
    blocks = [b for b in np.array_split(np.arange(len(ordered)), min(EPISODES, len(ordered))) if len(b)]
    return {f"episode {k + 1}/{len(blocks)}": [ordered[i] for i in block] for k, block in enumerate(blocks)}


def hold_out(labeled: Sequence[LabeledFrame], rows: Sequence[FrameRow], all_rows: Sequence[FrameRow],
             seed: int = 0) -> Holdout | None:
    """Split ``labeled`` (train-split labeled frames; ``rows`` their frame rows) into train and
    validation by whole groups. ``all_rows`` are the split's frames: an episode's unlabeled frames
    between its first and last labeled frame are excluded with it. None when there are too few
    groups to hold one out while keeping a bug frame of every type in training."""
    by_id = {f.frame_id: f for f in labeled}
    groups = group_frames([r for r in rows if r.id in by_id])
    if len(groups) < 2:
        return None
    unit = "capture" if next(iter(groups)).startswith("capture") else "episode"
    n_types = len(labeled[0].labels) if labeled else 0

    def bug_counts(frames: Sequence[LabeledFrame]) -> np.ndarray:
        return np.sum([f.labels * f.known for f in frames], axis=0) if frames else np.zeros(n_types)

    total_bugs = bug_counts(labeled)
    target = max(1, int(round(HOLDOUT_FRACTION * len(labeled))))
    order = list(groups)
    np.random.default_rng(seed).shuffle(order)
    held: list[str] = []
    held_frames: list[LabeledFrame] = []
    for name in order:
        if len(held) == len(groups) - 1 or len(held_frames) >= target:
            break
        frames = [by_id[r.id] for r in groups[name]]
        remaining = total_bugs - bug_counts(held_frames) - bug_counts(frames)
        if np.any((total_bugs > 0) & (remaining < 1)):
            continue  # training would lose its last bug frame of a type
        held.append(name)
        held_frames.extend(frames)
    if not held:
        return None
    held_ids = {r.id for name in held for r in groups[name]}
    excluded = set(held_ids)
    if unit == "capture":
        captures = {r.source_id for name in held for r in groups[name]}
        excluded |= {r.id for r in all_rows if r.source_id in captures}
    else:
        for name in held:
            lo = min(r.source_index for r in groups[name])
            hi = max(r.source_index for r in groups[name])
            sid = groups[name][0].source_id
            excluded |= {r.id for r in all_rows if r.source_id == sid and lo <= r.source_index <= hi}
    return Holdout(
        train=[f for f in labeled if f.frame_id not in held_ids],
        val=[f for f in labeled if f.frame_id in held_ids],
        held_groups=held, excluded_frame_ids=excluded, unit=unit,
    )
