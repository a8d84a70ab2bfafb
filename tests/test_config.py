from pathlib import Path

import pytest
import yaml

from bugdet.config import ProjectConfig, apply_overrides, default_config_text, load_config, parse_config
from bugdet.errors import ConfigError
from bugdet.project import Project


def test_defaults_round_trip_through_the_commented_file(tmp_path: Path) -> None:
    text = default_config_text()
    assert "# Keep every Nth frame of a capture." in text
    assert parse_config(yaml.safe_load(text)) == ProjectConfig()


def test_unknown_key_is_rejected_with_its_path() -> None:
    with pytest.raises(ConfigError, match=r"ingest\.near_duplicate\.enabeld: Extra inputs are not permitted"):
        parse_config({"ingest": {"near_duplicate": {"enabeld": True}}})


def test_wrong_type_is_rejected_with_its_path() -> None:
    with pytest.raises(ConfigError, match=r"ingest\.stride: Input should be a valid integer"):
        parse_config({"ingest": {"stride": "often"}})
    with pytest.raises(ConfigError, match=r"ingest\.stride: Input should be greater than or equal to 1"):
        parse_config({"ingest": {"stride": 0}})


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        parse_config(["a", "b"])  # type: ignore[arg-type]


def test_overrides_parse_values_as_yaml_and_win_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bugdet.yaml"
    path.write_text("ingest:\n  stride: 3\n")
    cfg = load_config(path, ["ingest.stride=7", "ingest.near_duplicate.enabled=true", "name=nightly"])
    assert cfg.ingest.stride == 7 and cfg.ingest.near_duplicate.enabled is True and cfg.name == "nightly"
    with pytest.raises(ConfigError, match="expected KEY.PATH=VALUE"):
        apply_overrides({}, ["ingest.stride"])
    with pytest.raises(ConfigError, match="ingest.stride: Input should be a valid integer"):
        load_config(path, ["ingest.stride=fast"])


def test_invalid_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bugdet.yaml"
    path.write_text("ingest:\n  stride: [1,\n")
    with pytest.raises(ConfigError, match=r"bugdet.yaml: line \d+ invalid YAML"):
        load_config(path)


def test_init_refuses_to_overwrite_and_open_requires_a_project(tmp_path: Path) -> None:
    Project.init(tmp_path / "p")
    with pytest.raises(ConfigError, match="already exists"):
        Project.init(tmp_path / "p")
    Project.init(tmp_path / "p", force=True)
    with pytest.raises(ConfigError, match="no such project directory"):
        Project.open(tmp_path / "missing")


def test_a_preset_fills_in_what_the_project_does_not_set(tmp_path) -> None:
    from bugdet.config import parse_config, preset_names

    assert {"openarena", "playtest"} <= set(preset_names())
    for name in preset_names():  # every shipped preset is a valid partial project file
        parse_config({"preset": name})
    cfg = parse_config({"preset": "openarena", "augment": {"exemplar_prob": 0.3}})
    assert cfg.augment.exemplars == "mix" and cfg.augment.exemplar_prob == 0.3 and cfg.segment.backend == "opencv"
    own = tmp_path / "studio.yaml"
    own.write_text("augment:\n  objectives:\n    missing_texture: {min_change: 9.0}\n")
    cfg = parse_config({"preset": str(own)})
    assert cfg.augment.objectives == {"missing_texture": {"min_change": 9.0}}


def test_a_bad_preset_is_one_clear_error(tmp_path) -> None:
    from bugdet.config import parse_config
    from bugdet.errors import ConfigError

    with pytest.raises(ConfigError, match="neither a shipped preset"):
        parse_config({"preset": "no-such-world"})
    chained = tmp_path / "chained.yaml"
    chained.write_text("preset: openarena\n")
    with pytest.raises(ConfigError, match="cannot name another preset"):
        parse_config({"preset": str(chained)})
    typo = tmp_path / "typo.yaml"
    typo.write_text("augment:\n  exemplarz: mix\n")
    with pytest.raises(ConfigError, match="augment.exemplarz"):
        parse_config({"preset": str(typo)})
