"""``bugdet registry``: list versions, promote, roll back the champion of a versioned model registry."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from bugdet.cli.common import console

registry_app = typer.Typer(help="The versioned model registry the service watches: list, promote, rollback.", no_args_is_help=True)
RegistryOption = typer.Option(..., "--registry", "-r", help="Registry directory (the one `bugdet serve --models` watches).")


@registry_app.command("list")
def list_versions(registry: Path = RegistryOption, model: Optional[str] = typer.Argument(None, help="One model (default: all).")) -> None:
    """Every version of every model; the champion is marked with *."""
    from bugdet.registry import Registry

    reg = Registry(registry)
    for name in [model] if model else reg.models():
        champion = reg.champion(name)
        console.print(f"[bold]{name}[/] (champion: {champion.version if champion else 'none'})")
        for v in reg.versions(name):
            mark = "*" if champion and v.path == champion.path else " "
            state = "" if v.valid else f"  [red]invalid: {v.problem}[/]"
            console.print(f" {mark} {v.version}  {v.created_at}{state}")


@registry_app.command("promote")
def promote(model: str = typer.Argument(...), version: str = typer.Argument(...), registry: Path = RegistryOption,
            reason: str = typer.Option("manual promotion", "--reason")) -> None:
    """Make VERSION the served champion (its checksums are verified first)."""
    from bugdet.registry import Registry

    champion = Registry(registry).promote(model, version, reason=reason)
    console.print(f"{model}: champion is {champion.version}")


@registry_app.command("rollback")
def rollback(model: str = typer.Argument(...), registry: Path = RegistryOption,
             to: Optional[str] = typer.Option(None, "--to", help="Version to go back to (default: the previous champion).")) -> None:
    """Switch the champion back to the previous one (or --to VERSION)."""
    from bugdet.registry import Registry

    champion = Registry(registry).rollback(model, to)
    console.print(f"{model}: champion is {champion.version} again")


@registry_app.command("history")
def history(model: str = typer.Argument(...), registry: Path = RegistryOption) -> None:
    """Every promotion and rollback, oldest first."""
    from bugdet.registry import Registry

    for event in Registry(registry).history(model):
        console.print(f"{event.get('at')}  {event.get('action'):8}  {event.get('previous')} -> {event.get('version')}  {event.get('reason', '')}")


def register(app: typer.Typer) -> None:
    app.add_typer(registry_app, name="registry")
