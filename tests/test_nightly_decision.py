"""The promotion rule, and the nightly file's validation, with plain numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from bugdet.errors import ConfigError
from bugdet.nightly.config import NightlyConfig, Promotion, example_config_text, load_nightly_config
from bugdet.nightly.decision import decide

POLICY = Promotion(metric="pr_auc", margin=0.02, tolerance=0.03, per_type_tolerance={"z_fighting": 0.0})


def m(**values: float) -> dict[str, dict[str, float]]:
    return {t: {"pr_auc": v, "f1": v / 2} for t, v in values.items()}


def test_first_model_is_promoted_above_the_floor_only() -> None:
    assert decide(m(fppc=0.4), None, POLICY).promote
    floor = Promotion(min_score=0.5)
    d = decide(m(fppc=0.4), None, floor)
    assert not d.promote and "below min_score" in d.reason


def test_must_beat_the_mean_by_the_margin() -> None:
    assert decide(m(fppc=0.53), m(fppc=0.50), POLICY).promote
    d = decide(m(fppc=0.51), m(fppc=0.50), POLICY)
    assert not d.promote and "margin" in d.reason
    assert not decide(m(fppc=0.50), m(fppc=0.50), POLICY).promote  # an identical model is never "better"


def test_no_bug_type_may_regress_beyond_its_tolerance() -> None:
    # Much better on average, but fppc lost 0.05 > 0.03: refused, and the reason names the type.
    d = decide(m(fppc=0.45, missing_texture=0.9), m(fppc=0.50, missing_texture=0.5), POLICY)
    assert not d.promote and "fppc" in d.reason
    assert [c.bug_type for c in d.per_type if c.regressed] == ["fppc"]
    # Within tolerance (0.02 < 0.03) and better on average: promoted.
    assert decide(m(fppc=0.48, missing_texture=0.9), m(fppc=0.50, missing_texture=0.5), POLICY).promote
    # A per-type tolerance overrides the default: z_fighting may not drop at all.
    assert not decide(m(z_fighting=0.79, fppc=0.9), m(z_fighting=0.80, fppc=0.5), POLICY).promote


def test_other_metric_and_missing_values() -> None:
    f1 = Promotion(metric="f1", margin=0.0, tolerance=0.0)
    assert decide(m(fppc=0.6), m(fppc=0.5), f1).promote  # f1 = 0.30 vs 0.25
    d = decide({}, m(fppc=0.5), POLICY)
    assert not d.promote and "no pr_auc" in d.reason
    d = decide(m(fppc=0.9), m(black_frame=0.5), POLICY)
    assert not d.promote and "both models" in d.reason
    d = decide({"fppc": {"pr_auc": float("nan")}}, None, POLICY)
    assert not d.promote
    assert decide(m(fppc=0.9), m(fppc=0.5), POLICY).to_dict()["per_type"][0]["regressed"] is False


def test_nightly_file_resolves_paths_and_rejects_typos(tmp_path: Path) -> None:
    (tmp_path / "jobs").mkdir()
    path = tmp_path / "jobs" / "nightly.yaml"
    path.write_text("project: ../proj\nregistry: /srv/registry\ncaptures: [drop]\npromotion: {margin: 0.05}\n")
    cfg = load_nightly_config(path)
    assert cfg.project_dir == tmp_path / "jobs" / ".." / "proj"
    assert cfg.registry_dir == Path("/srv/registry")
    assert cfg.capture_paths() == [tmp_path / "jobs" / "drop"]
    assert cfg.state_path == cfg.project_dir / "nightly"
    assert cfg.promotion.margin == 0.05
    path.write_text("project: p\nregistry: r\npromotion: {margn: 0.05}\n")
    with pytest.raises(ConfigError, match="promotion.margn"):
        load_nightly_config(path)
    path.write_text("registry: r\n")
    with pytest.raises(ConfigError, match="project"):
        load_nightly_config(path)
    # The example written by `bugdet nightly init` is itself a valid nightly file.
    path.write_text(example_config_text())
    assert isinstance(load_nightly_config(path), NightlyConfig)


def test_nightly_init_writes_the_example_and_config_is_required(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bugdet.cli import app

    runner = CliRunner()
    target = tmp_path / "nightly.yaml"
    assert runner.invoke(app, ["nightly", "init", str(target)]).exit_code == 0
    assert "promotion:" in target.read_text() and load_nightly_config(target).model_name == "detector"
    again = runner.invoke(app, ["nightly", "init", str(target)])
    assert again.exit_code != 0 and "already exists" in str(again.exception)
    missing = runner.invoke(app, ["nightly"])
    assert missing.exit_code != 0 and "--config" in str(missing.exception)


def test_drop_folders_expand_to_their_captures(tmp_path: Path) -> None:
    from bugdet.errors import InputError
    from bugdet.nightly.steps import expand_captures

    frames = tmp_path / "frames-only"
    frames.mkdir()
    (frames / "0001.png").write_bytes(b"")
    drop = tmp_path / "drop"
    for name in ("b-session", "a-frames"):
        (drop / name).mkdir(parents=True)
    (drop / "b-session" / "session.json").write_text("{}")
    (drop / "c.mp4").write_bytes(b"")
    (drop / ".partial-upload").mkdir()
    session = drop / "b-session"
    assert expand_captures([frames, drop, session]) == [frames, drop / "a-frames", drop / "b-session", drop / "c.mp4", session]
    with pytest.raises(InputError, match="no such file"):
        expand_captures([tmp_path / "missing"])
