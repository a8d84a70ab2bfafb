"""Bring your own game: split hygiene, sampling, sane defaults and loud failures on plain folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bugdet.detect.bug_types import effective_bug_types
from bugdet.detect.data import LabeledFrame
from bugdet.detect.holdout import hold_out
from bugdet.errors import ConfigError
from bugdet.ingest.ingester import ingest
from bugdet.project import Project
from bugdet.segment.store import segmented_frame_ids
from bugdet.store.frames import FrameRow, iter_frames, sample_evenly
from bugdet.store.labels import record_labels
from bugdet.weaklabel.propagate import exemplars_from_labels
from conftest import moving_frames
from test_labels_io import cli, write_folder

REPO = Path(__file__).resolve().parents[1]


def folder_project(tmp_path: Path, layout: dict[str, list[int]]) -> tuple[Project, dict[str, list[int]]]:
    """A project of plain frame folders, one capture per entry: ``{folder: [seed, n_frames, split]}``;
    returns the frame ids of each folder."""
    project = Project.init(tmp_path / "proj")
    ids: dict[str, list[int]] = {}
    for name, (seed, n, split) in layout.items():
        write_folder(tmp_path / "shots" / name, moving_frames(n, seed=seed))
        before = {f.id for f in iter_frames(project.connect())}
        ingest(project, [tmp_path / "shots" / name], split=split)
        ids[name] = sorted(f.id for f in iter_frames(project.connect()) if f.id not in before)
    return project, ids


def row(frame_id: int, source_id: int, index: int) -> FrameRow:
    return FrameRow(frame_id, f"{frame_id:064x}", source_id, index, index / 30, f"f{frame_id}.png", 160, 120)


def test_sample_evenly_covers_every_capture_and_its_whole_timeline() -> None:
    frames = [row(i, 1, i) for i in range(100)] + [row(100 + i, 2, i) for i in range(30)]
    picked = sample_evenly(frames, 13)
    assert len(picked) == 13
    first = [f.source_index for f in picked if f.source_id == 1]
    second = [f.source_index for f in picked if f.source_id == 2]
    assert len(first) == 10 and len(second) == 3  # proportional to length
    assert first[0] == 0 and first[-1] == 99 and second[0] == 0 and second[-1] == 29  # start to end
    assert len(sample_evenly(frames, 1)) == 1 and sample_evenly(frames, 500) == frames


def test_segment_sample_spreads_over_captures_and_is_a_fixed_set(tmp_path: Path, capsys) -> None:
    project, ids = folder_project(tmp_path, {"a": [0, 10, "train"], "b": [1, 10, "train"]})
    code, err = cli(capsys, "segment", "-p", str(project.root), "--sample", "4")
    assert code == 0, err
    assert "sample: 4 frames spread over captures and time" in err
    conn = project.connect()
    done = segmented_frame_ids(conn, "grid")
    assert len(done & set(ids["a"])) == 2 and len(done & set(ids["b"])) == 2
    assert {ids["a"][0], ids["a"][-1]} <= done  # first and last frame, not the first N
    code, err = cli(capsys, "segment", "-p", str(project.root), "--sample", "4")
    assert code == 0 and "0 frames segmented (4 already done)" in err, err
    masks_per_frame = conn.execute("SELECT frame_id, COUNT(*) FROM masks GROUP BY frame_id").fetchall()
    assert masks_per_frame and max(n for _, n in masks_per_frame) <= project.config.segment.max_masks_per_frame == 16


def test_augment_sources_and_weak_label_exemplars_come_from_the_train_split_only(tmp_path: Path, capsys) -> None:
    project, ids = folder_project(tmp_path, {"train": [0, 8, "train"], "test": [5, 6, "test"], "val": [9, 4, "val"]})
    root = str(project.root)
    assert cli(capsys, "segment", "-p", root)[0] == 0  # every split segmented: the test split's masks exist
    conn = project.connect()
    assert segmented_frame_ids(conn, "grid") >= set(ids["test"])
    code, err = cli(capsys, "augment", "-p", root, "--bug", "missing_texture", "--n", "12", "--json", str(tmp_path / "a.json"))
    assert code == 0, err
    rows = [json.loads(line) for line in (project.root / "augment" / "missing_texture" / "index.jsonl").read_text().splitlines()]
    targets = {r["meta"]["target_frame_id"] for r in rows}
    sources = {r["meta"]["source_frame_id"] for r in rows}
    assert targets and targets <= set(ids["train"]) and sources <= set(ids["train"])
    assert json.loads((tmp_path / "a.json").read_text())["targets"] == len(ids["train"])
    # labels of validation and test frames judge the detector; they never seed weak labels
    record_labels(conn, [(ids["train"][0], "missing_texture", 1), (ids["test"][0], "missing_texture", 1),
                         (ids["val"][0], "good", 1), (ids["train"][1], "good", 1)])
    assert exemplars_from_labels(project) == {ids["train"][0]: "missing_texture", ids["train"][1]: "good"}


def labeled(frame_id: int, bug: bool) -> LabeledFrame:
    return LabeledFrame(np.zeros((4, 4, 3), np.uint8), np.array([float(bug)], np.float32), np.array([True]), frame_id)


def test_validation_is_held_out_by_capture_or_episode_never_frame_by_frame() -> None:
    # three captures of 10 frames, labels on every other frame, bugs in each capture
    rows = [row(c * 100 + i, c, i) for c in (1, 2, 3) for i in range(10)]
    frames = [labeled(r.id, r.source_index % 4 == 0) for r in rows if r.source_index % 2 == 0]
    split = hold_out(frames, rows, rows, seed=0)
    assert split is not None and split.unit == "capture" and len(split.held_groups) == 1
    held_captures = {r.source_id for r in rows if r.id in {f.frame_id for f in split.val}}
    assert len(held_captures) == 1
    (held,) = held_captures
    assert {f.frame_id for f in split.train}.isdisjoint(r.id for r in rows if r.source_id == held)
    assert split.excluded_frame_ids == {r.id for r in rows if r.source_id == held}  # its unlabeled frames too
    assert "by capture" in split.describe("val") and "holds no labels or ground truth" in split.describe("val")
    # one capture: whole contiguous episodes are held out
    one = [row(i, 7, i) for i in range(40)]
    frames = [labeled(r.id, r.source_index % 5 == 0) for r in one]
    split = hold_out(frames, one, one, seed=1)
    assert split is not None and split.unit == "episode"
    held_idx = sorted(r.source_index for r in one if r.id in {f.frame_id for f in split.val})
    episodes = {i // 8 for i in held_idx}  # 40 frames, 5 episodes of 8 consecutive frames
    assert held_idx == [i for i in range(40) if i // 8 in episodes]  # whole episodes, never single frames
    assert any(f.is_bug for f in split.train)


def test_bug_types_default_to_the_labeled_ones(tmp_path: Path) -> None:
    project, ids = folder_project(tmp_path, {"train": [0, 4, "train"]})
    assert project.config.detect.bug_types == []
    with pytest.raises(ConfigError, match="no bug types: label some bug frames"):
        effective_bug_types(project)
    record_labels(project.connect(), [(ids["train"][0], "stretched_texture", 1), (ids["train"][1], "good", 1)])
    assert effective_bug_types(project) == ["stretched_texture"]
    assert effective_bug_types(Project.open(project.root, ["detect.bug_types=[fppc]"])) == ["fppc"]


def test_fppc_without_a_findable_weapon_is_an_error_with_the_fix(tmp_path: Path, capsys) -> None:
    project, _ = folder_project(tmp_path, {"train": [0, 6, "train"]})
    code, err = cli(capsys, "augment", "-p", str(project.root), "--bug", "fppc", "--n", "2")
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert "none of 6 target frames has a weapon mask" in errors[0] and "--role weapon" in errors[0]


def test_fppc_when_auto_finds_no_viewmodel_is_an_error_not_empty_masks(tmp_path: Path, capsys) -> None:
    """A camera panning over a textured world with no gun on screen: the temporal estimator finds
    no screen-anchored region, and FPPC stops instead of painting over a gun it never found."""
    import cv2

    rng = np.random.default_rng(0)
    world = cv2.resize(rng.integers(0, 255, (60, 200, 3), dtype=np.uint8), (1600, 480), interpolation=cv2.INTER_LINEAR)
    write_folder(tmp_path / "pan", [np.ascontiguousarray(world[:, i * 40:i * 40 + 640][::4, ::4]) for i in range(24)])
    project = Project.init(tmp_path / "proj")
    ingest(project, [tmp_path / "pan"], split="train")
    code, err = cli(capsys, "augment", "-p", str(project.root), "--bug", "fppc", "--n", "2", "--weapon-source", "auto")
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "weapon_source=auto" in errors[0] and "no screen-anchored viewmodel" in errors[0], err
    # training with the FPPC objective stops the same way, before any step is taken
    record_labels(project.connect(), [(f.id, "fppc" if f.source_index == 3 else "good", 1)
                                      for f in iter_frames(project.connect()) if f.source_index % 3 == 0])
    code, err = cli(capsys, "train", "-p", str(project.root), "--set", "augment.weapon_source=auto")
    assert code == 2 and "fppc: none of" in err and "has a weapon mask" in err, err
    assert not list((project.root / "models").glob("*/detector.pt"))


def test_default_embed_config_offline_fails_within_seconds_with_the_fix(tmp_path: Path) -> None:
    """No HF_HUB_OFFLINE, no cached weights, and the hub unreachable (a closed local port): one
    line with the fix, at once. Before, the hub client retried for about a minute."""
    project = Project.init(tmp_path / "proj")
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT="http://127.0.0.1:9", PYTHONPATH=str(REPO))
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "bugdet", "embed", "-p", str(project.root)], capture_output=True,
                            text=True, env=env, timeout=45)
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "not cached, and 127.0.0.1 is unreachable" in errors[0] and "pretrained: none" in errors[0]
    assert "Retrying" not in result.stderr
    print(f"offline embed failed in {elapsed:.1f}s")


def record_plain_folders(out: Path) -> list[str]:
    """Panda3D playtest frames written the way a studio has its own: plain PNG folders (train,
    val, test; no session metadata) and a labels CSV naming frames by file, with boxes."""
    from bugdet.imageio import write_rgb
    from bugdet.playtest.session import PlaytestSession, PlaytestSpec

    lines = ["frame,label,split,box"]
    for split, seed, n, good_budget in (("train", 5, 120, 20), ("val", 100005, 60, 20), ("test", 200005, 80, None)):
        spec = PlaytestSpec(scene="park", seed=seed, frames=n, width=160, height=120, prevalence=0.3,
                            bugs=("missing_texture",))
        goods = 0
        for f in PlaytestSession(spec).frames():
            rel = f"{split}/frame_{f.index:04d}.png"
            write_rgb(out / rel, f.rgb)
            truth = f.truths["missing_texture"]
            if truth.present:
                ys, xs = np.nonzero(truth.mask)
                lines.append(f'{rel},missing_texture,,"{xs.min()},{ys.min()},{xs.max() + 1},{ys.max() + 1}"')
            elif good_budget is None or goods < good_budget:
                lines.append(f"{rel},good,,")
                goods += 1
    return lines


@pytest.mark.slow
def test_own_game_from_frame_folders_and_a_labels_csv_to_an_exported_detector(tmp_path: Path, capsys) -> None:
    """docs/own-game.md's commands, all through the CLI, on frames bugdet never recorded itself."""
    shots = tmp_path / "mygame"
    (tmp_path / "labels.csv").write_text("\n".join(record_plain_folders(shots)) + "\n")
    p = str(tmp_path / "proj")
    embed_cfg = ["--set", "filter.embed.model=ViT-S-32", "--set", "filter.embed.pretrained=none",
                 "--set", "filter.embed.backend=torch"]
    tiny = ["--set", "detect.epochs=1", "--set", "detect.finetune_epochs=1", "--set", "detect.steps_per_epoch=2",
            "--set", "detect.batch_size=8"]

    def ok(*args: str) -> str:
        code, err = cli(capsys, *args)
        assert code == 0, f"bugdet {' '.join(args)}:\n{err}"
        return err

    ok("init", p)
    for split in ("train", "val", "test"):
        ok("ingest", str(shots / split), "-p", p, "--split", split)
    imported = ok("label", "import", str(tmp_path / "labels.csv"), "-p", p)
    assert "labels added" in imported and "0 removed" in imported
    assert "sample: 16 frames" in ok("segment", "-p", p, "--split", "train", "--sample", "16")
    assert "UNPRETRAINED" in ok("embed", "-p", p, "--sample", "16", *embed_cfg)
    ok("cluster", "-p", p, "--k", "4", "--no-summary", *embed_cfg)
    ok("augment", "-p", p, "--bug", "missing_texture", "--n", "4")
    trained = ok("train", "-p", p, "--run", "mine", *tiny)
    assert "missing_texture: threshold" in trained and "note:" not in trained  # the val split has labels
    ok("evaluate", f"{p}/models/mine/detector.pt", "-p", p, "--split", "test", "--json", str(tmp_path / "m.json"))
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert "missing_texture" in json.dumps(metrics)
    ok("export", "-p", p, "--json", str(tmp_path / "e.json"))
    package = Path(json.loads((tmp_path / "e.json").read_text())["package"])
    manifest = json.loads((package / "manifest.json").read_text())
    assert manifest["bug_types"] == ["missing_texture"]  # detect.bug_types defaulted to the labeled type
    # served: `bugdet serve --models PROJECT/packages` answers with the labeled bug type's score
    from bugdet.imageio import read_rgb
    from service.client import DetectionClient, SpawnedServer, raw_frame

    with SpawnedServer(str(package.parent)) as server:  # PROJECT/packages
        client = DetectionClient(server.address)
        try:
            (result,) = client.detect([raw_frame(read_rgb(shots / "test" / "frame_0000.png"), "f0")])
        finally:
            client.close()
    assert result.id == "f0" and [s.bug_type for s in result.scores] == ["missing_texture"]
    assert 0.0 <= result.scores[0].score <= 1.0
    # No labeled validation split: training holds out labeled frames by capture/episode and says so.
    held = ok("train", "-p", p, "--run", "noval", "--set", "detect.val_split=none", *tiny)
    assert "note: validation split 'none' holds no labels or ground truth: holding out" in held and "by episode" in held
    # self-training: a teacher's pseudo-labels on the unlabeled train frames, a student as the run's detector
    ok("train", "-p", p, "--run", "student", "--mode", "self_training", *tiny)
    data = json.loads((tmp_path / "proj" / "models" / "student" / "summary.json").read_text())["data"]
    assert data["pseudo_labels"]["source"] == "teacher" and data["pseudo_labels"]["frames"] > 0
    assert (tmp_path / "proj" / "models" / "student" / "teacher" / "best.pt").exists()
    # the labels round-trip
    ok("label", "export", str(tmp_path / "out.csv"), "-p", p)
    again = ok("label", "import", str(tmp_path / "out.csv"), "-p", p)
    assert "0 labels added" in again and "0 removed" in again
