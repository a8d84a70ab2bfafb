"""The ``bugdet`` command.

Each command group lives in its own module exposing ``register(app)``; this module only wires
them together and turns :class:`~bugdet.errors.BugdetError` into one line on stderr and a
non-zero exit. Command modules import heavy libraries (torch, open_clip, panda3d) inside the
command functions so that ``bugdet --help`` stays instant.
"""

from __future__ import annotations

import importlib
import sys

import click
import typer

from bugdet import __version__
from bugdet.errors import BugdetError

#: Command modules, in the order their commands appear in ``--help``.
COMMAND_MODULES = (
    "bugdet.cli.project_cmd",
    "bugdet.cli.demo_cmd",
    "bugdet.cli.playtest_cmd",
    "bugdet.cli.openarena_cmd",
    "bugdet.cli.ingest_cmd",
    "bugdet.cli.segment_cmd",
    "bugdet.cli.filter_cmd",
    "bugdet.cli.augment_cmd",
    "bugdet.cli.detect_cmd",
    "bugdet.cli.export_cmd",
    "bugdet.cli.harness_cmd",
    "bugdet.cli.review_cmd",
    "bugdet.cli.registry_cmd",
    "bugdet.cli.nightly_cmd",
    "bugdet.cli.bench_cmd",  # keep last: benchmarks appear after the pipeline's commands
)

app = typer.Typer(
    name="bugdet",
    help="Weak-supervision visual bug detection for game QA: ingest gameplay, mine masks, train, serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"bugdet {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """bugdet: turn unlabeled gameplay into a visual bug detector with a handful of labels."""


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)

# Typer >= 0.20 vendors its own click, whose exceptions are not click's: catch both families.
_USAGE_ERRORS: tuple[type[Exception], ...] = (click.exceptions.ClickException,)
if hasattr(typer, "TyperException"):
    _USAGE_ERRORS += (typer.TyperException,)
_ABORTS = (click.exceptions.Abort, typer.Abort)
_EXITS = (click.exceptions.Exit, typer.Exit)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``bugdet`` script."""
    try:
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code:  # without standalone mode, click returns typer.Exit(n)'s code
            sys.exit(code)
    except BugdetError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(exc.exit_code)
    except _ABORTS:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except _USAGE_ERRORS as exc:
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            typer.echo(f"error: {exc}", err=True)
        sys.exit(getattr(exc, "exit_code", 2))
    except _EXITS as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
