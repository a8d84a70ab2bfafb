"""Shared fixtures. Tests make their own small real data; nothing is downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

# No hub downloads, ever: open_clip / huggingface must fail fast instead of hanging on the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from bugdet.project import Project  # noqa: E402


def moving_frames(n: int, width: int = 160, height: int = 120, seed: int = 0) -> list[np.ndarray]:
    """RGB frames of a coloured disc moving over a textured background: every frame differs."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 60, size=(height, width, 3), dtype=np.uint8)
    frames = []
    for i in range(n):
        frame = background.copy()
        cx = 10 + (i * 3) % (width - 20)
        cv2.circle(frame, (cx, height // 2), 12, (255, 200, 0), -1)
        cv2.putText(frame, str(i), (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
        frames.append(frame)
    return frames


def write_video(path: Path, frames: list[np.ndarray], fps: float = 30.0) -> Path:
    height, width = frames[0].shape[:2]
    fourcc = "MJPG" if path.suffix == ".avi" else "mp4v"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write {path.suffix} here"
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project.init(tmp_path / "proj")


def record_fppc_session(seed: int, frames: int, size: tuple[int, int], prevalence: float = 0.2):
    """A real park session at 160x120 with FPPC at ``prevalence``, in memory: labeled frames at
    ``size``, clean frames with a visible weapon as objective targets, and paste sources cut from
    the engine's object IDs (every 8th clean frame, off the weapon)."""
    from bugdet.augment import SourceMask, TargetFrame
    from bugdet.detect.data import LabeledFrame, resize_rgb
    from bugdet.playtest.session import PlaytestSession, PlaytestSpec
    from bugdet.segment.engine import engine_candidates

    spec = PlaytestSpec(scene="park", seed=seed, frames=frames, width=160, height=120, prevalence=prevalence, bugs=("fppc",))
    labeled, targets, sources = [], [], []
    for f in PlaytestSession(spec).frames():
        bug = f.truths["fppc"].present
        labeled.append(LabeledFrame(resize_rgb(f.rgb, size), np.array([float(bug)], np.float32), np.array([True]), f.index))
        if not bug and f.weapon_mask.any():
            targets.append(TargetFrame(f.rgb, f.weapon_mask, f.index))
            if f.index % 8 == 0:
                for c in engine_candidates(f.ids, None, min_area=60):
                    m = c.mask & ~f.weapon_mask
                    ys, xs = np.nonzero(m)
                    if xs.size >= 60:
                        box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
                        sources.append(SourceMask(f.rgb[box].copy(), m[box].copy()))
    return labeled, targets, sources
