"""Weapon (viewmodel) masks without an engine stencil, checked against the playtest world's
engine masks on real recorded sessions.

Thresholds: on ten playtest sessions (park and indoor, train/val/test seeds, all three weapons,
every 3rd of 300 frames) the temporal estimator reached a per-frame median IoU of 0.70-0.95
(0.93 typical) and a pooled IoU of 0.74-0.94 against the engine stencil. The losses are the
viewmodel's bobbing edges and reloads: the gun is lowered out of view for 5-40% of frames, where
the estimator answers "no weapon" while the stencil may still hold a sliver (the worst session,
park seed 12, has the gun lowered in over a third of its frames). The two sessions tested here
measure median 0.93/0.92 and pooled 0.83/0.92; the tests ask for a median >= 0.85, pooled >= 0.75,
and IoU >= 0.7 on 90% of the frames that show the whole gun, all far above what a wrong region
scores (the stable sky or ground: below 0.3). Prompt propagation from one frame scores about the
same (0.92 median and pooled on the park session); its test asks for 0.85 pooled and 0.9 median.
"""

from __future__ import annotations


import cv2
import numpy as np
import pytest

from bugdet.augment.loaders import load_targets
from bugdet.augment.weapon import estimate_weapon_masks, mask_iou, match_offset, propagate_mask


def shifted(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Translate with edge pixels replicated: a viewmodel continues below the screen's edge."""
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, m, (image.shape[1], image.shape[0]), flags=cv2.INTER_NEAREST,
                          borderMode=cv2.BORDER_REPLICATE)
from bugdet.segment.masks import MaskRecord, ensure_masks_schema, insert_masks
from bugdet.store.database import transaction

from test_augment import playtest_project


@pytest.fixture(scope="module")
def indoor(tmp_path_factory):
    # pistol on the indoor level: the smallest viewmodel, over textured walls and floors
    return playtest_project(tmp_path_factory.mktemp("indoor"), "indoor", 4, frames=240, stride=3)


@pytest.fixture(scope="module")
def park_shotgun(tmp_path_factory):
    return playtest_project(tmp_path_factory.mktemp("park_shotgun"), "park", 1, frames=240, stride=3)


def _ious(estimated, truth):
    per_frame = np.array([mask_iou(e, t) for e, t in zip(estimated, truth)])
    pooled = mask_iou(np.stack(estimated), np.stack(truth))
    return per_frame, pooled


@pytest.mark.parametrize("which", ["indoor", "park_shotgun"])
def test_temporal_estimation_recovers_the_engine_weapon_mask(request, which):
    project = request.getfixturevalue(which)
    engine = load_targets(project, weapon_source="engine")
    auto = load_targets(project, weapon_source="auto")
    assert [t.frame_id for t in engine] == [t.frame_id for t in auto] and len(auto) >= 60
    per_frame, pooled = _ious([t.weapon_mask for t in auto], [t.weapon_mask for t in engine])
    assert pooled >= 0.75, f"pooled IoU {pooled:.3f}"
    assert np.median(per_frame) >= 0.85, f"median IoU {np.median(per_frame):.3f}"
    # frames where the engine says the gun is fully in view are found on (almost) all frames
    visible = [i for i, t in enumerate(engine) if t.weapon_mask.sum() >= 0.6 * np.median([e.weapon_mask.sum() for e in engine])]
    assert np.mean(per_frame[visible] >= 0.7) >= 0.9


def test_temporal_estimation_finds_nothing_without_a_viewmodel(indoor):
    """Same frames with the viewmodel painted over by the world behind it (from the next frame):
    no stable screen-anchored region remains, so no weapon is reported."""
    engine = load_targets(indoor, weapon_source="engine")
    frames = []
    for k, t in enumerate(engine):
        other = engine[(k + 7) % len(engine)]
        img = t.rgb.copy()
        hole = cv2.dilate(t.weapon_mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
        img[hole] = cv2.GaussianBlur(other.rgb, (0, 0), 3)[hole]
        frames.append(img)
    masks, info = estimate_weapon_masks(frames)
    total = sum(int(m.sum()) for m in masks)
    truth = sum(int(t.weapon_mask.sum()) for t in engine)
    assert total < 0.1 * truth, info


def test_prompt_propagation_follows_the_weapon_across_frames(park_shotgun):
    engine = load_targets(park_shotgun, weapon_source="engine")
    # the tester's prompt: the viewmodel segmented on one frame with the gun fully in view
    areas = np.array([t.weapon_mask.sum() for t in engine])
    ref = engine[int(np.argmax(areas >= 0.9 * np.percentile(areas, 90)))]
    conn = park_shotgun.connect()
    ensure_masks_schema(conn)
    with transaction(conn):
        insert_masks(conn, [MaskRecord.from_mask(ref.frame_id, "prompt", ref.weapon_mask, 0.99, label="weapon",
                                                 meta={"role": "weapon", "model": "test"})])
    conn.close()
    prompted = load_targets(park_shotgun, weapon_source="prompt")
    assert np.array_equal(next(t for t in prompted if t.frame_id == ref.frame_id).weapon_mask, ref.weapon_mask)
    per_frame, pooled = _ious([t.weapon_mask for t in prompted], [t.weapon_mask for t in engine])
    assert pooled >= 0.85 and np.median(per_frame) >= 0.9, (pooled, np.median(per_frame))
    # the viewmodel really moves (bob/sway), and the propagated mask moves with it: where the gun
    # has moved away from where the tester drew it, the propagated mask beats the drawn one
    def centroid(m):
        ys, xs = np.nonzero(m)
        return np.array([xs.mean(), ys.mean()])
    c0 = centroid(ref.weapon_mask)
    followed, static = [], []
    for e, p in zip(engine, prompted):
        if e.weapon_mask.sum() < 0.8 * ref.weapon_mask.sum() or np.linalg.norm(centroid(e.weapon_mask) - c0) < 2.0:
            continue
        followed.append(mask_iou(p.weapon_mask, e.weapon_mask))
        static.append(mask_iou(ref.weapon_mask, e.weapon_mask))
    followed, static = np.array(followed), np.array(static)
    assert len(followed) >= 10, "the weapon should bob/sway by a few pixels in this session"
    assert np.mean(followed > static) >= 0.8
    assert np.median(followed) >= 0.88 and np.median(followed) - np.median(static) >= 0.05, (
        np.median(followed), np.median(static))


def test_match_offset_recovers_a_known_translation():
    rng = np.random.default_rng(0)
    scene = cv2.GaussianBlur(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), (0, 0), 2)
    gun = np.zeros((240, 320), np.uint8)
    cv2.fillPoly(gun, [np.array([[200, 239], [230, 170], [290, 150], [319, 165], [319, 239]])], 1)
    ref = scene.copy()
    ref[gun.astype(bool)] = (50, 52, 58)
    cv2.rectangle(ref, (240, 180), (260, 200), (90, 60, 30), -1)
    ref_mask = gun.astype(bool)
    for dx, dy in [(0, 0), (3, -2), (-7, 5), (11, 9)]:
        moved_mask = shifted(gun, dx, dy).astype(bool)
        frame = np.roll(scene, (dy * 3, -dx * 2), axis=(0, 1))  # the world moves differently
        frame[moved_mask] = shifted(ref, dx, dy)[moved_mask]
        got = match_offset(ref, ref_mask, frame, search=16)
        assert got[:2] == (dx, dy)
        out = propagate_mask(ref, ref_mask, frame)
        assert mask_iou(out.mask, moved_mask) > 0.97


def test_estimated_masks_do_not_depend_on_the_subset_and_are_cached(indoor):
    full = {t.frame_id: t.weapon_mask for t in load_targets(indoor, weapon_source="auto")}
    cache_files = list((indoor.root / "augment" / "weapon_masks").glob("auto-*.json"))
    assert len(cache_files) == 1
    # a damaged cache is recomputed, and a subset gets exactly the masks it got with all frames
    cache_files[0].write_text("{not json")
    subset = sorted(full)[5:40:3]
    again = load_targets(indoor, frame_ids=subset, weapon_source="auto")
    assert [t.frame_id for t in again] == subset
    for t in again:
        assert np.array_equal(t.weapon_mask, full[t.frame_id])
