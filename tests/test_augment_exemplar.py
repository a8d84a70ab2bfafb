"""Exemplar-driven objectives: a studio's labeled bug frames (train split only) as paste sources.

The frames are a small synthetic "engine": static textured scenes with per-frame sensor noise,
and a bug of the studio's own kind (cyan scanlines over black in a rectangle) that no built-in
simulation draws, plus a whole-frame blackout.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from bugdet.augment import TargetFrame
from bugdet.augment.assemble import exemplar_params, objectives_for
from bugdet.augment.base import SourceMask
from bugdet.augment.compose import Appearance, AppearanceParams, Layer, apply_shared_appearance
from bugdet.augment.exemplar import ExemplarObjective, MixedObjective, make_exemplar
from bugdet.augment.exemplar_loader import exemplars_from_labels, load_exemplars
from bugdet.augment.exemplar_region import RegionFinding, box_mask, difference_mask, find_region
from bugdet.augment.generate import draw_pair, pair_rng
from bugdet.errors import ConfigError, InputError
from bugdet.imageio import write_rgb
from bugdet.ingest.ingester import ingest
from bugdet.project import Project
from bugdet.store.database import transaction
from bugdet.store.frames import iter_frames
from bugdet.store.labels import ensure_labels_schema, insert_labels

H, W = 120, 160
RECT = (60, 40, 110, 70)  # x0, y0, x1, y1 of the scanline bug
TINY_MODEL = {"backbone": {"type": "compact_cnn", "widths": [8, 12, 16, 16, 24]}, "input_size": [60, 80],
              "pool_sharpness": 4.0}


def scene(seed: int) -> np.ndarray:
    """A smooth textured world seen from a still camera, in warm colours (red above green above
    blue), so nothing in it looks like the bug's cyan."""
    rng = np.random.default_rng(seed)
    low, high = np.array([120, 50, 20]), np.array([230, 130, 90])
    coarse = rng.integers(low, high, (12, 16, 3)).astype(np.float32)
    return np.clip(cv2.resize(coarse, (W, H), interpolation=cv2.INTER_LINEAR), 0, 255).astype(np.uint8)


def noisy(rgb: np.ndarray, seed: int) -> np.ndarray:
    """The same view in another frame: a grey level or two of sensor noise (and distinct pixels)."""
    noise = np.random.default_rng(seed).integers(-2, 3, rgb.shape)
    return np.clip(rgb.astype(int) + noise, 0, 255).astype(np.uint8)


def scanlines(rgb: np.ndarray, rect=RECT) -> np.ndarray:
    """This engine's bug: a rectangle of cyan scanlines over black."""
    x0, y0, x1, y1 = rect
    out = rgb.copy()
    out[y0:y1, x0:x1] = 0
    out[y0:y1:3, x0:x1] = (0, 255, 255)
    return out


def cyan_share(pixels: np.ndarray) -> float:
    """Share of pixels where green and blue clearly exceed red: the bug's scanlines, even blurred."""
    p = pixels.astype(int)
    return float(((p[:, 1] - p[:, 0] > 30) & (p[:, 2] - p[:, 0] > 30)).mean()) if len(p) else 0.0


# -- region finding ---------------------------------------------------------------------------


def test_difference_region_finds_the_bug_and_refuses_camera_motion():
    world = scene(1)
    clean, bug = noisy(world, 1), scanlines(noisy(world, 2))
    mask = difference_mask(bug, clean)
    truth = box_mask((H, W), RECT)
    assert mask is not None
    # the whole bug, plus a rim of a few pixels for its edge (blur and margin), nothing else
    rim = box_mask((H, W), (RECT[0] - 4, RECT[1] - 4, RECT[2] + 4, RECT[3] + 4))
    assert (mask & truth).sum() == truth.sum() and not (mask & ~rim).any()
    # the camera moved between the frames: a difference everywhere is no bug region -> whole frame
    moved = noisy(np.roll(world, 9, axis=1), 3)
    assert difference_mask(scanlines(moved), clean) is None
    region = find_region(scanlines(moved), None, clean)
    assert region.origin == "whole" and region.mask.all()
    # identical views (the neighbour shows the bug too): nothing to find either
    assert difference_mask(bug, scanlines(noisy(world, 4))) is None
    # a box wins over the difference, clipped to the frame
    region = find_region(bug, [150, 100, 400, 300], clean)
    assert region.origin == "box" and region.mask.sum() == 10 * 20
    with pytest.raises(ValueError):
        RegionFinding(min_fraction=0.5, max_fraction=0.4)


# -- the objective on in-memory frames --------------------------------------------------------


@pytest.fixture(scope="module")
def glitch_objective():
    world = scene(1)
    bug = scanlines(noisy(world, 2))
    exemplar = make_exemplar("scanlines", bug, find_region(bug, None, noisy(world, 1)),
                             [(11, noisy(world, 1)), (12, noisy(world, 5))], frame_id=10)
    assert exemplar is not None and exemplar.origin == "difference" and not exemplar.whole
    targets = [TargetFrame(noisy(scene(s), s), None, 100 + s) for s in (20, 21, 22)]
    return ExemplarObjective("scanlines", [exemplar]), targets


def test_positive_carries_the_pasted_bug_and_the_negative_the_same_paste_without_it(glitch_objective):
    objective, targets = glitch_objective
    for i in range(12):
        pos, neg = draw_pair(objective, targets, [], pair_rng(3, i))
        target = next(t for t in targets if t.frame_id == pos.meta["target_frame_id"])
        assert (pos.label, neg.label, pos.bug_type) == (1, 0, "scanlines")
        assert pos.image.shape == neg.image.shape == target.rgb.shape and pos.image.dtype == np.uint8
        assert pos.mask.any() and not neg.mask.any()
        differ = np.any(pos.image != neg.image, axis=2)
        assert not (differ & ~pos.mask).any(), "positive and negative differ outside the paste"
        assert differ.sum() >= 0.5 * pos.mask.sum()
        # the bug's look is inside the positive's mask, and nowhere in the negative
        assert cyan_share(pos.image[pos.mask]) > 0.1
        assert cyan_share(neg.image[pos.mask]) == 0.0 and cyan_share(neg.image.reshape(-1, 3)) == 0.0
        # the paste itself (clean content of another scene, its seam) is on both sides
        assert np.any(neg.image[pos.mask] != target.rgb[pos.mask])
        assert np.array_equal(neg.image[~pos.mask], target.rgb[~pos.mask])
        assert pos.meta["objective"] == "exemplar" and pos.meta["exemplar_frame_id"] == 10
    placements = {(p.meta["x"], p.meta["y"]) for p in (draw_pair(objective, targets, [], pair_rng(4, i))[0] for i in range(8))}
    assert len(placements) >= 6  # varied placement


def test_exemplar_pairs_are_deterministic_for_a_seed(glitch_objective):
    objective, targets = glitch_objective
    a = draw_pair(objective, targets, [], pair_rng(11, 3))
    b = draw_pair(objective, targets, [], pair_rng(11, 3))
    c = draw_pair(objective, targets, [], pair_rng(12, 3))
    for x, y in zip(a, b):
        assert np.array_equal(x.image, y.image) and np.array_equal(x.mask, y.mask) and x.meta == y.meta
    assert not np.array_equal(a[0].image, c[0].image)


def test_shared_appearance_is_one_map_lit_by_the_clean_content():
    """A black bug pasted into a bright target stays black: the lighting comes from the clean layer."""
    target = np.full((40, 40, 3), 200, np.uint8)
    alpha = np.ones((20, 20), np.float32)
    clean = Layer(10, 30, 10, 30, np.full((20, 20, 3), 100, np.float32), alpha.copy())
    black = Layer(10, 30, 10, 30, np.zeros((20, 20, 3), np.float32), alpha.copy())
    look = Appearance.draw(AppearanceParams(light_match=(1.0, 1.0), noise_sigma=(0, 0), blur_prob=0), np.random.default_rng(0))
    apply_shared_appearance([clean, black], target, look, np.random.default_rng(0))
    assert abs(float(clean.rgb.mean()) - 200) < 40 and float(black.rgb.max()) < 1
    assert np.array_equal(clean.alpha, black.alpha)


def test_a_reference_that_shows_the_bug_too_is_no_negative():
    world = scene(2)
    bug = scanlines(noisy(world, 1))
    region = find_region(bug, list(RECT), None)
    assert make_exemplar("scanlines", bug, region, [(1, scanlines(noisy(world, 2)))]) is None
    ex = make_exemplar("scanlines", bug, region, [(1, scanlines(noisy(world, 2))), (2, noisy(world, 3))])
    assert ex is not None and ex.clean_ids == [2] and ex.origin == "box" and ex.box == (60, 40, 50, 30)


def test_mix_draws_exemplars_with_its_probability_and_the_simulation_otherwise(glitch_objective):
    objective, targets = glitch_objective
    world = scene(3)
    sources = [SourceMask(world[10:60, 10:70].copy(), np.ones((50, 60), bool), mask_id=k) for k in range(3)]
    exemplar = objective.exemplars[0]
    borrowed = dataclasses.replace(exemplar, bug_type="missing_texture")  # a built-in type that looks like this here
    (mixed,) = objectives_for(["missing_texture"], mode="mix", exemplars={"missing_texture": [borrowed]},
                              exemplar_prob=0.5)
    assert isinstance(mixed, MixedObjective)
    kinds = [draw_pair(mixed, targets, sources, pair_rng(5, i))[0].meta["objective"] for i in range(40)]
    assert 0.25 < kinds.count("exemplar") / len(kinds) < 0.75 and "simulation" in kinds
    (only,) = objectives_for(["missing_texture"], mode="only", exemplars={"missing_texture": [borrowed]})
    assert isinstance(only, ExemplarObjective)
    (off,) = objectives_for(["missing_texture"], mode="off", exemplars={"missing_texture": [borrowed]})
    assert not isinstance(off, (ExemplarObjective, MixedObjective))
    # a type of the studio's own: exemplars alone, or no objective at all when they are off
    assert [o.bug_type for o in objectives_for(["scanlines"], mode="mix", exemplars={"scanlines": [exemplar]})] == ["scanlines"]
    assert objectives_for(["scanlines"], mode="off", exemplars={"scanlines": [exemplar]}) == []
    with pytest.raises(ConfigError, match="augment.exemplar_params: unknown parameter"):
        exemplar_params({"scael": [1, 2]})
    assert exemplar_params({"region": {"threshold": 30}, "scale": [0.5, 2.0]}).region.threshold == 30


# -- from a project: labels, splits, the pipeline -----------------------------------------------


def write_folder(folder: Path, frames: list[np.ndarray]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, rgb in enumerate(frames):
        write_rgb(folder / f"shot_{i:04d}.png", rgb)


@pytest.fixture
def studio(tmp_path: Path):
    """Captures of a studio's own game: train a (scanlines at 3 with a box, at 6 without one),
    train b (a blackout at 2), val and test captures with scanline bugs labeled too."""
    world_a, world_b, world_v, world_t = scene(1), scene(2), scene(3), scene(4)
    a = [noisy(world_a, 10 + i) for i in range(9)]
    a[3], a[6] = scanlines(a[3], (20, 20, 60, 50)), scanlines(a[6])
    b = [noisy(world_b, 30 + i) for i in range(5)]
    b[2] = np.random.default_rng(0).integers(0, 6, (H, W, 3), dtype=np.uint8)
    v = [noisy(world_v, 50 + i) for i in range(4)]
    v[1] = scanlines(v[1])
    t = [noisy(world_t, 70 + i) for i in range(4)]
    t[1] = scanlines(t[1])
    project = Project.init(tmp_path / "proj")
    ids = {}
    for name, frames, split in (("a", a, "train"), ("b", b, "train"), ("val", v, "val"), ("test", t, "test")):
        write_folder(tmp_path / "shots" / name, frames)
        before = {f.id for f in iter_frames(project.connect())}
        ingest(project, [tmp_path / "shots" / name], split=split)
        ids[name] = sorted(f.id for f in iter_frames(project.connect()) if f.id not in before)
    labels = [(ids["a"][3], "scanlines", 1, [20, 20, 60, 50]), (ids["a"][6], "scanlines", 1, None),
              (ids["b"][2], "blackout", 1, None), (ids["val"][1], "scanlines", 1, None),
              (ids["val"][0], "good", 1, None), (ids["test"][1], "scanlines", 1, list(RECT)),
              (ids["a"][0], "good", 1, None), (ids["b"][0], "good", 1, None)]
    conn = project.connect()
    ensure_labels_schema(conn)
    with transaction(conn):
        insert_labels(conn, [row[:3] for row in labels], boxes=[row[3] for row in labels])
    conn.close()
    (tmp_path / "tiny.json").write_text(json.dumps(TINY_MODEL))
    overrides = ["detect.bug_types=[scanlines, blackout]", "augment.exemplars=mix", f"detect.model={tmp_path / 'tiny.json'}",
                 "detect.epochs=1", "detect.finetune_epochs=1", "detect.steps_per_epoch=2", "detect.batch_size=8",
                 "detect.ema_decay=0", "device=cpu"]
    return Project.open(project.root, overrides), ids


def test_exemplars_come_from_the_train_split_only(studio):
    project, ids = studio
    found = load_exemplars(project, ["scanlines", "blackout"])
    train = set(ids["a"]) | set(ids["b"])
    assert sorted(e.frame_id for e in found["scanlines"]) == [ids["a"][3], ids["a"][6]]
    assert [e.frame_id for e in found["blackout"]] == [ids["b"][2]]
    for exemplars in found.values():
        for e in exemplars:
            assert e.frame_id in train and set(e.clean_ids) <= train
            assert not set(e.clean_ids) & {ids["a"][3], ids["a"][6], ids["b"][2]}  # never another bug frame
    # a frame held out for validation is no exemplar either
    held = load_exemplars(project, ["scanlines"], exclude_ids={ids["a"][3]})
    assert [e.frame_id for e in held["scanlines"]] == [ids["a"][6]]
    # with the train frames moved to another split name, no labeled frame anywhere is a source
    other = Project.open(project.root, ["detect.train_split=nothing"])
    assert load_exemplars(other, ["scanlines", "blackout"]) == {}


def test_exemplars_from_explicit_labels_use_only_the_frames_given(studio):
    """A benchmark's simulated tester names its bug frames and the frames that may serve."""
    project, ids = studio
    conn = project.connect()
    rows = [r for r in iter_frames(conn) if r.id in ids["val"]]
    conn.close()
    (found,) = exemplars_from_labels(project, rows, {ids["val"][1]: {"scanlines": None}})["scanlines"]
    assert found.origin == "difference" and set(found.clean_ids) <= set(ids["val"]) - {ids["val"][1]}
    (found,) = exemplars_from_labels(project, rows, {ids["val"][1]: {"scanlines": None}},
                                     not_clean={ids["val"][0], ids["val"][2]})["scanlines"]
    assert found.clean_ids == [ids["val"][3]] and found.origin == "difference"


def test_box_difference_and_whole_frame_regions_from_labels(studio):
    project, ids = studio
    found = load_exemplars(project, ["scanlines", "blackout"])
    by_frame = {e.frame_id: e for e in found["scanlines"] + found["blackout"]}
    boxed, diffed, black = by_frame[ids["a"][3]], by_frame[ids["a"][6]], by_frame[ids["b"][2]]
    assert boxed.origin == "box" and boxed.box == (20, 20, 40, 30) and boxed.alpha.all()
    assert boxed.clean_ids[0] in (ids["a"][2], ids["a"][4])  # nearest in time
    assert diffed.origin == "difference"
    x, y, w, h = diffed.box
    assert abs(x - RECT[0]) <= 4 and abs(y - RECT[1]) <= 4 and abs(x + w - RECT[2]) <= 4 and abs(y + h - RECT[3]) <= 4
    assert black.origin == "whole" and black.whole and black.rgb.shape == (H, W, 3)
    # a whole-frame bug covers most of the target
    objective = ExemplarObjective("blackout", [black])
    target = TargetFrame(noisy(scene(9), 1), None, 1)
    for i in range(4):
        pos, neg = objective.make_pair(target, [], pair_rng(1, i))
        assert pos.mask.mean() > 0.7 and float(pos.image[pos.mask].mean()) < float(neg.image[pos.mask].mean()) - 40


def test_a_custom_bug_type_with_only_labels_trains_through_the_pipeline(studio):
    from bugdet.detect.bug_types import with_effective_bug_types
    from bugdet.detect.pipeline import objective_sampler, train_project

    project, ids = studio
    cfg = with_effective_bug_types(project).config.detect
    sampler = objective_sampler(project, cfg, (60, 80), good_only=False)
    assert sorted(o.bug_type for o in sampler.objectives) == ["blackout", "scanlines"]
    assert all(isinstance(o, ExemplarObjective) for o in sampler.objectives)
    assert not {t.frame_id for t in sampler.targets} & {ids["a"][3], ids["a"][6], ids["b"][2]}  # bug frames: no targets
    batch = sampler.batch(np.random.default_rng(0), 8, (4, 5))
    positives = batch.labels.sum(1) > 0
    assert positives.any() and (batch.masks[positives].flatten(1).sum(1) > 0).all()
    trained = train_project(project, run_name="custom")
    assert set(trained.result.thresholds) == {"scanlines", "blackout"}
    assert all(np.isfinite(h["loss"]) for h in trained.result.history)
    data = json.loads((trained.run_dir / "summary.json").read_text())["data"]
    assert data["objective_targets"] > 0 and data["objective_exemplars"] == {"scanlines": 2, "blackout": 1}
    # the simulation-vs-reality check has no built-in simulation of a studio's own types to judge
    assert data["objective_realism"]["checked"] == [] and "simulated type" in data["objective_realism"]["skipped"]
    # exemplars off: the studio's types have no objective, and the error says how to get one
    off = Project.open(project.root, ["detect.bug_types=[scanlines, blackout]", "augment.exemplars=off"])
    with pytest.raises(InputError, match="set augment.exemplars=mix"):
        objective_sampler(off, off.config.detect, (60, 80), good_only=False)


def test_augment_command_writes_a_sheet_of_a_custom_types_exemplar_pairs(studio, capsys):
    from bugdet.cli import main

    project, ids = studio
    main(["augment", "-p", str(project.root), "--bug", "scanlines", "--n", "3", "--set", "augment.exemplars=only"])
    out = project.root / "augment" / "scanlines"
    rows = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and {r["meta"]["exemplar_frame_id"] for r in rows} <= {ids["a"][3], ids["a"][6]}
    assert (out / "sheet.png").is_file()
    with pytest.raises(SystemExit):
        main(["augment", "-p", str(project.root), "--bug", "scanlines", "--n", "1"])  # exemplars off in the file
    assert "unknown bug type 'scanlines'" in capsys.readouterr().err
