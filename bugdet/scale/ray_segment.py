"""``bugdet segment`` on Ray: the in-process per-frame step, run by a pool of actors.

:func:`bugdet.segment.run.segment_project` decides which frames need which masks (``todo``) and,
with ``scale.backend: ray`` and no caller-supplied predictor, hands that list here. Each actor
builds the automatic mask generator once (:func:`~bugdet.segment.run.build_generator`) and runs
the very same per-frame function as the in-process loop (``segment_frame``: read the frame, engine
masks from the ID map, point priors, automatic masks), so a frame's masks do not depend on where
it ran. The driver commits results every ``segment.commit_every`` frames with the in-process
``commit_masks``: one writer, same transactions, same resumability.

Actors read frames from the project directory themselves (on a multi-node cluster it must be on
storage every node mounts at the same path); only mask records (run-length encoded) come back.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from bugdet.progress import Progress
from bugdet.project import Project
from bugdet.scale.ray_runtime import PayloadActor, map_on_actors
from bugdet.segment.run import SegmentReport, commit_masks, segment_frame, build_generator
from bugdet.store.frames import FrameRow

WorkItem = tuple[FrameRow, bool, bool]   # frame, needs automatic masks, needs engine masks


class SegmentActor(PayloadActor):
    """Holds one mask generator; a work item is one frame, the result its mask sets and problems."""

    def __init__(self, project: Project, name: str, auto_store: str | None, needs_generator: bool,
                 driver_cwd: str | None = None, threads: int = 1) -> None:
        super().__init__(lambda: build_generator(project, name) if needs_generator else None, driver_cwd, threads)
        self.project = project
        self.name = name
        self.auto_store = auto_store
        self._conn: sqlite3.Connection | None = None

    def process(self, item: WorkItem) -> tuple[list[Any], list[str]]:
        frame, needs_auto, needs_engine = item
        if self._conn is None:  # read-only use: frame legends for engine masks
            self._conn = self.project.connect()
        report = SegmentReport(backend=self.name)
        results = segment_frame(self.project, self._conn, frame, self.model if needs_auto else None,
                                 needs_engine, self.auto_store, report)
        return results, report.problems


def segment_on_ray(project: Project, conn: sqlite3.Connection, todo: list[WorkItem], name: str,
                   auto_store: str | None, report: SegmentReport, progress: Progress) -> SegmentReport:
    """Segment ``todo`` on Ray actors, committing through ``conn`` as the in-process loop does."""
    cfg = project.config.scale
    needs_generator = any(needs_auto for _, needs_auto, _ in todo)
    actor_kwargs = {"project": project, "name": name, "auto_store": auto_store, "needs_generator": needs_generator,
                    "threads": max(1, int(cfg.cpus_per_actor))}
    progress.start(f"segment ({name}, ray)", len(todo))
    pending: list[Any] = []
    results = map_on_actors(cfg, todo, SegmentActor, actor_kwargs, model_uses_gpu=name == "sam",
                            items_per_call=cfg.frames_per_batch)
    for frame_results, problems in results:
        pending.extend(frame_results)
        report.problems.extend(problems)
        report.frames_segmented += 1
        if len(pending) >= project.config.segment.commit_every:
            commit_masks(conn, pending, report)
        progress.advance()
    commit_masks(conn, pending, report)
    return report
