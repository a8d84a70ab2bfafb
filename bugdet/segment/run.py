"""``bugdet segment`` as a library call: segment every not-yet-segmented frame of a project.

Incremental and idempotent: a frame is skipped when ``segment_frames`` already records it for
the stored backend (``grid`` for opencv, ``sam``, ``engine``), and each frame's masks are
written together with that record in one transaction. With ``redo`` a frame's previous masks
of that backend are replaced, atomically, instead of being added to.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import cv2
import numpy as np

from bugdet.errors import ConfigError, InputError
from bugdet.imageio import read_ids, read_rgb
from bugdet.progress import NullProgress, Progress
from bugdet.project import Project
from bugdet.segment.automatic import AutomaticMaskGenerator
from bugdet.segment.base import Predictor
from bugdet.segment.engine import engine_candidates, frame_legend, interior_points
from bugdet.segment.errors import EmptyFrameError, NoMaskError
from bugdet.segment.factory import AUTOMATIC_STORE_NAME, BuildContext, build_predictor
from bugdet.segment.masks import MaskRecord
from bugdet.segment.store import candidate_records, ensure_segment_schema, replace_frame_masks, segmented_frame_ids
from bugdet.store.database import transaction
from bugdet.store.frames import FrameRow, iter_frames, sample_evenly

ENGINE_STORE_NAME = "engine"


@dataclass
class SegmentReport:
    backend: str
    frames_considered: int = 0
    frames_skipped: int = 0
    frames_segmented: int = 0
    masks_added: int = 0
    engine_masks_added: int = 0
    statuses: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "frames_considered": self.frames_considered,
            "frames_skipped": self.frames_skipped,
            "frames_segmented": self.frames_segmented,
            "masks_added": self.masks_added,
            "engine_masks_added": self.engine_masks_added,
            "statuses": dict(self.statuses),
            "problems": list(self.problems),
            "seconds": round(self.seconds, 3),
        }


#: Runs :func:`segment_project`'s per-frame work somewhere else and commits it, e.g. on Ray actors:
#: ``(project, conn, todo, backend name, automatic store name, report, progress) -> report``, where
#: ``todo`` holds ``(frame, needs automatic masks, needs engine masks)``.
RemoteSegmenter = Callable[[Project, sqlite3.Connection, list, str, "str | None", SegmentReport, Progress], SegmentReport]


@dataclass
class _FrameResult:
    frame_id: int
    backend: str
    records: list[MaskRecord]
    status: str
    message: str = ""


def _load_ids(project: Project, frame: FrameRow, shape: tuple[int, int]) -> np.ndarray | None:
    rel = frame.aux.get("ids")
    if not rel:
        return None
    ids = read_ids(project.root / rel)
    if ids.shape[:2] != shape:
        # The ID map was captured at another resolution than the stored frame: nearest keeps IDs exact.
        ids = cv2.resize(ids.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST).astype(np.int32)
    return ids


def segment_project(
    project: Project,
    *,
    backend: str | None = None,
    redo: bool = False,
    split: str | None = None,
    limit: int | None = None,
    sample: int | None = None,
    frame_ids: Iterable[int] | None = None,
    predictor: Predictor | None = None,
    progress: Progress | None = None,
    remote: RemoteSegmenter | None = None,
) -> SegmentReport:
    """Segment the project's frames that the chosen backend has not segmented yet.

    ``frame_ids`` restricts the work to those frames: a fixed set, so calling again segments
    nothing new (``limit`` instead takes the next frames not yet done, growing the set each call).
    ``sample`` keeps ``sample`` frames spread evenly over captures and time (a fixed set too:
    the same ``sample`` again adds nothing, a larger one adds frames between those done).
    ``predictor`` overrides the configured backend's predictor (the review app keeps one warm).
    ``remote`` runs the per-frame work elsewhere (the Ray actors of ``bugdet.scale``): this stage
    does not import the backends that build on it; :func:`bugdet.scale.dispatch.segment_project`
    passes the configured one.
    Unreadable or uniform frames are recorded with their status and reported, never fatal.
    """
    started = time.perf_counter()
    cfg = project.config.segment
    name = backend or cfg.backend
    progress = progress or NullProgress()
    report = SegmentReport(backend=name)
    conn = project.connect()
    try:
        ensure_segment_schema(conn)
        auto_store = None if name == ENGINE_STORE_NAME else AUTOMATIC_STORE_NAME.get(predictor.name if predictor else name, name)
        want_engine = name == ENGINE_STORE_NAME or cfg.engine.enabled
        done_auto = set() if redo or auto_store is None else segmented_frame_ids(conn, auto_store)
        done_engine = set() if redo else segmented_frame_ids(conn, ENGINE_STORE_NAME)

        frames = list(iter_frames(conn, split=split))
        if frame_ids is not None:
            wanted = {int(i) for i in frame_ids}
            frames = [f for f in frames if f.id in wanted]
        if sample is not None:
            frames = sample_evenly(frames, sample)
        report.frames_considered = len(frames)
        todo = []
        for frame in frames:
            needs_auto = auto_store is not None and frame.id not in done_auto
            needs_engine = want_engine and bool(frame.aux.get("ids")) and frame.id not in done_engine
            if needs_auto or needs_engine:
                todo.append((frame, needs_auto, needs_engine))
        report.frames_skipped = len(frames) - len(todo)
        if limit is not None:
            todo = todo[:limit]
        if not todo:
            return report
        if predictor is None and remote is not None:
            return remote(project, conn, todo, name, auto_store, report, progress)
        if predictor is None and project.config.scale.backend != "inprocess":
            raise ConfigError(f"scale.backend is {project.config.scale.backend}: segment through "
                              "bugdet.scale.dispatch.segment_project (as the bugdet command does)")

        generator = None
        if any(needs_auto for _, needs_auto, _ in todo):
            generator = build_generator(project, name, predictor)

        progress.start(f"segment ({name})", len(todo))
        pending: list[_FrameResult] = []
        for frame, needs_auto, needs_engine in todo:
            pending.extend(segment_frame(project, conn, frame, generator if needs_auto else None, needs_engine, auto_store, report))
            report.frames_segmented += 1
            if len(pending) >= cfg.commit_every:
                commit_masks(conn, pending, report)
            progress.advance()
        commit_masks(conn, pending, report)
    finally:
        conn.close()
        report.seconds = time.perf_counter() - started
    return report


def build_generator(project: Project, name: str, predictor: Predictor | None = None) -> AutomaticMaskGenerator:
    """Automatic mode around ``predictor``, or around a new one of backend ``name`` (SAM on the
    configured device). Shared with the Ray actors of :mod:`bugdet.scale.ray_segment`."""
    cfg = project.config.segment
    if predictor is None:
        from bugdet.device import resolve_torch_device

        device = resolve_torch_device(project.config.device) if name == "sam" else "cpu"
        predictor = build_predictor(cfg, name, BuildContext(root=project.root, device=device))
    batch = cfg.sam.points_per_batch if predictor.name == "sam" else 1024
    return AutomaticMaskGenerator(predictor, cfg, points_per_batch=batch)


def segment_frame(
    project: Project,
    conn: sqlite3.Connection,
    frame: FrameRow,
    generator: AutomaticMaskGenerator | None,
    needs_engine: bool,
    auto_store: str | None,
    report: SegmentReport,
) -> list[_FrameResult]:
    cfg = project.config.segment
    stores = ([auto_store] if generator is not None and auto_store else []) + ([ENGINE_STORE_NAME] if needs_engine else [])
    try:
        rgb = read_rgb(project.root / frame.path)
        ids = _load_ids(project, frame, rgb.shape[:2]) if (needs_engine or cfg.engine.point_priors) else None
    except InputError as exc:
        report.problems.append(f"frame {frame.id}: {exc}")
        return [_FrameResult(frame.id, store, [], "failed", str(exc)) for store in stores]

    results: list[_FrameResult] = []
    frame_area = rgb.shape[0] * rgb.shape[1]
    engine = []
    if ids is not None:
        min_area = max(1, int(cfg.min_area_fraction * frame_area))
        engine = engine_candidates(ids, frame_legend(conn, frame), min_area=min_area)
    if needs_engine:
        records = candidate_records(frame.id, ENGINE_STORE_NAME, engine)
        results.append(_FrameResult(frame.id, ENGINE_STORE_NAME, records, "ok" if records else "no_masks"))
    if generator is not None and auto_store:
        extra = interior_points(engine) if cfg.engine.point_priors and engine else None
        try:
            candidates = generator.generate(rgb, extra_points=extra)
            records = candidate_records(frame.id, auto_store, candidates, {"model": generator.predictor.name})
            results.append(_FrameResult(frame.id, auto_store, records, "ok"))
        except EmptyFrameError as exc:
            results.append(_FrameResult(frame.id, auto_store, [], "empty", str(exc)))
        except NoMaskError as exc:
            results.append(_FrameResult(frame.id, auto_store, [], "no_masks", str(exc)))
    return results


def commit_masks(conn: sqlite3.Connection, pending: list[_FrameResult], report: SegmentReport) -> None:
    if not pending:
        return
    with transaction(conn):
        for result in pending:
            replace_frame_masks(conn, result.frame_id, result.backend, result.records, result.status, result.message)
    for result in pending:
        report.statuses[f"{result.backend}:{result.status}"] += 1
        if result.backend == ENGINE_STORE_NAME:
            report.engine_masks_added += len(result.records)
        else:
            report.masks_added += len(result.records)
    pending.clear()
