"""The reference playtest world: determinism, exact FPPC truth, bug switches, prevalence, format."""

from __future__ import annotations

import hashlib
import math

import cv2
import numpy as np
import pytest

from bugdet.errors import BugdetError, InputError
from bugdet.ingest.session_format import BUG_TYPES, SessionReader

from bugdet.playtest import groundtruth as gt
from bugdet.playtest.bugs import parse_bug_list
from bugdet.playtest.collision import Box, clearance
from bugdet.playtest.player import RADIUS, Player, heading_to
from bugdet.playtest.recorder import record, record_many
from bugdet.playtest.renderer import get_renderer
from bugdet.playtest.scenes import load_world
from bugdet.playtest.seeding import stream
from bugdet.playtest.session import PlaytestSession, PlaytestSpec
from bugdet.playtest.split import HELD_OUT_VARIANTS, split_for_seed, variant_for
from bugdet.playtest.viewmodel import build_weapon
from bugdet.playtest.world import WEAPON_ID

W, H = 96, 72


def _digest(spec: PlaytestSpec) -> str:
    h = hashlib.sha256()
    for f in PlaytestSession(spec).frames():
        h.update(f.rgb.tobytes())
        h.update(f.ids.tobytes())
        h.update(f.weapon_mask.tobytes())
        for name in sorted(f.truths):
            t = f.truths[name]
            h.update(f"{name}{t.present}{t.severity:.9f}".encode())
            if t.present and t.mask is not None:
                h.update(np.packbits(t.mask).tobytes())
    return h.hexdigest()


def test_same_seed_same_frames_and_truth():
    spec = dict(scene="indoor", seed=11, frames=60, width=W, height=H, prevalence=0.2, bugs=BUG_TYPES)
    first = _digest(PlaytestSpec(**spec))
    assert first == _digest(PlaytestSpec(**spec))
    assert first != _digest(PlaytestSpec(**{**spec, "seed": 12}))


def _facing_wall_pose(world):
    """A pose pressed against a long wall, looking straight at it, as the player's collision allows."""
    walls = [c for c in world.colliders if isinstance(c, Box) and world.objects[c.oid].category == "wall" and c.hx > 2.0]
    for wall in walls:
        a = math.radians(wall.heading)
        nx, ny = -math.sin(a), math.cos(a)  # the wall's local +y in world space
        for side in (1.0, -1.0):
            px = wall.x + side * nx * (wall.hy + RADIUS + 0.01)
            py = wall.y + side * ny * (wall.hy + RADIUS + 0.01)
            d, nearest = clearance(world.colliders, px, py)
            if d >= RADIUS and nearest is wall and abs(px) < 19 and abs(py) < 19:
                return px, py, heading_to(-side * nx, -side * ny)
    raise AssertionError("no free wall face found")


def test_fppc_against_wall_hidden_in_bug_mode_and_exactly_zero_when_correct():
    world = load_world("indoor", "office", 21, 21)
    r = get_renderer()
    r.resize(160, 120)
    r.set_world(world)
    r.set_fov(80)
    r.set_weapon(build_weapon("rifle"))
    r.set_weapon_pose((0.16, 0.02, -0.17), (-3.0, 0.0, 0.0))
    x, y, h = _facing_wall_pose(world)
    r.set_eye(x, y, 1.7, h, 0.0, 0.0)
    full = r.viewmodel_alone()
    assert full.sum() > 200
    hidden_fraction = {}
    for bug in (False, True):
        r.set_fppc_bug(bug)
        ids = r.render().ids
        hidden_fraction[bug] = float((full & (ids != WEAPON_ID)).sum()) / float(full.sum())
    r.set_fppc_bug(False)
    assert hidden_fraction[False] == 0.0
    assert hidden_fraction[True] > 0.05
    # the ground-truth function agrees with the direct measurement
    r.set_fppc_bug(True)
    bug_ids = r.render().ids
    r.set_fppc_bug(False)
    ref_ids = r.render().ids
    truth = gt.fppc(bug_ids, ref_ids, gt.Thresholds())
    assert truth.present and truth.severity == pytest.approx(hidden_fraction[True])
    assert truth.mask.sum() == int(round(hidden_fraction[True] * full.sum()))


@pytest.mark.parametrize("bug", BUG_TYPES)
def test_each_bug_appears_only_when_switched_on(bug):
    spec = PlaytestSpec(scene="indoor", seed=31, frames=150, width=W, height=H, prevalence=0.08, bugs=(bug,))
    seen = 0
    for f in PlaytestSession(spec).frames():
        assert set(f.truths) == {bug}
        t = f.truths[bug]
        if t.present:
            seen += 1
            assert t.severity > 0 and t.mask is not None and t.mask.any()
            assert f.correct_rgb is not None and not np.array_equal(f.correct_rgb, f.rgb)
        else:
            assert t.severity == 0.0 and f.correct_rgb is None
    assert seen >= 3, f"{bug} never showed"


def test_no_bug_shows_when_switched_off():
    spec = PlaytestSpec(scene="park", seed=41, frames=60, width=W, height=H, prevalence=0.0, bugs=BUG_TYPES)
    session = PlaytestSession(spec)
    r = session.renderer
    for f in session.frames():
        assert not any(t.present for t in f.truths.values())
        assert f.correct_rgb is None and "bug" not in f.extra
        assert not r.fppc_bug


@pytest.mark.parametrize("scene,prevalence", [("indoor", 0.05), ("park", 0.03)])
def test_prevalence_close_to_request(scene, prevalence):
    frames = 400
    spec = PlaytestSpec(scene=scene, seed=51, frames=frames, width=64, height=48, prevalence=prevalence, bugs=BUG_TYPES)
    bug_frames = sum(any(t.present for t in f.truths.values()) for f in PlaytestSession(spec).frames())
    assert abs(bug_frames / frames - prevalence) <= 0.4 * prevalence + 1.0 / frames


def test_player_never_passes_through_geometry():
    for scene, seed in (("park", 61), ("indoor", 62)):
        world = load_world(scene, "summer" if scene == "park" else "office", seed, seed)
        player = Player(world, stream(seed, "route"))
        tasks = set()
        for _ in range(900):
            s = player.step(1 / 30)
            tasks.add(s.task)
            d, _ = clearance(world.colliders, s.x, s.y)
            assert d >= RADIUS - 1e-3
        assert "walk" in tasks and len(tasks) >= 3
        # pushing into the nearest wall ends in contact, never inside it
        player.request(player.push_task(duration=30.0, requested=True, tall_only=True))
        for _ in range(300):
            s = player.step(1 / 30)
            d, _ = clearance(world.colliders, s.x, s.y)
            assert d >= RADIUS - 1e-3
            if s.in_position:
                break
        assert s.in_position and d < RADIUS + 0.05


def test_recorded_session_reads_back(tmp_path):
    spec = PlaytestSpec(scene="indoor", seed=71, frames=40, width=W, height=H, prevalence=0.15, bugs=("fppc", "missing_texture", "black_frame"))
    info = record(spec, tmp_path / "s", mp4=True)
    reader = SessionReader.open(tmp_path / "s")
    assert reader.info.status == "complete" and reader.info.frame_count == 40 == info.frame_count
    assert reader.info.split == "train" and reader.info.bug_types == list(spec.bugs)
    assert reader.info.objects[str(WEAPON_ID)]["category"] == "weapon"
    entries = list(reader.frames())
    assert len(entries) == 40 and not reader.problems
    assert (tmp_path / "s" / "session.mp4").stat().st_size > 0
    bug_entries = [e for e in entries if e.is_bug]
    assert bug_entries
    for e in entries:
        assert set(e.bugs) == set(spec.bugs)
        image = cv2.imread(str(reader.resolve(e.file)))
        assert image.shape == (H, W, 3)
        ids = cv2.imread(str(reader.resolve(e.ids)), cv2.IMREAD_UNCHANGED)
        assert ids.dtype == np.uint16 and set(np.unique(ids).tolist()) <= {int(k) for k in reader.info.objects}
        weapon = cv2.imread(str(reader.resolve(e.weapon_mask)), cv2.IMREAD_GRAYSCALE)
        assert weapon.max() == 255
        for truth in e.bugs.values():
            assert (truth.mask is not None) == truth.present
    e = bug_entries[0]
    name = next(n for n, t in e.bugs.items() if t.present)
    mask = cv2.imread(str(reader.resolve(e.bugs[name].mask)), cv2.IMREAD_GRAYSCALE)
    assert mask.max() == 255


def test_sessions_recorded_side_by_side_equal_each_recorded_alone(tmp_path):
    specs = [PlaytestSpec(scene=scene, seed=seed, frames=6, width=64, height=48, prevalence=0.25, bugs=("fppc",))
             for scene, seed in (("park", 31), ("indoor", 32), ("park", 33))]
    record_many([(spec, tmp_path / "par" / str(spec.seed)) for spec in specs], workers=2)
    record_many([(specs[2], tmp_path / "alone" / "33")], workers=1)
    for spec in specs:
        assert SessionReader.open(tmp_path / "par" / str(spec.seed)).info.status == "complete"
    # the last session, recorded after another in its worker, has the bytes it has when alone
    files = sorted(p.relative_to(tmp_path / "alone") for p in (tmp_path / "alone").rglob("*") if p.is_file())
    assert len(files) > 6
    for rel in files:
        assert (tmp_path / "par" / rel).read_bytes() == (tmp_path / "alone" / rel).read_bytes(), rel


def test_split_and_held_out_variants():
    assert split_for_seed(5) == "train" and split_for_seed(150_000) == "val" and split_for_seed(250_000) == "test"
    for scene, held in HELD_OUT_VARIANTS.items():
        assert all(variant_for(scene, s) != held for s in range(200))
        assert any(variant_for(scene, s) == held for s in range(200_000, 200_040))
    with pytest.raises(InputError):
        variant_for("park", 1, "bunker")


def test_bad_inputs_are_user_errors():
    with pytest.raises(InputError):
        parse_bug_list("fppc,teleporting")
    assert parse_bug_list("all") == BUG_TYPES
    with pytest.raises(BugdetError):
        PlaytestSpec(scene="moon").validate()
    with pytest.raises(BugdetError):
        PlaytestSpec(prevalence=0.1, bugs=()).validate()
