"""``bugdet bench ...``: benchmarks that write JSON. Speed targets live here, never in tests.

Each benchmark module exposes ``register(bench_app)``; add it to ``BENCH_MODULES``.
"""

from __future__ import annotations

import importlib

import typer

BENCH_MODULES: tuple[str, ...] = (
    "bugdet.segment.bench_cmd",
    "bugdet.playtest.bench",
    "bugdet.cluster.bench",
    "bugdet.bench.footage",
    "bugdet.scale.bench",
    "bugdet.augment.bench",
    "bugdet.detect.bench",
    "bugdet.export.bench_service",
)

bench_app = typer.Typer(help="Benchmarks; each writes its measurements as JSON (--json PATH).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    for module in BENCH_MODULES:
        importlib.import_module(module).register(bench_app)
    app.add_typer(bench_app, name="bench")
