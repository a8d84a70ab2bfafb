"""``bugdet bench quality``: run the low-label benchmark and write its JSON and HTML report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def quality(
    json_path: Path = typer.Option(Path("bench-results/quality.json"), "--json", help="Where the measurements go."),
    report: Optional[Path] = typer.Option(None, "--report", help="HTML report path (default: next to --json)."),
    quick: bool = typer.Option(False, "--quick", help="One seed, smaller captures, no multi-task. playtest: k in {0, 10, 25}, under 15 minutes on 2 cores, recording included; openarena: k in {0, 10}, enriched splits, ~8 minutes recording + ~30 training."),
    workdir: Path = typer.Option(Path("bench-results/quality-work"), "--workdir", help="Captures and the bench project (reused)."),
    world: str = typer.Option("playtest", "--world", help="Whose captures: playtest (Panda3D, held-out seeds and scene variants) or openarena (ioquake3, held-out maps; needs the game)."),
    bugs: Optional[str] = typer.Option(None, "--bugs", help="Comma-separated bug types (default: fppc on playtest, all six on openarena)."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Comma-separated seeds (default 0,1,2; quick: 0)."),
    ks: Optional[str] = typer.Option(None, "--ks", help="Comma-separated labeled-bug budgets (default 0,5,10,25,50)."),
    methods: Optional[str] = typer.Option(None, "--methods", help="Comma-separated methods: floor, supervised, objective, pretrain_finetune, exemplar_finetune, multitask, self_training, knn_self_training (default all but the two self-training ones; quick: also without multitask)."),
    weapon_source: Optional[str] = typer.Option(None, "--weapon-source", help="engine | auto: how targets' weapon masks are found."),
    pseudo_max_share: Optional[float] = typer.Option(None, "--pseudo-max-share", help="self_training: the most of the pool the teacher may call a bug per type (default detect.pseudo_max_share, 0.02; 1 = no cap)."),
) -> None:
    """The paper's protocol on a world's captures: supervised vs objective vs pretrain+finetune vs multi-task, per bug type."""
    import numpy as np

    from bugdet.cli.common import console
    from bugdet.bench.quality.protocol import METHODS, QualityBenchmark, QualitySettings, write_json
    from bugdet.bench.quality.report import render_report, terminal_line
    from bugdet.errors import InputError
    from bugdet.progress import rich_progress

    from bugdet.bench.quality.layout import layout_for

    layout = layout_for(world)
    s = QualitySettings.for_world(world, quick)
    if bugs:
        s.bug_types = [b.strip() for b in bugs.split(",") if b.strip()]
        unknown = [b for b in s.bug_types if b not in layout.bug_types]
        if unknown:
            raise InputError(f"--bugs: the {world} world cannot show {', '.join(unknown)} (it has: {', '.join(layout.bug_types)})")
    if seeds:
        s.seeds = [int(v) for v in seeds.split(",")]
    if ks:
        s.ks = [int(v) for v in ks.split(",")]
    if methods:
        s.methods = [m.strip() for m in methods.split(",") if m.strip()]
        unknown = sorted(set(s.methods) - set(METHODS))
        if unknown:
            raise InputError(f"--methods: unknown {', '.join(unknown)} (known: {', '.join(METHODS)})")
    if weapon_source:
        s.weapon_source = weapon_source
    if pseudo_max_share is not None:
        if not 0 < pseudo_max_share <= 1:
            raise InputError(f"--pseudo-max-share must be in (0, 1], got {pseudo_max_share}")
        s.pseudo_max_share = pseudo_max_share
    bench = QualityBenchmark(s, workdir)
    with rich_progress(console) as bar:
        bench.progress = bar
        summary = bench.run()
    write_json(json_path, summary)
    report = report or json_path.with_suffix(".html")
    labels = np.stack([f.labels for f in bench.data.test])
    report.write_text(render_report(summary, bench.curves, [f.rgb for f in bench.data.test], labels, s.bug_types))
    write_test_scores(json_path.with_suffix(".scores.npz"), bench)
    for row in summary["aggregate"]:
        console.print(terminal_line(row, s.false_alarm_budget_per_1k))
    if "fppc" in s.bug_types:
        console.print(json.dumps(summary["targets"], indent=1))
    for bug_type, why in summary["data"].get("dropped_bug_types", {}).items():
        console.print(f"not evaluated: {bug_type} ({why})")
    console.print(f"wrote {json_path} and {report}")


def write_test_scores(path: Path, bench) -> None:
    """Every run's test scores beside the JSON, with the labels and the test split's timeline, so
    rules applied after the detector (a window over consecutive frames, another threshold) can be
    measured on exactly these scores without training again."""
    import numpy as np

    timeline = bench.data.test_timeline
    arrays = {f"scores/{key}": np.asarray(c["scores"], np.float32) for key, c in bench.curves.items()}
    arrays.update(labels=np.stack([f.labels for f in bench.data.test]), bug_types=np.array(bench.s.bug_types),
                  timeline_order=timeline.order, timeline_joins_previous=timeline.joins_previous,
                  thresholds=np.array([c["threshold"] for c in bench.curves.values()], np.float64),
                  keys=np.array(list(bench.curves)))
    np.savez_compressed(path, **arrays)


def register(bench_app: typer.Typer) -> None:
    bench_app.command("quality")(quality)
