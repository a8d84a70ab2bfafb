"""``bugdet ingest``: bring captures into a project."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from bugdet.cli.common import ProjectOption, SetOption, console, open_project
from bugdet.errors import InputError


def ingest(
    inputs: List[Path] = typer.Argument(..., help="Videos (mp4/avi/mkv), folders of PNG/JPEG frames, or capture sessions."),
    project_dir: Path = ProjectOption,
    stride: Optional[int] = typer.Option(None, "--stride", min=1, help="Keep every Nth frame (ingest.stride)."),
    every_seconds: Optional[float] = typer.Option(None, "--every-seconds", help="Keep one frame per T seconds (ingest.every_seconds)."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", min=1, help="At most N frames per capture."),
    skip_near_duplicates: Optional[bool] = typer.Option(
        None, "--skip-near-duplicates/--keep-near-duplicates", help="Skip frames nearly identical to the previous one."
    ),
    split: str = typer.Option("", "--split", help="Tag frames as train/val/test (sessions carry their own)."),
    init: bool = typer.Option(False, "--init", help="Create the project directory if it does not exist."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the ingest report as JSON here."),
    overrides: Optional[List[str]] = SetOption,
) -> None:
    """Ingest captures. Re-ingesting a capture adds nothing; an interrupted ingest resumes."""
    from bugdet.ingest.ingester import ingest as run_ingest
    from rich.markup import escape

    from bugdet.progress import rich_progress

    flags = list(overrides or [])
    for key, value in (("stride", stride), ("every_seconds", every_seconds), ("max_frames", max_frames),
                       ("near_duplicate.enabled", skip_near_duplicates)):
        if value is not None:
            flags.append(f"ingest.{key}={json.dumps(value)}")
    project = open_project(project_dir, flags, create=init)
    with rich_progress(console) as bar:
        report = run_ingest(project, inputs, split=split, progress=bar)
    for src in report.sources:
        if src.status == "failed":
            console.print(f"{src.path}: [red]failed[/]: {src.problems[-1]}")
            continue
        line = f"{src.path}: {src.status}, {src.frames_added} new frames ({src.frames_existing} already stored"
        line += f", {src.near_duplicates} near-duplicates skipped)" if src.near_duplicates else ")"
        console.print(line)
        for problem in src.problems:
            console.print(f"  [yellow]warning:[/] {problem}")
        if src.split_conflicts:
            console.print(
                f"  [yellow]warning:[/] {src.split_conflicts} frames are identical to frames already stored in another "
                f"split and keep their first split (e.g. {escape(', '.join(src.split_conflict_examples))})")
    if json_out is not None:
        json_out.write_text(json.dumps(report.to_dict(), indent=1))
    console.print(f"{report.frames_added} frames added to {project.root}")
    if report.failed:
        raise InputError(f"{len(report.failed)} of {len(report.sources)} captures could not be ingested (see above)")


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)
