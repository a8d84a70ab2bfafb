"""Segmentation of a real project made by ``bugdet ingest`` from capture sessions, library and CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from test_segment_scenes import draw_scene

from bugdet.ingest.ingester import ingest
from bugdet.ingest.session_format import FrameEntry, SessionInfo, SessionWriter
from bugdet.project import Project
from bugdet.segment.masks import iter_masks
from bugdet.segment.quality import mask_iou
from bugdet.segment.run import segment_project
from bugdet.segment.store import frame_status_counts, latest_role_mask, role_masks
from bugdet.store.frames import iter_frames

WIDTH, HEIGHT = 160, 120


def write_session(root: Path, seeds: list[int], black: tuple[int, ...] = ()) -> Path:
    """A capture session of drawn frames with ID maps and a legend; indices in ``black`` are black frames."""
    scenes = {seed: draw_scene(seed, WIDTH, HEIGHT, n_objects=4) for seed in seeds}
    legend = {k: v for s in scenes.values() for k, v in s.legend.items()}
    info = SessionInfo(session_id=root.name, seed=seeds[0], scene="drawn", width=WIDTH, height=HEIGHT, objects=legend)
    with SessionWriter(root, info) as writer:
        for index, seed in enumerate(seeds):
            rgb = np.zeros_like(scenes[seed].rgb) if index in black else scenes[seed].rgb
            ids = np.zeros_like(scenes[seed].ids) if index in black else scenes[seed].ids
            file = writer.write_frame_image(index, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            writer.append(FrameEntry(index=index, time=index / 30, file=file, scene="drawn", ids=writer.write_ids(index, ids)))
    return root


@pytest.fixture()
def project(tmp_path: Path) -> Project:
    project = Project.init(tmp_path / "proj")
    report = ingest(project, [write_session(tmp_path / "s1", [10, 11, 12, 13], black=(2,))])
    assert report.frames_added == 4
    return project


def _mask_counts(project: Project) -> dict[str, int]:
    conn = project.connect()
    try:
        return {r[0]: r[1] for r in conn.execute("SELECT backend, COUNT(*) FROM masks GROUP BY backend")}
    finally:
        conn.close()


def test_segment_project_is_incremental_and_idempotent(project: Project, tmp_path: Path):
    first = segment_project(project)
    assert first.frames_segmented == 4 and first.frames_skipped == 0
    assert first.masks_added > 0 and first.engine_masks_added > 0
    assert first.statuses["grid:empty"] == 1  # the black frame: recorded, not fatal
    assert first.statuses["grid:ok"] == 3
    counts = _mask_counts(project)
    assert counts == {"grid": first.masks_added, "engine": first.engine_masks_added}

    again = segment_project(project)
    assert again.frames_segmented == 0 and again.frames_skipped == 4 and again.masks_added == 0
    assert _mask_counts(project) == counts

    ingest(project, [write_session(tmp_path / "s2", [20, 21])])
    more = segment_project(project)
    assert more.frames_segmented == 2 and more.frames_skipped == 4
    grown = _mask_counts(project)
    assert grown["grid"] == counts["grid"] + more.masks_added

    redo = segment_project(project, redo=True)
    assert redo.frames_segmented == 6
    assert _mask_counts(project) == grown  # replaced, never duplicated

    conn = project.connect()
    try:
        assert frame_status_counts(conn, "grid") == {"ok": 5, "empty": 1}
        for frame in iter_frames(conn):
            masks = list(iter_masks(conn, frame_ids=[frame.id], backend="grid"))
            assert len(masks) <= project.config.segment.max_masks_per_frame
            for m in masks:
                decoded = m.decode()
                assert decoded.shape == (frame.height, frame.width) and decoded.sum() == m.area
                x, y, w, h = m.bbox
                assert decoded[y : y + h, x : x + w].sum() == m.area
    finally:
        conn.close()


def test_a_fixed_frame_set_is_segmented_once(project: Project):
    """``frame_ids`` pins the work to those frames (``limit`` would take the next ones each call)."""
    conn = project.connect()
    try:
        ids = [f.id for f in iter_frames(conn)]
    finally:
        conn.close()
    first = segment_project(project, backend="engine", frame_ids=[ids[0], ids[3]])
    assert first.frames_considered == 2 and first.frames_segmented == 2
    again = segment_project(project, backend="engine", frame_ids=[ids[0], ids[3]])
    assert again.frames_segmented == 0 and again.frames_skipped == 2
    grown = segment_project(project, backend="engine", limit=1)
    assert grown.frames_segmented == 1  # the next frame not yet done


def test_engine_masks_carry_categories_and_match_the_grid(project: Project):
    # Point priors: thin objects (a 4-px-wide barrel at 160x120) fall between the 10-px grid
    # points; one extra prompt inside each engine object makes the grid find them all.
    project = Project.open(project.root, ["segment.engine.point_priors=true"])
    segment_project(project)
    conn = project.connect()
    try:
        frame = next(iter_frames(conn))
        engine = list(iter_masks(conn, frame_ids=[frame.id], backend="engine"))
        grid = [m.decode() for m in iter_masks(conn, frame_ids=[frame.id], backend="grid")]
    finally:
        conn.close()
    legend_categories = {v["category"] for v in frame.aux["objects"].values()}
    assert engine and {m.label for m in engine} <= legend_categories
    assert all(m.score == 1.0 and "object_id" in m.meta for m in engine)
    objects = [m.decode() for m in engine if m.label != "terrain" and m.area >= 0.005 * WIDTH * HEIGHT]
    assert objects
    assert np.mean([max(mask_iou(o, g) for g in grid) for o in objects]) > 0.7


def test_engine_only_backend(project: Project):
    report = segment_project(project, backend="engine")
    assert report.masks_added == 0 and report.engine_masks_added > 0
    assert set(_mask_counts(project)) == {"engine"}
    # The black frame has an all-zero ID map: recorded as segmented with no masks.
    assert report.statuses["engine:no_masks"] == 1


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bugdet", *args], capture_output=True, text=True, timeout=120)


def test_cli_segment_and_prompt(project: Project, tmp_path: Path):
    p = str(project.root)
    result = run_cli("segment", "-p", p, "--limit", "2", "--json", str(tmp_path / "r.json"))
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "r.json").read_text())["frames_segmented"] == 2
    assert "2 frames segmented" in result.stderr

    conn = project.connect()
    frame = next(iter_frames(conn))
    conn.close()
    crate = next(int(k) for k, v in frame.aux["objects"].items() if v["category"] != "terrain")
    ids = cv2.imread(str(project.root / frame.aux["ids"]), cv2.IMREAD_UNCHANGED)
    truth = ids == crate
    ys, xs = np.nonzero(truth)
    box = f"{xs.min() - 3},{ys.min() - 3},{xs.max() + 4},{ys.max() + 4}"
    out = tmp_path / "mask.png"
    for _ in range(2):  # saving a role twice keeps one mask for it
        result = run_cli("prompt", "-p", p, "--frame", str(frame.id), "--box", box, "--save", "--role", "weapon",
                         "--out", str(out), "--overlay", str(tmp_path / "overlay.png"))
        assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["frame"] == frame.id and answer["backend"] == "opencv" and "mask_id" in answer
    written = cv2.imread(str(out), cv2.IMREAD_GRAYSCALE) > 0
    assert mask_iou(written, truth) > 0.7
    assert (tmp_path / "overlay.png").is_file()
    conn = project.connect()
    try:
        weapon = latest_role_mask(conn, "weapon")
        assert len(role_masks(conn, "weapon")) == 1 and weapon.id == answer["mask_id"]
        assert weapon.backend == "prompt" and weapon.meta["prompt"]["box"] is not None
        assert np.array_equal(weapon.decode(), written)
    finally:
        conn.close()


def run_in_process(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    """The real CLI entry point in this process (no interpreter start-up per call): exit code, stderr."""
    from bugdet.cli import main

    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def assert_one_line_error(outcome: tuple[int, str], fragment: str) -> None:
    code, stderr = outcome
    assert code != 0
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0], stderr


def test_cli_user_errors_are_one_line(project: Project, capsys: pytest.CaptureFixture):
    p = str(project.root)

    def cli(*args: str) -> tuple[int, str]:
        return run_in_process(capsys, *args)

    assert_one_line_error(cli("segment", "-p", p, "--backend", "sam"), "segment.sam.checkpoint is not set")
    assert_one_line_error(cli("segment", "-p", p, "--set", "segment.sam.checkpoint=nope.pth", "-b", "sam"),
                          "nope.pth: no such file")
    assert_one_line_error(cli("prompt", "-p", p, "--frame", "1", "--point", f"{WIDTH + 5},3"), "outside the 160x120 image")
    assert_one_line_error(cli("prompt", "-p", p, "--frame", "999", "--point", "3,3"), "no such frame")
    assert_one_line_error(cli("prompt", "-p", p, "--frame", "3", "--point", "3,3"), "uniform")
    assert_one_line_error(cli("prompt", "-p", p, "--frame", "1", "--box", "1,2,3"), "expected 4 comma-separated")
    assert_one_line_error(cli("prompt", "-p", p, "--frame", "1", "--point", "3,3", "--role", "weapon"), "add --save")
    assert_one_line_error(cli("segment", "-p", p, "--set", "segment.points_per_side=0"), "segment.points_per_side")
    assert_one_line_error(cli("segment", "-p", p, "--set", "segment.min_area_fraction=0.9"), "min_area_fraction must be below")


def test_bench_segment_writes_measurements(project: Project, tmp_path: Path):
    out = tmp_path / "bench.json"
    result = run_cli("bench", "segment", "-p", str(project.root), "--frames", "2", "--json", str(out), "--no-point-prompts")
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["benchmark"] == "segment" and data["backend"] == "opencv" and data["frames"] == 2
    assert data["masks"] > 0 and data["masks_per_s"] > 0 and data["image_size"] == [WIDTH, HEIGHT]
    conn = project.connect()
    try:  # benchmarking stores nothing: not even the masks table exists yet
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'masks'").fetchone() is None
    finally:
        conn.close()


def test_a_stage_called_directly_refuses_a_scale_backend_it_was_not_given(project: Project) -> None:
    """With ``scale.backend: ray`` the stage would otherwise run in process without a word; the
    dispatch module (what the CLI calls) is the one place that passes the Ray runner."""
    from bugdet.embed.histogram import ColourHistogramTestEmbedder
    from bugdet.embed.pipeline import embed_masks
    from bugdet.errors import ConfigError

    on_ray = Project.open(project.root, ["scale.backend=ray"])
    with pytest.raises(ConfigError, match="bugdet.scale.dispatch"):
        segment_project(on_ray)
    with pytest.raises(ConfigError, match="bugdet.scale.dispatch"):
        embed_masks(on_ray, ColourHistogramTestEmbedder())
    assert segment_project(project).frames_segmented == 4  # in process needs no runner
