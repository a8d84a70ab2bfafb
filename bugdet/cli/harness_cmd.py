"""``bugdet harness``: an automated playtest that streams to the detection service like an engine plugin."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from bugdet.cli.common import console
from bugdet.errors import InputError


def harness(
    out: Path = typer.Option(..., "--out", help="Directory for report.html and report.json."),
    server: Optional[str] = typer.Option(None, "--server", help="HOST:PORT of a running service."),
    models: Optional[Path] = typer.Option(None, "--models", help="Or: a models directory; a service is started on 127.0.0.1 for the run."),
    scene: str = typer.Option("park", "--scene", help="Playtest level: park or indoor."),
    seed: int = typer.Option(0, "--seed", help="Playtest seed (route, bugs, look)."),
    frames: int = typer.Option(120, "--frames", min=1, help="Frames to play."),
    width: int = typer.Option(320, "--width", help="Render width."),
    height: int = typer.Option(240, "--height", help="Render height."),
    bugs: str = typer.Option("all", "--bugs", help="Bug types the playtest injects (comma-separated, or all)."),
    prevalence: float = typer.Option(0.2, "--prevalence", help="Share of frames with an injected bug (0..0.5)."),
    token: Optional[str] = typer.Option(None, "--token", envvar="BUGDET_SERVE_TOKEN", help="Bearer token for the service."),
) -> None:
    """Automated playtest as an engine plugin: stream frames to the service, write an HTML report."""
    from bugdet.harness.playtest import run_playtest
    from bugdet.harness.report import summary, write_report
    from bugdet.playtest.bugs import parse_bug_list

    if (server is None) == (models is None):
        raise InputError("give exactly one of --server HOST:PORT or --models DIR")
    bug_list = parse_bug_list(bugs)
    if models is not None:
        if not models.is_dir():
            raise InputError(f"{models}: no such models directory")
        from service.client import SpawnedServer

        with SpawnedServer(str(models)) as spawned:
            run = run_playtest(spawned.address, scene, seed, frames, width, height, bug_list, prevalence, token)
    else:
        run = run_playtest(server, scene, seed, frames, width, height, bug_list, prevalence, token)
    html_path, _ = write_report(run, out)
    from bugdet.review.flags import write_flag_session  # for `bugdet review import-flags OUT/flags`
    write_flag_session(run, out / "flags")
    any_pr = summary(run)["precision_recall"]["any"]
    console.print(f"wrote {html_path}: {len(run.frames)} frames, {sum(f.is_flagged for f in run.frames)} flagged, "
                  f"precision {any_pr['precision']}, recall {any_pr['recall']}")


def register(app: typer.Typer) -> None:
    app.command("harness")(harness)
