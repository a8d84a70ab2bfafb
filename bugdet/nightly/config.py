"""``nightly.yaml``: what the scheduled job ingests, where it publishes and when it promotes.

It is a file of its own (not a section of ``bugdet.yaml``) because it describes a deployment:
which drop folders a capture farm fills, which registry the service watches, the promotion
policy. Relative paths are resolved against the directory of the nightly file, so the job
behaves the same whatever directory a scheduler starts it in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, ValidationError

from bugdet.config import format_validation_error, read_yaml, render_commented_yaml
from bugdet.config_base import Section
from bugdet.errors import ConfigError


class SegmentStep(Section):
    backend: str | None = Field(None, description="Segmentation backend (opencv, sam, engine); null = the project's segment.backend.")
    splits: list[str] = Field(
        default_factory=lambda: ["train"],
        description="Splits whose new frames are segmented (mask sources for the objectives come from train frames).",
    )
    max_frames: int | None = Field(None, ge=1, description="Segment at most this many new frames per split per night (null = all).")


class TrainStep(Section):
    epochs: int | None = Field(None, ge=1, description="Training budget: epochs of the challenger (null = the project's detect.epochs).")
    steps_per_epoch: int | None = Field(None, ge=1, description="Optimiser steps per epoch (null = detect.steps_per_epoch).")
    objective_samples: int = Field(
        8, ge=0, description="Objective pairs drawn per bug type into a sample sheet for the report (0 = no sheet)."
    )


class EvalSet(Section):
    split: str = Field("test", description="The fixed evaluation set is drawn from frames of this split ...")
    scenes: list[str] = Field(default_factory=list, description="... of these scenes (empty = every scene) ...")
    max_frames: int | None = Field(None, ge=1, description="... at most this many (the first by id). Frozen at the first run.")


class Promotion(Section):
    metric: Literal["pr_auc", "f1", "precision_at_recall_0_5"] = Field(
        "pr_auc", description="Metric the challenger and the champion are compared on (mean over bug types)."
    )
    margin: float = Field(0.01, ge=0, description="The challenger's mean must beat the champion's by at least this much.")
    tolerance: float = Field(0.02, ge=0, description="No bug type may be worse than the champion's by more than this ...")
    per_type_tolerance: dict[str, float] = Field(default_factory=dict, description="... unless a type has its own tolerance here.")
    min_score: float = Field(0.0, ge=0, le=1, description="With no champion yet, the first challenger needs at least this mean.")


class NightlyConfig(Section):
    project: str = Field(..., description="Project directory (holds bugdet.yaml); relative to this file.")
    captures: list[str] = Field(
        default_factory=list,
        description="Captures to ingest: session dirs, videos, frame folders, or drop folders whose entries are captures.",
    )
    registry: str = Field(..., description="Model registry directory (point `bugdet serve --models` at it); relative to this file.")
    model_name: str = Field("detector", description="Model name in the registry and in the served packages.")
    state_dir: str | None = Field(None, description="Run states, reports, the frozen eval set and the lock; null = PROJECT/nightly.")
    set: list[str] = Field(
        default_factory=list, description="Project config overrides for the nightly run, e.g. detect.mode=multitask."
    )
    segment: SegmentStep = Field(default_factory=SegmentStep)
    train: TrainStep = Field(default_factory=TrainStep)
    eval: EvalSet = Field(default_factory=EvalSet)
    promotion: Promotion = Field(default_factory=Promotion)

    #: Directory relative paths are resolved against (the nightly file's, set by :func:`load_nightly_config`).
    _base_dir: Path = PrivateAttr(default_factory=Path.cwd)

    def path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self._base_dir / p

    @property
    def project_dir(self) -> Path:
        return self.path(self.project)

    @property
    def registry_dir(self) -> Path:
        return self.path(self.registry)

    @property
    def state_path(self) -> Path:
        return self.path(self.state_dir) if self.state_dir else self.project_dir / "nightly"

    def capture_paths(self) -> list[Path]:
        return [self.path(c) for c in self.captures]


def load_nightly_config(path: Path) -> NightlyConfig:
    path = Path(path)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    try:
        cfg = NightlyConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(str(path), err)) from None
    cfg._base_dir = path.resolve().parent
    return cfg


def example_config_text() -> str:
    """A commented nightly.yaml with every key (``bugdet nightly init``)."""
    example = NightlyConfig(project="project", registry="registry", captures=["drop/"])
    text = render_commented_yaml(example)
    header = ("# bugdet nightly job: `bugdet nightly --config nightly.yaml` (run it from cron / a CI scheduler).\n"
              "# Relative paths are relative to this file.\n")
    return header + text + "\n"
