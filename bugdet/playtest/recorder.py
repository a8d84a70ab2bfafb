"""Writes a playtest session in the capture-session format (``bugdet ingest`` reads it).

Per frame: the image, the object-ID map (16-bit PNG), the visible-viewmodel mask of the correct
render, and for each bug type the session records a :class:`BugTruth` (present, severity and,
when present, a mask PNG). Optionally an MP4 of the frames for people to watch.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Sequence

import cv2

from bugdet.errors import InputError
from bugdet.ingest.session_format import BugTruth, FrameEntry, SessionInfo, SessionWriter
from bugdet.playtest.session import PlaytestSession, PlaytestSpec
from bugdet.progress import NullProgress, Progress


def session_id(spec: PlaytestSpec) -> str:
    return f"playtest-{spec.scene}-{spec.seed}"


def record(spec: PlaytestSpec, out_dir: Path, jpeg: bool = False, mp4: bool = False, progress: Progress | None = None) -> SessionInfo:
    """Generate ``spec`` into ``out_dir``; returns the final session info."""
    progress = progress or NullProgress()
    session = PlaytestSession(spec)
    info = SessionInfo(
        session_id=session_id(spec), seed=spec.seed, scene=spec.scene, width=spec.width,
        height=spec.height, fps=spec.fps, bug_types=list(spec.bugs), prevalence=spec.prevalence, split=session.split,
        objects=session.objects, generator=session.generator_info(),
    )
    ext = ".jpg" if jpeg else ".png"
    video = None
    with SessionWriter(Path(out_dir), info, image_ext=ext) as writer:
        if mp4:
            path = Path(out_dir) / "session.mp4"
            video = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), spec.fps, (spec.width, spec.height))
            if not video.isOpened():
                raise InputError(f"{path}: cannot open an MP4 writer (OpenCV built without mp4v?)")
        progress.start(f"recording {spec.scene} seed {spec.seed}", spec.frames)
        bug_frames = 0
        try:
            for frame in session.frames():
                bug_frames += any(t.present for t in frame.truths.values())
                bgr = frame.rgb[..., ::-1]
                rel = writer.write_frame_image(frame.index, bgr)
                bugs = {}
                for name, truth in frame.truths.items():
                    mask_rel = writer.write_mask(frame.index, name, truth.mask) if truth.present and truth.mask is not None else None
                    bugs[name] = BugTruth(present=truth.present, severity=round(truth.severity, 6) if truth.present else 0.0, mask=mask_rel)
                writer.append(FrameEntry(
                    index=frame.index, time=frame.time, file=rel, scene=info.scene, pose=frame.pose, fov=round(session.fov, 4),
                    weapon=session.weapon, ids=writer.write_ids(frame.index, frame.ids),
                    weapon_mask=writer.write_mask(frame.index, "weapon", frame.weapon_mask), bugs=bugs, extra=frame.extra,
                ))
                if video is not None:
                    video.write(bgr)
                progress.advance()
        finally:
            if video is not None:
                video.release()
        # what the session delivered, next to what was asked (SessionInfo.prevalence)
        writer.info.generator["bug_frames"] = bug_frames
        writer.info.generator["achieved_prevalence"] = round(bug_frames / spec.frames, 6)
    return writer.info


def _record_quietly(spec: PlaytestSpec, out_dir: Path) -> int:
    record(spec, out_dir)
    return spec.frames


def record_many(jobs: Sequence[tuple[PlaytestSpec, Path]], workers: int = 1, progress: Progress | None = None) -> None:
    """Record several sessions, each in a fresh process, ``workers`` of them at a time.

    A fresh process per session because Panda3D keeps state across sessions in one process: a
    session recorded after another differs from the same session recorded alone in a few ground
    pixels (by up to 6 levels). With one process each, a session's bytes depend on its spec alone,
    whatever else is recorded and in which order; and the software renderer uses one core, so a
    benchmark recording two dozen sessions on a multi-core machine waits that much less.
    Progress counts frames.
    """
    progress = progress or NullProgress()
    jobs = list(jobs)
    if not jobs:
        return
    progress.start(f"recording {len(jobs)} sessions, {max(1, workers)} at a time", sum(spec.frames for spec, _ in jobs))
    # spawn: nothing (renderer, torch) is inherited; one task per child: every session starts clean
    with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=multiprocessing.get_context("spawn"),
                             max_tasks_per_child=1) as pool:
        pending = [pool.submit(_record_quietly, spec, out_dir) for spec, out_dir in jobs]
        for done in as_completed(pending):
            progress.advance(done.result())
