"""``bugdet init`` and ``bugdet status``: create a project, and see what it holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from bugdet.cli.common import ProjectOption, SetOption, console, open_project
from bugdet.project import Project


def init(
    directory: Path = typer.Argument(..., help="Project directory to create."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing bugdet.yaml (data is kept)."),
) -> None:
    """Create a project directory with a commented default bugdet.yaml."""
    project = Project.init(directory, force=force)
    console.print(f"created {project.config_path}")


def status(project_dir: Path = ProjectOption, overrides: Optional[List[str]] = SetOption) -> None:
    """Show what the project holds: captures, frames, ground truth."""
    from bugdet.store.frames import ensure_frames_schema

    project = open_project(project_dir, overrides)
    conn = project.connect()
    ensure_frames_schema(conn)
    table = Table(title=f"{project.config.name} ({project.root})")
    for col in ("source", "kind", "status", "frames", "problems"):
        table.add_column(col)
    for row in conn.execute("SELECT uri, kind, status, frames_added, problems FROM sources ORDER BY id"):
        n_problems = len(json.loads(row["problems"]))
        table.add_row(row["uri"], row["kind"], row["status"], str(row["frames_added"]), str(n_problems))
    console.print(table)
    totals = conn.execute(
        "SELECT COUNT(*) AS n, SUM(ground_truth IS NOT NULL) AS gt, COUNT(DISTINCT NULLIF(scene, '')) AS scenes FROM frames"
    ).fetchone()
    console.print(f"frames: {totals['n']}  with ground truth: {totals['gt'] or 0}  scenes: {totals['scenes']}")


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("status")(status)
