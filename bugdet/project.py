"""A project directory: the one place that holds everything a run produces.

Layout (created on demand)::

    DIR/bugdet.yaml     the project file (``bugdet init`` writes it)
    DIR/bugdet.db       the manifest and every stage's tables (SQLite, WAL)
    DIR/frames/         ingested frames, content-addressed (``ab/abcdef....png``)
    DIR/groundtruth/    ground-truth masks carried in from capture sessions
    DIR/<stage>/        each later stage's outputs (masks, embeddings, models, reports)
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from bugdet.config import CONFIG_FILENAME, ProjectConfig, apply_overrides, default_config_text, load_config, parse_config
from bugdet.errors import ConfigError
from bugdet.store.database import connect


@dataclass
class Project:
    root: Path
    config: ProjectConfig

    @classmethod
    def init(cls, root: Path, force: bool = False, config: ProjectConfig | None = None) -> "Project":
        """Create ``root`` with a commented project file (defaults, or ``config``)."""
        root = Path(root)
        if root.exists() and not root.is_dir():
            raise ConfigError(f"{root}: exists and is not a directory")
        cfg_path = root / CONFIG_FILENAME
        if cfg_path.exists() and not force:
            raise ConfigError(f"{cfg_path}: already exists (use --force to overwrite)")
        root.mkdir(parents=True, exist_ok=True)
        cfg_path.write_text(default_config_text(config), encoding="utf-8")
        return cls.open(root)

    @classmethod
    def open(cls, root: Path, overrides: Iterable[str] = (), create: bool = False) -> "Project":
        """Open an existing project; with ``create`` a missing one is initialised first."""
        root = Path(root)
        if not (root / CONFIG_FILENAME).exists():
            if create:
                return cls.init(root, config=parse_config(apply_overrides({}, overrides)))
            if not root.exists():
                raise ConfigError(f"{root}: no such project directory (run `bugdet init {root}`)")
        return cls(root=root, config=load_config(root / CONFIG_FILENAME, overrides))

    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILENAME

    @property
    def db_path(self) -> Path:
        return self.root / "bugdet.db"

    @property
    def frames_dir(self) -> Path:
        return self.root / "frames"

    @property
    def groundtruth_dir(self) -> Path:
        return self.root / "groundtruth"

    def stage_dir(self, name: str) -> Path:
        """Directory for one stage's outputs, created on first use."""
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def connect(self) -> sqlite3.Connection:
        return connect(self.db_path)
