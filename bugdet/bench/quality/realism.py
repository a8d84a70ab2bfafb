"""``bugdet bench realism``: do the built-in simulations resemble a world's real bugs?

Issue 17's lever 2, measured on the quality benchmark's own captures (same workdir, so recorded
data is reused): for each seed, the simulated tester's ``k`` labeled bug frames per type and its
good frames are the "real" frames, and :func:`bugdet.augment.realism.check_objectives` says for
every simulated bug type whether the simulation moves frames towards them. The check is useful
when it says "does not resemble" exactly where that type's objective did not transfer to the
held-out maps (``bugdet bench quality`` on the same world; docs/benchmarks.md puts the two side by
side).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import typer


def run_realism(world: str, quick: bool, seeds: list[int], k: int, pairs: int, workdir: Path) -> dict[str, Any]:
    from bugdet.augment.assemble import objectives_for
    from bugdet.augment.realism import check_objectives
    from bugdet.bench.quality.protocol import QualityBenchmark, QualitySettings, draw_labels, prepare_data
    from bugdet.embed.pipeline import build_embedder
    from bugdet.progress import NullProgress

    started = time.perf_counter()
    s = QualitySettings.for_world(world, quick)
    bench = QualityBenchmark(s, workdir)
    data = prepare_data(s, workdir, bench.size, NullProgress())
    embedder = build_embedder(data.project)
    simulations = objectives_for(s.bug_types, mode="off", params_by_type=s.objective_params)
    rows = []
    for seed in seeds:
        labeled = draw_labels(data, s.bug_types, k, s.good_pool, seed)
        real_bugs = {t: [f.rgb for f in labeled if f.labels[i] > 0] for i, t in enumerate(s.bug_types)}
        goods = [f.rgb for f in labeled if not f.is_bug]
        for r in check_objectives(simulations, data.unlabeled_targets, data.sources, real_bugs, goods,
                                  embedder.embed_images, pairs=pairs, seed=seed):
            rows.append({"seed": seed, **r.as_dict()})
    summary: dict[str, Any] = {"benchmark": "realism", "world": world, "quick": quick, "k": k, "pairs": pairs,
                               "seeds": seeds, "embedder": embedder.label, "embeddings_pretrained": embedder.pretrained,
                               "results": rows, "per_type": per_type(rows)}
    summary["seconds"] = round(time.perf_counter() - started, 1)
    return summary


def per_type(rows: list[dict]) -> list[dict[str, Any]]:
    """Mean shift, progress and verdict shares per bug type, over seeds."""
    out = []
    for bug_type in sorted({r["bug_type"] for r in rows}):
        mine = [r for r in rows if r["bug_type"] == bug_type]
        row: dict[str, Any] = {"bug_type": bug_type, "shift": float(np.mean([r["shift"] for r in mine])),
                               "shift_std": float(np.std([r["shift"] for r in mine])),
                               "t_statistic": float(np.mean([r["t_statistic"] for r in mine])),
                               "progress": float(np.mean([r["progress"] for r in mine])),
                               "progress_std": float(np.std([r["progress"] for r in mine])),
                               "resembles_share": float(np.mean([r["resembles"] for r in mine])),
                               "cannot_tell_share": float(np.mean([r["verdict"] == "cannot tell" for r in mine])),
                               "separation": float(np.mean([r["separation"] for r in mine]))}
        out.append(row)
    return out


def realism(
    json_path: Path = typer.Option(Path("bench-results/realism.json"), "--json", help="Where the measurements go."),
    world: str = typer.Option("playtest", "--world", help="playtest or openarena (as bugdet bench quality)."),
    quick: bool = typer.Option(False, "--quick", help="The quality bench's quick captures (reuse its --workdir)."),
    seeds: str = typer.Option("0,1,2", "--seeds", help="Comma-separated seeds: which labels the simulated tester draws."),
    k: int = typer.Option(10, "--k", min=1, help="Labeled bug frames per type."),
    pairs: int = typer.Option(24, "--pairs", min=2, help="Objective pairs drawn per type."),
    workdir: Path = typer.Option(Path("bench-results/quality-work"), "--workdir", help="The quality bench's workdir."),
) -> None:
    """Whether each built-in simulation resembles the world's labeled real bugs (issue 17, lever 2)."""
    from bugdet.bench.quality.protocol import write_json
    from bugdet.cli.common import console

    summary = run_realism(world, quick, [int(v) for v in seeds.split(",")], k, pairs, workdir)
    write_json(json_path, summary)
    for row in summary["per_type"]:
        console.print(f"{row['bug_type']}: moves frames {row['progress']:+.0%} ± {row['progress_std']:.0%} of the way "
                      f"from good to a real bug, paired t {row['t_statistic']:+.1f}, labeled bugs separated {row['separation']:+.2f} "
                      f"over chance, cannot tell in {row['cannot_tell_share']:.0%}, "
                      f"resembles in {row['resembles_share']:.0%} of seeds", markup=False)
    console.print(f"wrote {json_path}")


def register(bench_app: typer.Typer) -> None:
    bench_app.command("realism")(realism)
