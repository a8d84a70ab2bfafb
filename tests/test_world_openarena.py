"""The OpenArena world: real ioquake3 replays give bug frames with exact, non-empty masks.

The game (Debian ``openarena``) and ``xvfb-run`` (Debian ``xvfb``) are needed for the recording
tests, which skip with the reason when they are absent. One tiny session with every bug type is
recorded per test run (a few hundred ms of game time, nine engine runs) and shared.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bugdet.errors import ConfigError, InputError
from bugdet.imageio import read_mask, read_rgb
from bugdet.ingest.ingester import ingest
from bugdet.ingest.session_format import SessionReader
from bugdet.project import Project
from bugdet.store.frames import iter_frames
from bugdet.worlds import WORLDS, world_module
from bugdet.worlds.openarena import engine as oa_engine
from bugdet.worlds.openarena.bugs import (
    DIFF_LEVEL,
    OPENARENA_BUGS,
    VISIBLE_SHARE,
    parse_bugs,
)
from bugdet.worlds.openarena.split import split_for_map

HAVE_GAME = os.access("/usr/games/openarena", os.X_OK) or shutil.which("openarena") is not None
HAVE_XVFB = shutil.which("xvfb-run") is not None
HAVE_CC = shutil.which("cc") is not None or shutil.which("gcc") is not None
CAN_RECORD = HAVE_GAME and HAVE_XVFB and HAVE_CC
SKIP_REASON = "needs the Debian packages openarena, xvfb and gcc (apt-get install openarena xvfb gcc)"
needs_game = pytest.mark.skipif(not CAN_RECORD, reason=SKIP_REASON)
FRAMES = 40
PREVALENCE = 0.3


def test_worlds_are_named_and_importable() -> None:
    assert WORLDS == {"playtest": "bugdet.playtest", "openarena": "bugdet.worlds.openarena"}
    assert world_module("openarena").__name__ == "bugdet.worlds.openarena"
    with pytest.raises(InputError, match="unknown world"):
        world_module("doom")


def test_bug_list_and_map_splits() -> None:
    assert parse_bugs("all") == OPENARENA_BUGS
    assert parse_bugs("black_frame, low_res_texture") == ("low_res_texture", "black_frame")
    with pytest.raises(InputError, match="cannot show bug type.*fppc"):
        parse_bugs("fppc")
    assert [split_for_map(m) for m in ("oa_dm1", "oa_dm5", "oa_dm7", "am_underworks")] == ["train", "val", "test", "test"]


def test_shader_blocks_skip_comments_and_keep_nested_stages() -> None:
    from bugdet.worlds.openarena.assets import shader_blocks

    text = ("// a { comment\ntextures/a/one\n{\n\tsurfaceparm nomarks\n\t{\n\t\tmap x.tga // }\n\t}\n}\n"
            "/* textures/fake { } */\ntextures/b/two { { map $lightmap } }\n")
    blocks = shader_blocks(text)
    assert [name for name, _, _ in blocks] == ["textures/a/one", "textures/b/two"]
    name, start, end = blocks[1]
    assert text[start:end] == "textures/b/two { { map $lightmap } }"


@pytest.mark.skipif(not os.path.isdir("/usr/lib/openarena/baseoa"), reason="needs the OpenArena game data (apt-get install openarena)")
def test_overrides_replace_the_games_own_definitions() -> None:
    from bugdet.worlds.openarena import assets

    base = Path("/usr/lib/openarena")
    wanted = {"textures/gothic_wall/streetbricks14": "textures/gothic_wall/streetbricks14\n{\n}",  # defined by the game
              "textures/base_trim/deeprust": "textures/base_trim/deeprust\n{\n}"}  # an image only
    files = assets.override_scripts(base, wanted)
    game = assets._script_files(str(base))
    assert set(files) == {"scripts/detailtest.shader", "scripts/zzz_bugdet.shader"}
    ours = files["scripts/detailtest.shader"]
    # the whole game script is shipped with only that definition swapped
    assert len(assets.shader_blocks(ours)) == len(assets.shader_blocks(game["scripts/detailtest.shader"]))
    assert "textures/gothic_wall/streetbricks14\n{\n}" in ours
    assert files["scripts/zzz_bugdet.shader"].strip() == "textures/base_trim/deeprust\n{\n}"


def test_missing_game_is_one_error_line_naming_the_packages(tmp_path: Path) -> None:
    env = dict(os.environ, PATH=str(tmp_path), PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    code = "import bugdet.worlds.openarena.engine as e; e.GAME_PATHS = (); from bugdet.cli import main; main()"
    out = subprocess.run([sys.executable, "-c", code, "openarena", "record", str(tmp_path / "s"), "--frames", "3"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "apt-get install openarena xvfb" in lines[0]
    assert not (tmp_path / "s").exists()


def test_find_engine_error_without_xvfb(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(oa_engine, "GAME_PATHS", ())
    with pytest.raises(ConfigError, match="openarena and xvfb-run not found"):
        oa_engine.find_engine()


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not CAN_RECORD:
        pytest.skip(SKIP_REASON)
    from bugdet.worlds.openarena.capture import OpenArenaSpec, record

    out = tmp_path_factory.mktemp("oa") / "session"
    # a near plane of 96 units cuts the walls on nearly every frame, so even a 3 s session has
    # visible camera clipping (the drawn 40..64 cut them on 15-40% of frames)
    spec = OpenArenaSpec(map="oa_dm1", seed=5, frames=FRAMES, fps=10, prevalence=PREVALENCE, bugs=OPENARENA_BUGS, bots=2,
                         bug_cvars={"camera_clipping": {"r_znear": "96"}})
    record(spec, out)
    return out


def _replay_clean(session: Path, tmp: Path) -> list[np.ndarray]:
    """A fresh clean replay of the session's kept demo: the twin the ground truth is measured on."""
    from bugdet.worlds.openarena import bugs
    from bugdet.worlds.openarena.capture import (
        SKIP_FRAMES,
        OpenArenaCapture,
        OpenArenaSpec,
    )

    capture = OpenArenaCapture(OpenArenaSpec(map="oa_dm1", seed=5, frames=FRAMES, fps=10))
    demo = next((session / "openarena").glob("bugdet.dm_*"))
    with capture.replay(tmp, demo, bugs.CLEAN) as video:
        return [video[SKIP_FRAMES + i][..., ::-1] for i in range(FRAMES)]  # BGR -> RGB like read_rgb


@needs_game
def test_each_bug_has_frames_with_masks_and_an_identical_clean_twin(session: Path, tmp_path: Path) -> None:
    reader = SessionReader.open(session)
    assert reader.info.status == "complete" and reader.info.split == "train" and reader.info.frame_count == FRAMES
    frames = list(reader.frames())
    twin = _replay_clean(session, tmp_path)
    seen: set[str] = set()
    for entry in frames:
        shown = read_rgb(reader.resolve(entry.file)).astype(int)
        weapon = read_mask(reader.resolve(entry.weapon_mask))
        present = [name for name, truth in entry.bugs.items() if truth.present]
        diff = np.abs(shown - twin[entry.index].astype(int)).max(axis=2)
        if not present:
            # a clean frame is the clean replay of that moment, pixel for pixel, in another run
            assert (diff > DIFF_LEVEL).sum() == 0, entry.index
            continue
        assert len(present) == 1
        bug = present[0]
        seen.add(bug)
        truth = entry.bugs[bug]
        mask = read_mask(reader.resolve(truth.mask))
        assert mask.any() and truth.severity >= VISIBLE_SHARE[bug]
        # outside the mask the bug frame and an independent clean replay agree to DIFF_LEVEL
        assert (diff[~mask] > DIFF_LEVEL).sum() == 0, (bug, entry.index)
        # and the mask is where they differ: most of its pixels changed
        assert (diff[mask] > DIFF_LEVEL).mean() > 0.5, (bug, entry.index)
        if bug == "camera_clipping":
            assert (mask & ~weapon).mean() >= VISIBLE_SHARE[bug]
    visible = reader.info.generator["visible_frames"]
    assert seen <= {bug for bug, count in visible.items() if count}
    # z-fighting shows only on impact marks, which a 4 s match may not leave on screen (or only
    # on frames other bug types took); every other bug type is visible and placed
    assert all(visible[bug] for bug in OPENARENA_BUGS if bug != "z_fighting"), visible
    assert seen >= set(OPENARENA_BUGS) - {"z_fighting"}
    # the first-person weapon is drawn on most frames (the followed bot may be dead on a few)
    assert np.mean([read_mask(reader.resolve(e.weapon_mask)).mean() > 0.01 for e in frames]) > 0.5


@needs_game
def test_ingest_takes_the_capture_unchanged(session: Path, tmp_path: Path) -> None:
    project = Project.init(tmp_path / "proj")
    report = ingest(project, [session])
    assert report.frames_added == FRAMES
    rows = list(iter_frames(project.connect()))
    assert {r.scene for r in rows} == {"oa_dm1"} and {r.split for r in rows} == {"train"}
    bug_rows = [r for r in rows if r.is_bug()]
    truth = json.loads((session / "session.json").read_text())["generator"]
    assert len(bug_rows) == truth["bug_frames"]
    # episodes go only where their bug is visible, kept apart by clean frames: a short, dense
    # session may fall a little short of the target, never above it
    assert 0.75 * round(PREVALENCE * FRAMES) <= truth["bug_frames"] <= round(PREVALENCE * FRAMES)
    for row in bug_rows:
        bug = next(name for name, t in row.ground_truth.items() if t["present"])
        assert read_mask(project.root / row.ground_truth[bug]["mask"]).any()
        assert row.aux["weapon_mask"] is not None


@needs_game
def test_a_game_past_its_time_limit_is_stopped_with_its_x_server(tmp_path: Path) -> None:
    engine = oa_engine.find_engine()
    args = oa_engine.base_cvars(tmp_path / "home", 160, 120) + ["+devmap", "oa_dm1"]  # runs until told to quit
    game = oa_engine.GameProcess(engine, args, tmp_path / "game.log")
    with pytest.raises(InputError, match="ran longer than 3 s"):
        with game:
            game.wait_exit(3)
    assert game.proc is not None and game.proc.poll() is not None
    assert oa_engine._live_group_members(game.proc.pid) == []  # the engine and Xvfb went with it
