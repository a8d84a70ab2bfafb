"""``bugdet bench window``: what a window over consecutive frames does to a quality run's scores.

Issue 17's lever 4. Bugs last several frames; a false alarm is often a lone frame. The service
and the harness can flag a bug type only when ``k`` of the last ``n`` frames are over its threshold
(``--flag-window N --flag-window-min K``, service/temporal.py). This benchmark measures the rule on
the test scores a ``bugdet bench quality`` run saved beside its JSON (``*.scores.npz``), without
training again: for every run and window, PR-AUC, the best F1 any threshold reaches (an oracle,
so windows are compared at their own best), and the event-level figure a QA lead reads (episode
recall at <= 1 false alarm per 1,000 frames, the threshold swept on the test split as in the
quality bench). The window's cost is latency: a bug is flagged up to ``n - 1`` frames late.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import typer

DEFAULT_WINDOWS: tuple[tuple[int, int], ...] = ((1, 1), (2, 2), (3, 2), (5, 3))


def window_metrics(path: Path, windows=DEFAULT_WINDOWS, budget_per_1k: float | None = None) -> dict[str, Any]:
    from bugdet.detect import episodes as event_metrics
    from bugdet.detect.metrics import average_precision, best_f1

    budget = event_metrics.FALSE_ALARM_BUDGET_PER_1K if budget_per_1k is None else budget_per_1k
    saved = np.load(path)
    bug_types = [str(t) for t in saved["bug_types"]]
    timeline = event_metrics.Timeline(order=saved["timeline_order"], joins_previous=saved["timeline_joins_previous"])
    rows = []
    for key in [str(k) for k in saved["keys"]]:
        bug_type, method, k, seed = key.split("|")
        labels = saved["labels"][:, bug_types.index(bug_type)] > 0
        raw = saved[f"scores/{key}"]
        for frames, hits in windows:
            scores = event_metrics.windowed_scores(raw, timeline, frames, hits)
            e = event_metrics.evaluate_episodes(scores, labels, timeline, threshold=1.1, budget_per_1k=budget)
            rows.append({"bug_type": bug_type, "method": method, "labeled_bugs": int(k), "seed": int(seed),
                         "window": f"{hits}/{frames}", "pr_auc": average_precision(scores, labels),
                         "best_f1": best_f1(scores, labels), "episode_recall_at_fa_budget": e.episode_recall_at_budget,
                         "episodes": e.episodes})
    return {"benchmark": "window", "scores": str(path), "false_alarm_budget_per_1k": budget, "results": rows,
            "aggregate": _aggregate(rows)}


def _aggregate(rows: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["bug_type"], r["method"], r["labeled_bugs"], r["window"]), []).append(r)
    out = []
    for (t, m, k, w), rs in sorted(groups.items()):
        row = {"bug_type": t, "method": m, "labeled_bugs": k, "window": w, "seeds": len(rs)}
        for metric in ("pr_auc", "best_f1", "episode_recall_at_fa_budget"):
            vals = np.array([r[metric] for r in rs], float)
            vals = vals[~np.isnan(vals)]
            row[metric] = float(vals.mean()) if vals.size else float("nan")
            row[f"{metric}_std"] = float(vals.std()) if vals.size else float("nan")
        out.append(row)
    return out


def window(
    scores: Path = typer.Option(..., "--scores", help="A quality run's saved test scores (the *.scores.npz beside its JSON)."),
    json_path: Path = typer.Option(Path("bench-results/window.json"), "--json", help="Where the measurements go."),
) -> None:
    """A window over consecutive frames (k of the last n), measured on a quality run's test scores."""
    from bugdet.bench.quality.protocol import write_json
    from bugdet.cli.common import console
    from bugdet.errors import InputError

    try:
        summary = window_metrics(scores)
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"--scores: {scores}: not a bugdet bench quality scores file ({exc})") from None
    write_json(json_path, summary)
    for r in summary["aggregate"]:
        console.print(f"{r['bug_type']:<18} {r['method']:<18} k={r['labeled_bugs']:<3} window {r['window']}: PR-AUC "
                      f"{r['pr_auc']:.3f}, best F1 {r['best_f1']:.2f}, episodes @<=1 FA/1k "
                      f"{r['episode_recall_at_fa_budget']:.2f} ± {r['episode_recall_at_fa_budget_std']:.2f}", markup=False)
    console.print(f"wrote {json_path}")


def register(bench_app: typer.Typer) -> None:
    bench_app.command("window")(window)
