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
    flag_window: int = typer.Option(1, "--flag-window", min=1, metavar="N", help="Flag a bug type when --flag-window-min of the last N frames were over its threshold (1 = off; on, a bug is flagged up to N-1 frames later). With --models the started service applies it; with --server the harness does, from the raw scores."),
    flag_window_min: int = typer.Option(1, "--flag-window-min", min=1, metavar="K", help="Frames of the --flag-window that must be over the threshold (1..N)."),
) -> None:
    """Automated playtest as an engine plugin: stream frames to the service, write an HTML report."""
    from bugdet.harness.playtest import run_playtest
    from bugdet.harness.report import summary, write_report
    from bugdet.playtest.bugs import parse_bug_list

    if (server is None) == (models is None):
        raise InputError("give exactly one of --server HOST:PORT or --models DIR")
    if flag_window_min > flag_window:
        raise InputError(f"--flag-window-min {flag_window_min} exceeds --flag-window {flag_window}")
    bug_list = parse_bug_list(bugs)
    window = {"flag_window": flag_window, "flag_window_min": flag_window_min}
    if models is not None:
        if not models.is_dir():
            raise InputError(f"{models}: no such models directory")
        from service.client import SpawnedServer

        # The service it starts applies the window in DetectStream, as it would for an engine.
        with SpawnedServer(str(models), "--flag-window", str(flag_window), "--flag-window-min", str(flag_window_min)) as spawned:
            run = run_playtest(spawned.address, scene, seed, frames, width, height, bug_list, prevalence, token,
                               **window, server_window=True)
    else:  # a running service keeps its own settings: the harness applies the window to the raw scores
        run = run_playtest(server, scene, seed, frames, width, height, bug_list, prevalence, token, **window)
    html_path, _ = write_report(run, out)
    from bugdet.review.flags import write_flag_session

    write_flag_session(run, out / "flags")  # for `bugdet review import-flags OUT/flags`
    any_pr = summary(run)["precision_recall"]["any"]
    console.print(f"wrote {html_path}: {len(run.frames)} frames, {sum(f.is_flagged for f in run.frames)} flagged, "
                  f"precision {any_pr['precision']}, recall {any_pr['recall']}")


def register(app: typer.Typer) -> None:
    app.command("harness")(harness)
