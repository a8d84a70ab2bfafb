"""Exemplars read from a project: its labeled bug frames of the train split, with clean neighbours.

Only train-split frames are read (see :func:`bugdet.store.frames.training_frames`), less the
frames a caller holds out for validation: a labeled bug frame of the validation or test split
never becomes a paste source, or the detector would be judged on frames it was shown.

A bug frame's clean references are the frames of the same capture nearest in time that no
standing label (and no ground truth) marks as a bug of any type: they show the same scene
without the bug, which is what the negative must contain. A capture with none (a folder of
unrelated screenshots) borrows good frames of other captures, the labeled ones first.

:func:`load_exemplars` reads the project's labels; :func:`exemplars_from_labels` takes the bug
frames and the frames that may serve as references explicitly (a benchmark's simulated tester).
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from typing import Iterable, Mapping, Sequence

import numpy as np

from bugdet.augment.exemplar import BugExemplar, ExemplarParams, make_exemplar
from bugdet.augment.exemplar_region import find_region
from bugdet.imageio import read_rgb
from bugdet.project import Project
from bugdet.store.frames import FrameRow, training_frames
from bugdet.store.labels import GOOD, current_label_rows

log = logging.getLogger("bugdet.augment")

#: Same-capture frames tried per exemplar, per wanted reference (some turn out to show the bug too).
CANDIDATES_PER_REFERENCE = 2


def labeled_bug_boxes(project: Project, frame_ids: Iterable[int]) -> tuple[dict[int, dict[str, list | None]], set[int]]:
    """Standing labels of ``frame_ids``: ``{frame: {bug_type: box or None}}`` for bug labels, and
    the frames labeled good."""
    wanted = set(frame_ids)
    conn = project.connect()
    try:
        rows = current_label_rows(conn)
    finally:
        conn.close()
    bugs: dict[int, dict[str, list | None]] = defaultdict(dict)
    good: set[int] = set()
    for r in rows:
        if r["frame_id"] not in wanted or r["label"] != 1:
            continue
        if r["bug_type"] == GOOD:
            good.add(r["frame_id"])
        else:
            bugs[r["frame_id"]][r["bug_type"]] = json.loads(r["box"]) if r["box"] else None
    return dict(bugs), good - set(bugs)


def _nearest_in_capture(row: FrameRow, capture: Sequence[FrameRow], good: set[int], n: int) -> list[FrameRow]:
    return sorted(capture, key=lambda c: (abs(c.timestamp - row.timestamp), abs(c.source_index - row.source_index),
                                          c.id not in good, c.id))[:n]


def _spread(frames: Sequence[FrameRow], n: int) -> list[FrameRow]:
    if len(frames) <= n:
        return list(frames)
    return [frames[i] for i in np.linspace(0, len(frames) - 1, n).round().astype(int)]


def load_exemplars(
    project: Project,
    bug_types: Sequence[str],
    *,
    exclude_ids: Iterable[int] = (),
    params: ExemplarParams | None = None,
) -> dict[str, list[BugExemplar]]:
    """The exemplars of each bug type that has labeled bug frames in the train split (types
    without any are absent), ordered by frame id."""
    excluded = set(exclude_ids)
    conn = project.connect()
    try:
        rows = [r for r in training_frames(conn, project.config.detect.train_split) if r.id not in excluded]
    finally:
        conn.close()
    bugs, good = labeled_bug_boxes(project, (r.id for r in rows))
    wanted = set(bug_types)
    chosen = {frame: {t: box for t, box in types.items() if t in wanted} for frame, types in bugs.items()}
    return exemplars_from_labels(project, rows, chosen, good, params, not_clean=set(bugs))


def exemplars_from_labels(
    project: Project,
    rows: Sequence[FrameRow],
    bugs: Mapping[int, Mapping[str, Sequence[int] | None]],
    good: Iterable[int] = (),
    params: ExemplarParams | None = None,
    *,
    not_clean: Iterable[int] = (),
    use_ground_truth: bool = True,
) -> dict[str, list[BugExemplar]]:
    """Exemplars of the bug frames ``bugs`` (``{frame id: {bug type: box or None}}``) among ``rows``,
    the frames that may serve at all (bug frames and clean references alike). A reference is a
    frame of ``rows`` that is no bug frame, not in ``not_clean`` and, with ``use_ground_truth``, has
    no bug in its capture's ground truth (a benchmark simulating a studio without ground truth
    turns that off); ``good`` (frames labeled good) are preferred among equally near ones."""
    p = params or ExemplarParams()
    good = set(good)
    excluded = set(bugs) | set(not_clean)
    clean = [r for r in rows if r.id not in excluded and not (use_ground_truth and r.is_bug())]
    by_capture: dict[int, list[FrameRow]] = defaultdict(list)
    for r in clean:
        by_capture[r.source_id].append(r)
    # other captures' good frames for a capture with no clean frame: labeled good first
    borrowed = _spread([r for r in clean if r.id in good] or clean, CANDIDATES_PER_REFERENCE * p.references)
    cache: dict[int, np.ndarray] = {}

    def image(r: FrameRow) -> np.ndarray:
        if r.id not in cache:
            cache[r.id] = read_rgb(project.root / r.path)
        return cache[r.id]

    out: dict[str, list[BugExemplar]] = defaultdict(list)
    dropped: Counter[str] = Counter()
    for row in sorted(rows, key=lambda r: r.id):
        for bug_type, box in sorted(bugs.get(row.id, {}).items()):
            bug_rgb = image(row)
            near = _nearest_in_capture(row, by_capture.get(row.source_id, []), good,
                                       CANDIDATES_PER_REFERENCE * p.references)
            exemplar = _exemplar(bug_type, row, bug_rgb, box, [(r.id, image(r)) for r in near], p)
            if exemplar is None:
                others = [r for r in borrowed if r.source_id != row.source_id] or borrowed
                exemplar = _exemplar(bug_type, row, bug_rgb, box, [], p, [(r.id, image(r)) for r in others])
            if exemplar is None:
                dropped[bug_type] += 1
                continue
            out[bug_type].append(exemplar)
    for bug_type, n in sorted(dropped.items()):
        log.warning("%s: %d labeled bug frame(s) not used as exemplars: no clean frame differs from them "
                    "inside their bug region", bug_type, n)
    for bug_type, found in sorted(out.items()):
        origins = Counter(e.origin for e in found)
        log.info("%s: %d exemplars (%s)", bug_type, len(found), ", ".join(f"{k}: {v}" for k, v in sorted(origins.items())))
    return dict(out)


def _exemplar(
    bug_type: str, row: FrameRow, bug_rgb: np.ndarray, box: Sequence[int] | None,
    same_capture: list[tuple[int, np.ndarray]], p: ExemplarParams,
    other: list[tuple[int, np.ndarray]] | None = None,
) -> BugExemplar | None:
    """The exemplar of one bug frame: its region from the box, else from the first same-capture
    frame it differs from plausibly, else the whole frame; the clean content from ``same_capture``
    (or ``other`` when given)."""
    region = find_region(bug_rgb, box, None, p.region)
    if region.origin == "whole":
        for _, clean in same_capture:
            candidate = find_region(bug_rgb, None, clean, p.region)
            if candidate.origin == "difference":
                region = candidate
                break
    return make_exemplar(bug_type, bug_rgb, region, other if other is not None else same_capture, p, frame_id=row.id)
