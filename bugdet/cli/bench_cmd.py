"""``bugdet bench ...``: benchmarks that write JSON. Speed targets live here, never in tests.

Each benchmark module (in :mod:`bugdet.bench`) exposes ``register(bench_app)``; add it to ``BENCH_MODULES``.
"""

from __future__ import annotations

import importlib

import typer

BENCH_MODULES: tuple[str, ...] = (
    "bugdet.bench.segment.command",
    "bugdet.bench.playtest",
    "bugdet.bench.pipeline",
    "bugdet.bench.footage",
    "bugdet.bench.scale",
    "bugdet.bench.augment",
    "bugdet.bench.quality.command",
    "bugdet.bench.quality.realism",
    "bugdet.bench.quality.window",
    "bugdet.bench.service",
)

bench_app = typer.Typer(help="Benchmarks; each writes its measurements as JSON (--json PATH).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    for module in BENCH_MODULES:
        importlib.import_module(module).register(bench_app)
    app.add_typer(bench_app, name="bench")
