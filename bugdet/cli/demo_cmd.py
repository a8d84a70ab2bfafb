"""``bugdet demo``: the end-to-end demo (README's main job)."""

from __future__ import annotations

from pathlib import Path

import typer

from bugdet.cli.common import console


def demo(
    project_dir: Path = typer.Option(Path("runs/demo"), "--project", "-p", help="Where the demo project is written."),
) -> None:
    """Run every pipeline stage on a built-in capture and leave a project to inspect."""
    from bugdet.demo import run_demo
    from bugdet.progress import rich_progress

    with rich_progress(console) as bar:
        result = run_demo(project_dir, progress=bar)
    for step in result.steps:
        console.print(f"[green]✓[/] {step}")
    console.print(f"demo project: {result.project.root}")
    console.print(f"next: `bugdet review -p {result.project.root}` to review the flagged frames and the clusters in a browser; "
                  f"`bugdet serve --models {result.project.root / 'registry'}` serves the champion")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
