"""The project file (``bugdet.yaml``): one YAML document validated by pydantic.

Every stage owns one section, declared as a pydantic model next to the stage's code and
attached to :class:`ProjectConfig` here. Unknown keys and wrong types are rejected with the
offending key's dotted path, so a typo in a nightly job's config fails loudly instead of being
ignored. ``bugdet init`` writes the defaults with each field's description as a comment, so the
documentation of a setting lives in exactly one place: its ``Field(description=...)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import BaseModel, Field, ValidationError

from bugdet.config_base import Section
from bugdet.errors import ConfigError
from bugdet.ingest.config import IngestConfig
from bugdet.segment.config import SegmentConfig
from bugdet.export.config import ExportConfig
from bugdet.cluster.config import FilterConfig
from bugdet.detect.config import DetectConfig
from bugdet.augment.config import AugmentConfig
from bugdet.scale.config import ScaleConfig

CONFIG_FILENAME = "bugdet.yaml"


class ProjectConfig(Section):
    """Root of ``bugdet.yaml``."""

    name: str = Field("bugdet-project", description="Human-readable project name, shown in reports.")
    preset: str | None = Field(
        None,
        description="Settings measured for one engine or world, as data: a name from bugdet/presets (openarena, "
        "playtest) or a YAML file. Its keys fill in what this file does not set; this file's own keys win.",
    )
    device: str = Field("auto", description="Compute device: auto (CUDA when present), cpu or cuda.")
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    segment: SegmentConfig = Field(default_factory=SegmentConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    filter: FilterConfig = Field(default_factory=FilterConfig)
    detect: DetectConfig = Field(default_factory=DetectConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    scale: ScaleConfig = Field(default_factory=ScaleConfig)


def format_validation_error(source: str, err: ValidationError) -> str:
    first = err.errors()[0]
    path = ".".join(str(p) for p in first["loc"]) or "<root>"
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{source}: {path}: {first['msg']}{more}"


PRESETS_DIR = Path(__file__).resolve().parent / "presets"


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def read_preset(name: str) -> dict[str, Any]:
    """A preset's mapping: a shipped name (bugdet/presets/<name>.yaml) or a YAML file path."""
    path = PRESETS_DIR / f"{name}.yaml" if "/" not in name and not name.endswith((".yaml", ".yml")) else Path(name)
    if not path.is_file():
        raise ConfigError(f"preset: {name!r} is neither a shipped preset ({', '.join(preset_names())}) nor a YAML file")
    data = read_yaml(path)
    if not isinstance(data, dict) or "preset" in data:
        raise ConfigError(f"preset {name!r}: a preset is a mapping of project settings and cannot name another preset")
    return data


def _merged(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, section by section (a mapping in both is merged, anything else replaced)."""
    out = dict(base)
    for key, value in top.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def with_preset(data: dict[str, Any]) -> dict[str, Any]:
    """The project's mapping over its preset's (when it names one)."""
    name = data.get("preset")
    return _merged(read_preset(str(name)), data) if name else data


def parse_config(data: dict[str, Any] | None, source: str = CONFIG_FILENAME) -> ProjectConfig:
    """Validate a parsed YAML mapping (over its preset's, if it names one); raise
    :class:`ConfigError` naming the bad key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(data).__name__}")
    data = with_preset(data)
    try:
        return ProjectConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(source, err)) from None


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such project file (run `bugdet init` first)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} invalid YAML: {getattr(exc, 'problem', exc)}") from None


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML) to a raw config mapping."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected KEY.PATH=VALUE")
        key, raw = item.split("=", 1)
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"override {item!r}: empty key")
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part} is not a section")
            node = child
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None
    return data


def load_config(path: Path, overrides: Iterable[str] = ()) -> ProjectConfig:
    data = apply_overrides(read_yaml(path), overrides)
    return parse_config(data, source=str(path))


def _yaml_scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def render_commented_yaml(model: BaseModel, indent: int = 0) -> str:
    """Render a config model as YAML with each field's description as a comment above it."""
    pad = "  " * indent
    lines: list[str] = []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if field.description:
            lines.append(f"{pad}# {field.description}")
        if isinstance(value, BaseModel):
            lines.append(f"{pad}{name}:")
            lines.append(render_commented_yaml(value, indent + 1).rstrip("\n"))
        else:
            dumped = value.model_dump() if isinstance(value, BaseModel) else value
            lines.append(f"{pad}{name}: {_yaml_scalar(dumped)}")
    return "\n".join(lines) + "\n"


def default_config_text(config: ProjectConfig | None = None) -> str:
    """The project file for ``config`` (default: all defaults), every key with its comment."""
    header = (
        "# bugdet project file. Every key is optional; shown here with its value.\n"
        "# CLI flags and `--set section.key=value` override what is written here.\n"
    )
    return header + render_commented_yaml(config or ProjectConfig())
