"""``bugdet nightly``: the scheduled retrain-evaluate-publish job, and ``bugdet nightly init``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from bugdet.cli.common import console
from bugdet.errors import ConfigError

nightly_app = typer.Typer(
    help="Nightly job: ingest new captures, retrain, compare with the champion on a fixed set, publish if better.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@nightly_app.callback()
def nightly(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="The nightly file (see `bugdet nightly init`)."),
    stop_after: Optional[str] = typer.Option(None, "--stop-after", help="End this invocation after STEP; the next run resumes."),
    abandon: bool = typer.Option(False, "--abandon", help="Abandon an unfinished run instead of resuming it, then start a new one."),
) -> None:
    """Run the nightly job (or resume the interrupted one). One run at a time; a second exits at once."""
    if ctx.invoked_subcommand is not None:
        return
    if config is None:
        raise ConfigError("bugdet nightly needs --config nightly.yaml (write an example with `bugdet nightly init nightly.yaml`)")
    from bugdet.nightly.config import load_nightly_config
    from bugdet.nightly.runner import abandon_unfinished, run_nightly
    from bugdet.progress import rich_progress

    cfg = load_nightly_config(config)
    if abandon:
        dropped = abandon_unfinished(cfg)
        console.print(f"abandoned run {dropped.run_id}" if dropped else "no unfinished run to abandon")
    with rich_progress(console) as bar:
        result = run_nightly(cfg, progress=bar, announce=console.print, stop_after=stop_after)
    typer.echo(f"{result.state.run_id} {result.outcome or result.state.status} {result.report_json}")


@nightly_app.command("init")
def init(
    path: Path = typer.Argument(Path("nightly.yaml"), help="Where to write the example nightly file."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a commented example nightly file."""
    from bugdet.nightly.config import example_config_text

    if path.exists() and not force:
        raise ConfigError(f"{path}: already exists (use --force to overwrite)")
    path.write_text(example_config_text(), encoding="utf-8")
    console.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(nightly_app, name="nightly")
