"""``bugdet review``: serve the review app; ``bugdet review import-flags``: load a playtest's flags."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import List, Optional

import typer

from bugdet.cli.common import ProjectOption, SetOption, console, open_project
from bugdet.errors import InputError

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}

review_app = typer.Typer(
    help="Review app: testers refine mask clusters with text and geometry prompts and confirm detector flags.",
    invoke_without_command=True,
)


def _check_port(host: str, port: int) -> None:
    """Fail with one line before uvicorn starts, rather than with its traceback, when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise InputError(f"cannot listen on {host}:{port} ({exc.strerror}); pass another --port") from None


@review_app.callback(invoke_without_command=True)
def serve(
    ctx: typer.Context,
    project_dir: Path = ProjectOption,
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (default: this machine only)."),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="TCP port."),
    token: Optional[str] = typer.Option(
        None, "--token", envvar="BUGDET_REVIEW_TOKEN",
        help="Access token every request must carry (header, ?token= link or cookie). Use one on shared machines."),
    overrides: Optional[List[str]] = SetOption,
) -> None:
    """Serve the review app for a project (a local web page; no internet needed)."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from bugdet.review.app import create_app

    project = open_project(project_dir, overrides)
    if token is not None and not token.strip():
        raise InputError("--token is empty")
    if host not in LOCAL_HOSTS and token is None:
        console.print(f"[yellow]warning:[/] serving on {host} without --token: anyone who can reach this machine "
                      "can read the project and record decisions")
    _check_port(host, port)
    app = create_app(project, token, allowed_hosts=sorted(LOCAL_HOSTS | {"[::1]"}) if host in LOCAL_HOSTS else None)
    app.state.review.warm_up()
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    console.print(f"review app for {project.root} on {url}  (Ctrl+C to stop)")
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


@review_app.command("import-flags")
def import_flags(
    session_dir: Path = typer.Argument(..., help="Flag session folder written by a playtest harness run."),
    project_dir: Path = ProjectOption,
    overrides: Optional[List[str]] = SetOption,
) -> None:
    """Import the frames a detector flagged during a playtest, for review in the app."""
    from bugdet.review.flags import import_flag_session

    project = open_project(project_dir, overrides)
    if not session_dir.is_dir():
        raise InputError(f"{session_dir}: no such folder")
    console.print(import_flag_session(project, session_dir).describe())


def register(app: typer.Typer) -> None:
    app.add_typer(review_app, name="review")
