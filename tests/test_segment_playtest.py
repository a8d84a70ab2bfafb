"""Segmentation on real playtest-world frames (bugdet.playtest), checked against the engine's ID maps.

Two park and two indoor sessions of two frames each are recorded, ingested with ``bugdet ingest``'s
library call and segmented. The playtest renderer is deterministic per seed, so the numbers below
are reproducible; the thresholds sit between what the default backend measures on these frames
and what it measures without region grouping, so a regression in either fails.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bugdet.imageio import read_mask, read_rgb
from bugdet.ingest.ingester import ingest
from bugdet.playtest.recorder import record
from bugdet.playtest.session import PlaytestSpec
from bugdet.project import Project
from bugdet.segment.factory import build_predictor
from bugdet.segment.masks import iter_masks
from bugdet.segment.quality import mask_iou
from bugdet.segment.run import segment_project
from bugdet.segment.store import latest_role_mask, save_prompt_mask
from bugdet.store.frames import iter_frames

SESSIONS = [("park", 3), ("park", 11), ("indoor", 4), ("indoor", 12)]


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("playtest")
    paths = []
    for scene, seed in SESSIONS:
        record(PlaytestSpec(scene=scene, seed=seed, frames=2), root / f"{scene}-{seed}")
        paths.append(root / f"{scene}-{seed}")
    return paths


def segmented_project(root: Path, sessions: list[Path], overrides: list[str]) -> Project:
    project = Project.open(root, overrides, create=True)
    assert ingest(project, sessions).frames_added == 2 * len(SESSIONS)
    report = segment_project(project)
    assert report.statuses["grid:ok"] == 2 * len(SESSIONS) and report.statuses["engine:ok"] == 2 * len(SESSIONS)
    return project


def best_iou_per_scene(project: Project) -> dict[str, float]:
    """Mean over engine objects covering >= 0.5% of the frame of the best IoU of any grid mask."""
    conn = project.connect()
    try:
        found: dict[str, list[float]] = {}
        for frame in iter_frames(conn):
            grid = [m.decode() for m in iter_masks(conn, frame_ids=[frame.id], backend="grid")]
            for obj in iter_masks(conn, frame_ids=[frame.id], backend="engine"):
                if obj.area >= 0.005 * frame.width * frame.height:
                    truth = obj.decode()
                    found.setdefault(frame.scene.split("/")[0], []).append(max(mask_iou(truth, g) for g in grid))
        return {scene: float(np.mean(v)) for scene, v in found.items()}
    finally:
        conn.close()


def test_grid_finds_the_engine_objects(sessions: list[Path], tmp_path: Path):
    """Measured on these frames with 64 masks a frame: park 0.83, indoor 0.57; 0.61 and 0.13
    without region grouping (indoor walls, tiled floors and the multi-part weapon are not one
    colour). Dark, low-contrast corridors, where wall, ceiling and back wall differ by a few grey
    levels, keep indoor below park. The default cap (``segment.max_masks_per_frame`` 16, for CPU
    cost on user footage) keeps fewer objects per frame: 0.64 / 0.44 here, 0.81 / 0.48 at 32;
    the grouping itself is what this test checks, so both arms use the same generous cap."""
    cap = ["segment.max_masks_per_frame=64"]
    default = best_iou_per_scene(segmented_project(tmp_path / "default", sessions, cap))
    colour_only = best_iou_per_scene(
        segmented_project(tmp_path / "colour", sessions, cap + ["segment.opencv.hierarchy=false"])
    )
    assert default["park"] > 0.7 and default["indoor"] > 0.45, default
    assert default["park"] > colour_only["park"] + 0.1 and default["indoor"] > colour_only["indoor"] + 0.2


def test_weapon_box_prompt_matches_the_viewmodel_mask(sessions: list[Path], tmp_path: Path):
    """A tester's box around the weapon gives the viewmodel mask (measured IoU 0.65..1.0)."""
    project = Project.open(tmp_path / "p", create=True)
    ingest(project, sessions)
    predictor = build_predictor(project.config.segment)
    conn = project.connect()
    try:
        ious = []
        for frame in iter_frames(conn):
            truth = read_mask(project.root / frame.aux["weapon_mask"])
            ys, xs = np.nonzero(truth)
            predictor.set_image(read_rgb(project.root / frame.path))
            mask, score = predictor.predict(box=(xs.min() - 2, ys.min() - 2, xs.max() + 3, ys.max() + 3))
            ious.append(mask_iou(mask, truth))
            save_prompt_mask(conn, frame.id, mask, score, model=predictor.name, role="weapon")
        assert np.mean(ious) > 0.8 and min(ious) > 0.5, ious
        weapon = latest_role_mask(conn, "weapon")
        assert weapon is not None and weapon.frame_id == frame.id and np.array_equal(weapon.decode(), mask)
    finally:
        conn.close()
