"""``bugdet openarena record``: capture sessions from the real OpenArena (ioquake3) engine.

The game runs as a subprocess under ``xvfb-run``; nothing is imported from it, so ``bugdet
--help`` stays instant and a machine without the game gets one ``error:`` line naming the apt
packages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from bugdet.cli.common import console

openarena_app = typer.Typer(
    help="The OpenArena world (real ioquake3 engine, bots, injected engine bugs): record capture sessions.",
    no_args_is_help=True,
)


@openarena_app.command("record")
def record_cmd(
    out_dir: Path = typer.Argument(..., help="Session directory to create."),
    map_name: str = typer.Option("oa_dm1", "--map", help="Map: oa_dm1..oa_dm4 train, oa_dm5 val, oa_dm6/oa_dm7 (and any other) test."),
    frames: int = typer.Option(300, "--frames", help="Number of frames."),
    prevalence: float = typer.Option(0.0, "--prevalence", help="Fraction of frames that show a bug (0 = clean session)."),
    bugs: str = typer.Option("", "--bugs", help="Comma-separated bug types or 'all': camera_clipping, missing_texture, low_res_texture, stretched_texture, z_fighting, black_frame."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bots, the broken textures and where bug episodes go."),
    fps: float = typer.Option(20.0, "--fps", help="Frames per second of game time."),
    width: int = typer.Option(320, "--width", help="Frame width in pixels."),
    height: int = typer.Option(240, "--height", help="Frame height in pixels."),
    bots: int = typer.Option(3, "--bots", help="Bots in the match; the camera follows the first."),
    demo: Optional[Path] = typer.Option(None, "--demo", help="Re-render a demo a session kept (OUT/openarena/bugdet.dm_71) instead of playing a new match; --map must be its map."),
    workers: int = typer.Option(0, "--workers", help="Replays rendered at once (0 = one per CPU core, at most 4)."),
) -> None:
    """Record an OpenArena session (frames, weapon masks, per-bug ground truth from clean twin replays)."""
    from bugdet.progress import rich_progress
    from bugdet.worlds.openarena.bugs import parse_bugs
    from bugdet.worlds.openarena.capture import OpenArenaCapture, OpenArenaSpec

    spec = OpenArenaSpec(map=map_name, seed=seed, frames=frames, fps=fps, width=width, height=height,
                         prevalence=prevalence, bugs=parse_bugs(bugs), bots=bots, workers=workers, demo=demo)
    with rich_progress(console) as bar:
        capture = OpenArenaCapture(spec, progress=bar)
        info = capture.record(out_dir)
    t = capture.timings
    console.print(
        f"wrote {info.frame_count} frames to {out_dir} (split {info.split}, "
        f"{info.generator['bug_frames']} bug frames, prevalence {info.generator['achieved_prevalence']:.3f}); "
        f"{t.wall_s:.1f} s, {info.frame_count / max(t.wall_s, 1e-9):.1f} frames/s including the clean twin replays"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(openarena_app, name="openarena")
