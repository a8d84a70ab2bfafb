"""The end-to-end demo: every pipeline stage that exists, run on a capture the demo makes itself.

It is the README's main job and the smoke test a studio engineer runs first, so it uses only
what ships with bugdet (no weights, no downloads) and leaves a project directory to look at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from bugdet.ingest.ingester import IngestReport, ingest
from bugdet.progress import NullProgress, Progress
from bugdet.project import Project


@dataclass
class DemoResult:
    project: Project
    steps: list[str] = field(default_factory=list)


def _synthetic_clip(path: Path, frames: int = 90, size: tuple[int, int] = (320, 240)) -> Path:
    """A short clip with moving shapes, standing in for gameplay until a capture source exists."""
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (width, height))
    rng = np.random.default_rng(0)
    ground = rng.integers(40, 90, size=(height, width, 3), dtype=np.uint8)
    for i in range(frames):
        frame = ground.copy()
        cv2.rectangle(frame, (0, 0), (width, height // 3), (235, 206, 135), -1)
        cv2.circle(frame, (20 + 3 * i % width, height // 2), 18, (40, 120, 30), -1)
        writer.write(frame)
    writer.release()
    return path


def run_demo(root: Path, progress: Progress | None = None) -> DemoResult:
    progress = progress or NullProgress()
    project = Project.open(root, create=True)
    result = DemoResult(project=project)
    captures = project.stage_dir("captures")
    clip = captures / "demo.mp4"
    if not clip.exists():
        _synthetic_clip(clip)
    report: IngestReport = ingest(project, [clip], progress=progress)
    result.steps.append(f"ingest: {report.frames_added} new frames from {clip.name}")
    return result
