"""``bugdet augment``: write self-supervised bug samples and their sample sheet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from bugdet.cli.common import ProjectOption, SetOption, console, open_project


def augment(
    bug: str = typer.Option(..., "--bug", "-b", help="Bug type: fppc, missing_texture, low_res_texture, "
                            "stretched_texture, z_fighting, camera_clipping, black_frame; or any type with labeled "
                            "train bug frames when augment.exemplars is mix or only."),
    n: int = typer.Option(200, "--n", min=1, help="Number of pairs (each pair = one positive + one negative sample)."),
    seed: int = typer.Option(0, "--seed", help="Seed: pair i depends only on (seed, i)."),
    weapon_source: Optional[str] = typer.Option(
        None, "--weapon-source", help="engine | prompt | auto (augment.weapon_source): where weapon masks come from."
    ),
    project_dir: Path = ProjectOption,
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the run summary as JSON here."),
    overrides: Optional[List[str]] = SetOption,
) -> None:
    """Make positive/negative pairs of one bug type from the mask bank and target frames."""
    from bugdet.augment.generate import write_samples
    from bugdet.errors import InputError
    from bugdet.progress import rich_progress

    flags = list(overrides or [])
    if weapon_source is not None:
        if weapon_source not in ("engine", "prompt", "auto"):
            raise InputError(f"--weapon-source must be engine, prompt or auto, not {weapon_source!r}")
        flags.append(f"augment.weapon_source={weapon_source}")
    project = open_project(project_dir, flags)
    with rich_progress(console) as bar:
        report = write_samples(project, bug, n, seed=seed, progress=bar)
    if report.source_origin == "all":
        console.print("[yellow]note:[/] no mask bank yet (`bugdet cluster`): sources are all stored masks")
    console.print(
        f"{report.pairs} {bug} pairs from {report.targets} targets and {report.sources} sources "
        f"(weapon masks: {report.weapon_source}) -> {report.out_dir}"
    )
    console.print(f"sample sheet: {report.sheet}")
    if json_out is not None:
        json_out.write_text(json.dumps(report.to_dict(), indent=1))


def register(app: typer.Typer) -> None:
    app.command("augment")(augment)
