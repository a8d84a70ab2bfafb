"""Benchmarks: one module per ``bugdet bench ...`` command, each writing its measurements as JSON.

The rule: benchmark code lives here and imports the stages it measures; no stage imports
anything from this package. Each module (or subpackage, for the quality protocol) exposes
``register(bench_app)``, and :mod:`bugdet.cli.bench_cmd` lists them. Speed and quality targets
are measured here, never in timed tests.
"""
