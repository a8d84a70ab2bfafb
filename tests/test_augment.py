"""Objectives on real playtest-world frames: occlusion order for FPPC, matched pairs for the
texture and frame bugs, determinism, the loaders' bank/weapon handling."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from bugdet.augment import OBJECTIVES, TargetFrame, UnusableTarget, build_objective
from bugdet.augment.catalogue import registered
from bugdet.augment.generate import draw_pair, pair_rng, usable_targets
from bugdet.augment.loaders import load_sources, load_targets
from bugdet.errors import ConfigError
from bugdet.imageio import read_ids
from bugdet.ingest.ingester import ingest
from bugdet.playtest.recorder import record
from bugdet.playtest.session import PlaytestSpec
from bugdet.playtest.world import WEAPON_ID
from bugdet.project import Project
from bugdet.segment.masks import MaskRecord, ensure_masks_schema, insert_masks
from bugdet.store.database import transaction
from bugdet.store.frames import iter_frames

TEXTURE_BUGS = ("missing_texture", "low_res_texture", "stretched_texture", "z_fighting")


def playtest_project(root: Path, scene: str, seed: int, frames: int, stride: int = 1) -> Project:
    """Record a clean playtest session and ingest it (every ``stride``-th frame)."""
    session = root / f"session-{scene}-{seed}"
    record(PlaytestSpec(scene=scene, seed=seed, frames=frames), session)
    Project.init(root / "project")
    project = Project.open(root / "project", [f"ingest.stride={stride}"])
    report = ingest(project, [session])
    assert report.frames_added > 0
    return project


def add_object_masks(project: Project, every: int = 8, min_area: int = 150) -> int:
    """Source masks from the engine's object-ID maps (one mask per visible object, the weapon
    included so the loaders must drop it), like the segment stage's engine backend."""
    conn = project.connect()
    ensure_masks_schema(conn)
    records = []
    rows = list(iter_frames(conn))
    for row in rows[::every]:
        ids = read_ids(project.root / row.aux["ids"])
        legend = row.aux.get("objects", {})
        for oid in np.unique(ids):
            mask = ids == oid
            if oid == 0 or mask.sum() < min_area:
                continue
            name = "weapon" if oid == WEAPON_ID else legend.get(str(oid), {}).get("name", str(oid))
            records.append(MaskRecord.from_mask(row.id, "engine", mask, 1.0, label=name))
    with transaction(conn):
        insert_masks(conn, records)
    conn.close()
    return len(records)


@pytest.fixture(scope="module")
def park(tmp_path_factory):
    project = playtest_project(tmp_path_factory.mktemp("park"), "park", 3, frames=60, stride=2)
    add_object_masks(project)
    targets = load_targets(project, weapon_source="engine")
    sources = load_sources(project)
    return project, targets, sources


def test_registry_covers_the_objectives_and_validates_params():
    assert set(registered()) == set(OBJECTIVES)
    with pytest.raises(ConfigError, match="unknown parameter"):
        build_objective("fppc", min_covr=0.3)
    with pytest.raises(ConfigError, match="no objective"):
        build_objective("floating_teapot")
    with pytest.raises(ConfigError):
        build_objective("fppc", relative_size=(2.0, 1.0))
    assert build_objective("fppc", min_cover=0.3).params.min_cover == 0.3


def test_loaders_read_targets_with_engine_weapon_and_drop_weapon_sources(park):
    project, targets, sources = park
    assert targets and all(t.rgb.shape == (240, 320, 3) for t in targets)
    assert all(t.weapon_mask is not None and t.weapon_mask.shape == (240, 320) for t in targets)
    assert sum(t.weapon_mask.any() for t in targets) >= len(targets) // 2
    assert sources and all(s.label != "weapon" for s in sources)
    by_id = {t.frame_id: t for t in targets}
    for src in sources:
        assert src.rgb.shape[:2] == src.alpha.shape and src.alpha.sum() >= 64
        x, y, w, h = src.box
        frame = by_id[src.frame_id]
        # the crop is the frame's pixels, and it never carries a weapon pixel
        assert np.array_equal(src.rgb, frame.rgb[y:y + h, x:x + w])
        assert not (src.alpha & frame.weapon_mask[y:y + h, x:x + w]).any()


def test_fppc_positive_covers_the_weapon_negative_keeps_it_on_top(park):
    _, targets, sources = park
    fppc = build_objective("fppc", scene_occluder_prob=0.3, surface_occluder_prob=0.3)
    usable = usable_targets(fppc, targets)
    assert usable
    occluders = set()
    for i in range(16):
        pos, neg = draw_pair(fppc, usable, sources, pair_rng(7, i))
        target = next(t for t in usable if t.frame_id == pos.meta["target_frame_id"])
        weapon = target.weapon_mask
        assert (pos.label, neg.label, pos.bug_type) == (1, 0, "fppc")
        # negative: every weapon pixel is exactly the target's (the paste went behind the gun)
        assert np.array_equal(neg.image[weapon], target.rgb[weapon])
        # positive: the paste hides a good part of the weapon, and the bug mask is weapon pixels only
        covered = np.any(pos.image != target.rgb, axis=2) & weapon
        assert covered.sum() > 0 and pos.mask.any() and not (pos.mask & ~weapon).any()
        assert pos.mask.sum() >= 0.1 * weapon.sum()
        assert (pos.mask & ~covered).sum() <= 0.02 * pos.mask.sum()  # masked pixels did change
        # outside the weapon the two are identical, and the paste is visible there in both
        assert np.array_equal(pos.image[~weapon], neg.image[~weapon])
        assert not neg.mask.any()
        occluders.add(pos.meta["occluder"])
        if pos.meta["occluder"] in ("source", "surface"):
            assert np.any(neg.image != target.rgb)  # the bank mask / wall shows around the gun in both
        else:
            # the scene swallows the muzzle end: the hidden part is the one nearest the screen centre
            assert np.array_equal(neg.image, target.rgb)
            ys, xs = np.nonzero(weapon)
            hy, hx = np.nonzero(pos.mask)
            centre = np.array([160, 120])
            assert np.hypot(hx - centre[0], hy - centre[1]).mean() < np.hypot(xs - centre[0], ys - centre[1]).mean()
    assert occluders == {"source", "scene", "surface"}


def test_fppc_surface_occluder_is_the_same_wall_in_front_of_or_behind_the_gun(park):
    _, targets, sources = park
    fppc = build_objective("fppc", scene_occluder_prob=0.0, surface_occluder_prob=1.0)
    usable = usable_targets(fppc, targets)
    for i in range(6):
        pos, neg = draw_pair(fppc, usable, sources, pair_rng(11, i))
        target = next(t for t in usable if t.frame_id == pos.meta["target_frame_id"])
        weapon = target.weapon_mask
        assert pos.meta["occluder"] == "surface"
        assert np.array_equal(neg.image[weapon], target.rgb[weapon])  # the gun stays on top of the wall
        assert np.array_equal(pos.image[~weapon], neg.image[~weapon])  # the same wall around it in both
        assert np.any(neg.image[~weapon] != target.rgb[~weapon])
        assert pos.mask.sum() >= 0.1 * weapon.sum() and not (pos.mask & ~weapon).any()
        changed = np.any(pos.image != target.rgb, axis=2)
        assert (pos.mask & ~changed).sum() <= 0.05 * pos.mask.sum()


def test_fppc_surface_can_swallow_the_whole_gun(park):
    """A player pressed into a wall often sees no gun at all: every weapon pixel is wall in the
    positive, and every weapon pixel is the gun's own in the negative."""
    _, targets, sources = park
    fppc = build_objective("fppc", scene_occluder_prob=0.0, surface_occluder_prob=1.0, surface_full_prob=1.0)
    usable = usable_targets(fppc, targets)
    for i in range(4):
        pos, neg = draw_pair(fppc, usable, sources, pair_rng(17, i))
        target = next(t for t in usable if t.frame_id == pos.meta["target_frame_id"])
        weapon = target.weapon_mask
        assert pos.meta["weapon_cover"] == 1.0 and np.array_equal(pos.mask, weapon)
        assert np.array_equal(neg.image[weapon], target.rgb[weapon])
        assert np.array_equal(pos.image[~weapon], neg.image[~weapon])


def test_fppc_surface_can_hide_just_the_muzzle_when_asked(park):
    """Real clipping often hides only the tip of a long barrel; a user can ask for such small cuts."""
    _, targets, sources = park
    fppc = build_objective("fppc", scene_occluder_prob=0.0, surface_occluder_prob=1.0, surface_full_prob=0.0,
                           surface_hidden=(0.03, 0.06))
    usable = usable_targets(fppc, targets)
    covers = []
    for i in range(4):
        pos, neg = draw_pair(fppc, usable, sources, pair_rng(19, i))
        target = next(t for t in usable if t.frame_id == pos.meta["target_frame_id"])
        assert np.array_equal(neg.image[target.weapon_mask], target.rgb[target.weapon_mask])
        covers.append(pos.meta["weapon_cover"])
    assert 0 < max(covers) < 0.1


def test_fppc_weapon_margin_keeps_a_ring_around_the_gun_in_the_negative(park):
    _, targets, sources = park
    fppc = build_objective("fppc", weapon_margin_px=2, scene_occluder_prob=0.0)
    usable = usable_targets(fppc, targets)
    for i in range(4):
        pos, neg = draw_pair(fppc, usable, sources, pair_rng(21, i))
        target = next(t for t in usable if t.frame_id == pos.meta["target_frame_id"])
        ring = cv2.dilate(target.weapon_mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        assert np.array_equal(neg.image[ring], target.rgb[ring])
        assert not (pos.mask & ~target.weapon_mask).any()


def test_fppc_needs_a_visible_weapon(park):
    _, targets, sources = park
    fppc = build_objective("fppc")
    blind = TargetFrame(targets[0].rgb, None, 1)
    with pytest.raises(UnusableTarget):
        fppc.make_pair(blind, sources, np.random.default_rng(0))
    empty = TargetFrame(targets[0].rgb, np.zeros((240, 320), bool), 2)
    with pytest.raises(UnusableTarget):
        fppc.make_pair(empty, sources, np.random.default_rng(0))


@pytest.mark.parametrize("bug", OBJECTIVES)
def test_every_objective_is_deterministic_for_a_seed(park, bug):
    _, targets, sources = park
    objective = build_objective(bug)
    usable = usable_targets(objective, targets)
    a = draw_pair(objective, usable, sources, pair_rng(11, 3))
    b = draw_pair(objective, usable, sources, pair_rng(11, 3))
    c = draw_pair(objective, usable, sources, pair_rng(12, 3))
    for x, y in zip(a, b):
        assert np.array_equal(x.image, y.image) and np.array_equal(x.mask, y.mask) and x.meta == y.meta
    assert not np.array_equal(a[0].image, c[0].image)


@pytest.mark.parametrize("bug", TEXTURE_BUGS + ("camera_clipping", "black_frame"))
def test_pairs_differ_only_where_the_bug_mask_is_set(park, bug):
    _, targets, sources = park
    objective = build_objective(bug)
    for i in range(6):
        pos, neg = draw_pair(objective, targets, sources, pair_rng(5, i))
        target = next(t for t in targets if t.frame_id == pos.meta["target_frame_id"])
        assert pos.image.shape == neg.image.shape == target.rgb.shape and pos.image.dtype == np.uint8
        assert (pos.label, neg.label) == (1, 0) and not neg.mask.any()
        differ = np.any(pos.image != neg.image, axis=2)
        assert not (differ & ~pos.mask).any(), "positive and negative differ outside the bug mask"
        # the artefact is real: a good share of the masked pixels changed
        assert differ.sum() >= 0.2 * pos.mask.sum() > 0
        if bug in TEXTURE_BUGS or bug == "camera_clipping":
            # the viewmodel is drawn over the world: these bugs never touch weapon pixels
            weapon = target.weapon_mask
            assert np.array_equal(pos.image[weapon], target.rgb[weapon])
            assert np.array_equal(neg.image[weapon], target.rgb[weapon])


@pytest.mark.parametrize("bug", TEXTURE_BUGS)
def test_texture_bugs_on_the_targets_own_surface(park, bug):
    """texture_source=target: the region keeps the target's pixels, so the negative IS the target."""
    _, targets, sources = park
    objective = build_objective(bug, texture_source="target")
    for i in range(4):
        pos, neg = draw_pair(objective, targets, sources, pair_rng(9, i))
        target = next(t for t in targets if t.frame_id == pos.meta["target_frame_id"])
        assert np.array_equal(neg.image, target.rgb)
        differ = np.any(pos.image != target.rgb, axis=2)
        assert differ.any() and not (differ & ~pos.mask).any()


def test_missing_texture_paints_a_magenta_black_checker(park):
    _, targets, sources = park
    objective = build_objective("missing_texture", shading=(0.0, 0.0), area_fraction=(0.1, 0.2),
                                appearance={"noise_sigma": (0, 0)})
    pos, neg = draw_pair(objective, targets, sources, pair_rng(0, 0))
    core = cv2.erode(pos.mask.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)  # away from the feathered rim
    assert core.sum() > 100
    inner = pos.image[core].astype(int)
    magenta = (inner[:, 0] > 200) & (inner[:, 2] > 200) & (inner[:, 1] < 40)
    black = inner.max(axis=1) < 40
    assert (magenta | black).mean() > 0.7 and magenta.mean() > 0.2 and black.mean() > 0.2


def test_low_res_and_stretched_lose_detail_inside_the_region(park):
    _, targets, sources = park
    for bug in ("low_res_texture", "stretched_texture"):
        objective = build_objective(bug)
        losses = []
        for i in range(6):
            pos, neg = draw_pair(objective, targets, sources, pair_rng(3, i))
            m = pos.mask
            grad = lambda im: np.abs(np.diff(im.astype(float).mean(axis=2), axis=1))[m[:, 1:] & m[:, :-1]].mean()
            losses.append(grad(pos.image) - grad(neg.image))
        assert np.median(losses) < 0, f"{bug} should blur or smear the texture"


def test_camera_clipping_positive_fills_most_of_the_view(park):
    _, targets, sources = park
    objective = build_objective("camera_clipping", see_through_prob=0.0)
    for i in range(4):
        pos, neg = draw_pair(objective, targets, sources, pair_rng(1, i))
        target = next(t for t in targets if t.frame_id == pos.meta["target_frame_id"])
        changed_pos = np.any(pos.image != target.rgb, axis=2).mean()
        changed_neg = np.any(neg.image != target.rgb, axis=2).mean()
        assert changed_pos > 0.45 and changed_neg < 0.35


def test_bank_masks_and_weights_are_used_when_a_bank_exists(park):
    from bugdet.cluster.bank import bank_path, write_bank

    project, _, all_sources = park
    chosen = [s.mask_id for s in all_sources[:3]]
    write_bank(project, {"masks": [{"mask_id": m, "cluster": k, "weight": w}
                                   for k, (m, w) in enumerate(zip(chosen, (0.5, 0.25, 0.25)))]})
    try:
        banked = load_sources(project)
        assert [s.mask_id for s in banked] == sorted(chosen)
        assert sorted(s.weight for s in banked) == [0.25, 0.25, 0.5]
        # weighted choice: the 0.5 mask is drawn about half the time
        fppc = build_objective("fppc")
        usable = usable_targets(fppc, load_targets(project, weapon_source="engine"))
        heavy = next(s.mask_id for s in banked if s.weight == 0.5)
        drawn = [draw_pair(fppc, usable, banked, pair_rng(2, i))[0].meta["source_mask_id"] for i in range(60)]
        assert 0.3 < np.mean([d == heavy for d in drawn]) < 0.7
    finally:
        bank_path(project).unlink()
