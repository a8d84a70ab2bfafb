"""The quality benchmark's HTML report: PR curves, F1 against labels, worst mistakes as images.

Self-contained (images inline as data URIs, no scripts or CDNs) so it can be attached to a
ticket or opened offline. Plots are drawn with OpenCV to avoid a plotting dependency.
"""

from __future__ import annotations

import base64
import html
from typing import Any, Sequence

import cv2
import numpy as np

from bugdet.detect.episodes import FALSE_ALARM_BUDGET_PER_1K
from bugdet.detect.metrics import precision_recall_curve

COLOURS = {
    "floor": (150, 150, 150),
    "supervised": (40, 40, 220),
    "objective": (30, 160, 30),
    "pretrain_finetune": (200, 120, 0),
    "exemplar_finetune": (0, 170, 200),
    "multitask": (180, 0, 180),
    "self_training": (200, 60, 60),
    "knn_self_training": (120, 90, 40),
}


#: The summary table: frame level (F1 at the calibrated threshold, PR-AUC, precision at 50% recall),
#: then event level (bugdet.detect.episodes); means over seeds, spreads where they are read.
AGGREGATE_COLUMNS: tuple[str, ...] = (
    "bug_type", "method", "labeled_bugs", "seeds", "f1", "f1_std", "pr_auc", "pr_auc_std", "precision_at_recall_0_5",
    "episodes", "episode_recall_at_fa_budget", "episode_recall_at_fa_budget_std", "episode_recall", "false_alarms_per_1k",
    "best_f1",
)


def terminal_line(row: dict[str, Any], budget_per_1k: float) -> str:
    """One aggregate row for the terminal: frame level, then the episodes a QA lead would be shown."""
    return (f"{row['bug_type']:>10} {row['method']:>18} k={row['labeled_bugs']:<3} "
            f"F1 {row['f1']:.3f}±{row['f1_std']:.3f}  PR-AUC {row['pr_auc']:.3f}  P@R0.5 {row['precision_at_recall_0_5']:.3f}  "
            f"episodes {row['episodes']}: found {row['episode_recall_at_fa_budget']:.2f}±{row['episode_recall_at_fa_budget_std']:.2f} "
            f"at <={budget_per_1k:g} FA/1k, {row['episode_recall']:.2f} at the threshold ({row['false_alarms_per_1k']:.2f} FA/1k)")


def _png_uri(rgb: np.ndarray) -> str:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode()


def _axes(title: str, xlabel: str, ylabel: str, size: int = 360) -> tuple[np.ndarray, callable]:
    img = np.full((size + 60, size + 70, 3), 255, np.uint8)
    ox, oy = 50, size + 20

    def to_px(x: float, y: float, xmax: float = 1.0) -> tuple[int, int]:
        return int(ox + x / xmax * size), int(oy - y * size)

    cv2.rectangle(img, (ox, oy - size), (ox + size, oy), (0, 0, 0), 1)
    for v in (0.25, 0.5, 0.75):
        cv2.line(img, (ox, int(oy - v * size)), (ox + size, int(oy - v * size)), (225, 225, 225), 1)
    cv2.putText(img, title, (ox, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    cv2.putText(img, xlabel, (ox + size // 2 - 30, oy + 32), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    cv2.putText(img, ylabel, (2, oy - size - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    for v in (0, 0.5, 1.0):
        cv2.putText(img, f"{v:.1f}", (ox - 30, int(oy - v * size) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1)
    return img, to_px


def pr_curve_plot(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str) -> np.ndarray:
    img, to_px = _axes(title, "recall", "precision")
    for i, (name, (scores, labels)) in enumerate(curves.items()):
        if not labels.any():
            continue
        p, r, _ = precision_recall_curve(scores, labels)
        pts = np.array([to_px(x, y) for x, y in zip(np.r_[0, r], np.r_[p[0], p])], np.int32)
        colour = COLOURS.get(name.split(" ")[0], (0, 0, 0))[::-1]
        cv2.polylines(img, [pts], False, colour, 2)
        cv2.putText(img, name, (60, 40 + 14 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.38, colour, 1)
    return img


def f1_vs_labels_plot(aggregate: Sequence[dict[str, Any]], bug_type: str, ks: Sequence[int]) -> np.ndarray:
    img, to_px = _axes(f"{bug_type}: F1 at the calibrated threshold vs labeled bugs", "labeled bugs k", "F1")
    kmax = max(max(ks), 1)
    by_method: dict[str, list[tuple[int, float, float]]] = {}
    for a in aggregate:
        if a["bug_type"] == bug_type:
            by_method.setdefault(a["method"], []).append((a["labeled_bugs"], a["f1"], a["f1_std"]))
    for i, (method, pts) in enumerate(sorted(by_method.items())):
        colour = COLOURS.get(method, (0, 0, 0))[::-1]
        pts.sort()
        xy = [to_px(k, f, kmax) for k, f, _ in pts]
        if len(xy) > 1:
            cv2.polylines(img, [np.array(xy, np.int32)], False, colour, 2)
        for (k, f, sd), (x, y) in zip(pts, xy):
            cv2.circle(img, (x, y), 4, colour, -1)
            if sd > 0:
                _, y0 = to_px(k, min(f + sd, 1), kmax)
                _, y1 = to_px(k, max(f - sd, 0), kmax)
                cv2.line(img, (x, y0), (x, y1), colour, 1)
        cv2.putText(img, method, (60, 40 + 14 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.38, colour, 1)
    for k in ks:
        x, _ = to_px(k, 0, kmax)
        cv2.putText(img, str(k), (x - 5, img.shape[0] - 26), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1)
    return img


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c)
            cells.append(f"<td>{v:.3f}</td>" if isinstance(v, float) else f"<td>{html.escape(str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def render_report(summary: dict[str, Any], curves: dict[str, dict], test_images: Sequence[np.ndarray],
                  test_labels: np.ndarray, bug_types: Sequence[str], worst: int = 6) -> str:
    """The whole page. ``curves`` maps 'type|method|k|seed' to test scores and threshold."""
    parts = [
        "<!doctype html><meta charset='utf-8'><title>bugdet quality benchmark</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}img{margin:4px}"
        ".thumbs img{width:240px;border:2px solid #c00}</style>",
        f"<h1>bugdet quality benchmark: {html.escape(summary.get('world', 'playtest'))} world</h1>",
        f"<p>Test prevalence {summary['test_prevalence_measured']:.4f} (target {summary['prevalence']}); "
        f"backbones trained from scratch (unpretrained); mask-bank embeddings: {html.escape(str(summary['data'].get('mask_bank', '')))}.</p>",
    ]
    dropped = summary["data"].get("dropped_bug_types") or {}
    if dropped:
        parts.append("<p>Not evaluated: " + "; ".join(f"{html.escape(t)} ({html.escape(why)})" for t, why in dropped.items()) + ".</p>")
    if "fppc" in bug_types:  # the protocol's targets are stated for FPPC
        parts += ["<h2>Targets</h2>", _table([{"target": k, "value": v} for k, v in summary["targets"].items()], ["target", "value"])]
    budget = summary.get("settings", {}).get("false_alarm_budget_per_1k", FALSE_ALARM_BUDGET_PER_1K)
    parts += [
        "<h2>Mean over seeds</h2>",
        _table(summary["aggregate"], AGGREGATE_COLUMNS),
        ("<p>Event level: <i>episodes</i> are a bug type's test episodes (runs of consecutive bug frames in one "
         "capture); <i>episode_recall</i> is the share with at least one frame flagged, and <i>false_alarms_per_1k</i> the "
         "alarm events (runs of flagged frames) touching no bug, per 1,000 test frames, both at the calibrated threshold; "
         "<i>episode_recall_at_fa_budget</i> is the share found at the threshold lowered from the top score until "
         f"one more step would exceed {budget:g} false alarms per 1,000 frames.</p>"),
    ]
    ks = sorted({r["labeled_bugs"] for r in summary["results"]})
    seed0 = min(r["seed"] for r in summary["results"]) if summary["results"] else 0
    for i, t in enumerate(bug_types):
        labels = test_labels[:, i] > 0
        parts.append(f"<h2>{html.escape(t)}</h2>")
        parts.append(f"<img src='{_png_uri(f1_vs_labels_plot(summary['aggregate'], t, ks))}'>")
        for k in ks:
            chosen = {f"{key.split('|')[1]} k={k}": (np.array(v["scores"]), labels)
                      for key, v in curves.items() if key.startswith(f"{t}|") and key.endswith(f"|{k}|{seed0}")}
            if chosen:
                parts.append(f"<img src='{_png_uri(pr_curve_plot(chosen, f'{t}: PR on test, k={k}, seed {seed0}'))}'>")
        best = max((a for a in summary["aggregate"] if a["bug_type"] == t and a["method"] != "floor"),
                   key=lambda a: a["f1"], default=None)
        if best is None:
            continue
        key = f"{t}|{best['method']}|{best['labeled_bugs']}|{seed0}"
        if key not in curves:
            continue
        scores = np.array(curves[key]["scores"])
        thr = curves[key]["threshold"]
        fp = [j for j in np.argsort(-scores) if not labels[j]][:worst]
        fn = [j for j in np.argsort(scores) if labels[j]][:worst]
        parts.append(f"<h3>Worst mistakes of {html.escape(best['method'])} (k={best['labeled_bugs']}, threshold {thr:.3f})</h3>")
        for name, idx in (("highest-scoring good frames (false positives if above threshold)", fp),
                          ("lowest-scoring bug frames (false negatives if below threshold)", fn)):
            thumbs = "".join(f"<img title='score {scores[j]:.3f}' src='{_png_uri(test_images[j])}'>" for j in idx)
            parts.append(f"<p>{name}: scores {', '.join(f'{scores[j]:.3f}' for j in idx)}</p><div class='thumbs'>{thumbs}</div>")
    return "\n".join(parts)
