"""``bugdet playtest ...``: record sessions in the reference playtest world, make contact sheets.

Panda3D is imported inside the commands so ``bugdet --help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from bugdet.cli.common import console

playtest_app = typer.Typer(help="The reference playtest world: record sessions with exact bug ground truth.", no_args_is_help=True)

SceneOption = typer.Option("park", "--scene", help="Level: park (outdoor) or indoor.")
SeedOption = typer.Option(0, "--seed", help="Session seed (layout, route, bugs). <100000 train, <200000 val, else test.")
VariantOption = typer.Option(None, "--variant", help="Scene variant (park: summer/dry/autumn, indoor: office/warehouse/bunker); default drawn for the seed's split.")
BugsOption = typer.Option("", "--bugs", help="Comma-separated bug types to switch on, or 'all'.")


def _spec(scene: str, seed: int, frames: int, width: int, height: int, prevalence: float, bugs: str,
          variant: Optional[str], fov: Optional[float], weapon: Optional[str]):
    from bugdet.playtest.bugs import parse_bug_list
    from bugdet.playtest.session import PlaytestSpec

    spec = PlaytestSpec(scene=scene, seed=seed, frames=frames, width=width, height=height, prevalence=prevalence,
                        bugs=parse_bug_list(bugs), variant=variant, fov=fov, weapon=weapon)
    spec.validate()
    return spec


@playtest_app.command("record")
def record_cmd(
    out_dir: Path = typer.Argument(..., help="Session directory to create."),
    scene: str = SceneOption,
    seed: int = SeedOption,
    frames: int = typer.Option(300, "--frames", help="Number of frames."),
    width: int = typer.Option(320, "--width", help="Frame width in pixels."),
    height: int = typer.Option(240, "--height", help="Frame height in pixels."),
    prevalence: float = typer.Option(0.0, "--prevalence", help="Fraction of frames that show a bug (0 = clean session)."),
    bugs: str = BugsOption,
    variant: Optional[str] = VariantOption,
    fov: Optional[float] = typer.Option(None, "--fov", help="Horizontal field of view in degrees (default drawn per seed)."),
    weapon: Optional[str] = typer.Option(None, "--weapon", help="rifle, shotgun or pistol (default drawn per seed)."),
    mp4: bool = typer.Option(False, "--mp4", help="Also write session.mp4."),
    jpeg: bool = typer.Option(False, "--jpeg", help="Write frames as JPEG instead of PNG."),
) -> None:
    """Record a playtest session (frames, object IDs, weapon masks, per-bug ground truth)."""
    from bugdet.playtest.recorder import record
    from bugdet.progress import rich_progress

    spec = _spec(scene, seed, frames, width, height, prevalence, bugs, variant, fov, weapon)
    with rich_progress(console) as bar:
        info = record(spec, out_dir, jpeg=jpeg, mp4=mp4, progress=bar)
    console.print(f"wrote {info.frame_count} frames to {out_dir} (split {info.split}, scene {info.scene})")


@playtest_app.command("contact-sheet")
def contact_sheet_cmd(
    out_png: Path = typer.Argument(..., help="PNG to write."),
    scene: str = SceneOption,
    seed: int = SeedOption,
    frames: int = typer.Option(900, "--frames", help="Frames to run while collecting examples."),
    width: int = typer.Option(320, "--width", help="Frame width in pixels."),
    height: int = typer.Option(240, "--height", help="Frame height in pixels."),
    prevalence: float = typer.Option(0.2, "--prevalence", help="Bug prevalence while collecting examples."),
    bugs: str = typer.Option("all", "--bugs", help="Comma-separated bug types, or 'all'."),
    variant: Optional[str] = VariantOption,
    per_bug: int = typer.Option(1, "--per-bug", help="Examples per bug type."),
) -> None:
    """Bug renders beside the correct render of the same moment, with masks and severities."""
    from bugdet.playtest.contact_sheet import make_contact_sheet
    from bugdet.progress import rich_progress

    spec = _spec(scene, seed, frames, width, height, prevalence, bugs, variant, None, None)
    with rich_progress(console) as bar:
        rows = make_contact_sheet(spec, out_png, per_bug=per_bug, progress=bar)
    console.print(f"wrote {out_png} ({rows} rows)")


def register(app: typer.Typer) -> None:
    app.add_typer(playtest_app, name="playtest")
