"""``bugdet augment`` end to end on a recorded playtest session: files, index, sheet, determinism,
one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bugdet.cli import main
from bugdet.imageio import read_mask, read_rgb

from test_augment import add_object_masks, playtest_project


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    p = playtest_project(tmp_path_factory.mktemp("cli"), "park", 2, frames=48, stride=2)
    add_object_masks(p)
    return p


def _run_ok(*args: str) -> None:
    main(list(args))


def _run_error(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    assert exc.value.code != 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_augment_writes_samples_index_and_sheet(project, capsys):
    _run_ok("augment", "-p", str(project.root), "--bug", "fppc", "--n", "5", "--seed", "3")
    out = project.root / "augment" / "fppc"
    rows = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert len(rows) == 10 and [r["label"] for r in rows] == [1, 0] * 5
    assert "no mask bank" in capsys.readouterr().err
    for pos, neg in zip(rows[::2], rows[1::2]):
        assert pos["pair"] == neg["pair"] and pos["bug_type"] == "fppc"
        pos_img, neg_img = read_rgb(out / pos["image"]), read_rgb(out / neg["image"])
        pos_mask, neg_mask = read_mask(out / pos["mask"]), read_mask(out / neg["mask"])
        assert pos_img.shape == (240, 320, 3) and pos_mask.any() and not neg_mask.any()
        assert pos_mask.sum() == pos["mask_pixels"]
        # the written pair differs only on the weapon pixels the paste hides
        differ = np.any(pos_img != neg_img, axis=2)
        assert differ.any() and (pos_mask & differ).sum() >= 0.9 * pos_mask.sum()
    sheet = read_rgb(out / "sheet.png")
    assert sheet.shape[0] > 2 * 120 and sheet.shape[1] >= 5 * 200
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pairs"] == 5 and summary["weapon_source"] == "engine" and summary["source_origin"] == "all"
    assert summary["params"]["min_cover"] == 0.15


def test_same_seed_same_bytes_other_seed_other_samples(project):
    out = project.root / "augment" / "z_fighting"
    images = []
    for seed in ("1", "1", "2"):
        _run_ok("augment", "-p", str(project.root), "--bug", "z_fighting", "--n", "3", "--seed", seed)
        images.append([(out / f"samples/{i:06d}_pos.png").read_bytes() for i in range(3)])
    assert images[0] == images[1] and images[0] != images[2]


def test_config_overrides_reach_the_objective(project):
    _run_ok("augment", "-p", str(project.root), "--bug", "fppc", "--n", "2",
            "--set", "augment.objectives={fppc: {min_cover: 0.4, min_outside: 0.1}}")
    summary = json.loads((project.root / "augment" / "fppc" / "summary.json").read_text())
    assert summary["params"]["min_cover"] == 0.4


def test_user_errors_are_one_line(project, capsys):
    assert "unknown bug type" in _run_error(capsys, "augment", "-p", str(project.root), "--bug", "nope", "--n", "2")
    assert "no weapon prompt" in _run_error(capsys, "augment", "-p", str(project.root), "--bug", "fppc",
                                            "--weapon-source", "prompt")
    assert "unknown parameter" in _run_error(capsys, "augment", "-p", str(project.root), "--bug", "fppc",
                                             "--set", "augment.objectives={fppc: {bogus: 1}}")
    assert "weapon-source" in _run_error(capsys, "augment", "-p", str(project.root), "--bug", "fppc",
                                         "--weapon-source", "psychic")
