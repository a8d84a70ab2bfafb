"""Options and helpers every command shares."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from bugdet.project import Project

console = Console(stderr=True, soft_wrap=True)  # never wrap paths in logs

ProjectOption = typer.Option(
    Path("."), "--project", "-p", help="Project directory (holds bugdet.yaml and everything a run produces)."
)
SetOption = typer.Option(
    None, "--set", help="Override a config key for this run, e.g. --set ingest.stride=5 (repeatable)."
)


def open_project(root: Path, overrides: Optional[List[str]] = None, create: bool = False) -> Project:
    return Project.open(root, overrides or [], create=create)
