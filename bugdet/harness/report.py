"""The playtest report: one self-contained HTML page (plus its numbers as JSON).

Flagged frames with thumbnails (the flagged region boxed), time and position; a top-down map of
the level with the camera's path and where bugs were flagged, found or missed; and frame-level
precision / recall against the playtest world's ground truth. Images are embedded as base64 JPEG
so the page can be mailed or attached to a ticket as one file.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bugdet.harness.playtest import FrameRecord, PlaytestRun

MAP_SIZE = 520
BOX_COLOURS = [(255, 64, 64), (255, 200, 0), (0, 200, 255), (200, 80, 255), (80, 255, 120), (255, 128, 0)]


def _jpeg_data_uri(rgb: np.ndarray) -> str:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode() if ok else ""


def _annotated(record: FrameRecord, bug_types: list[str]) -> np.ndarray:
    image = record.thumbnail.copy()
    h, w = image.shape[:2]
    for name, (x0, y0, x1, y1) in record.boxes.items():
        colour = BOX_COLOURS[bug_types.index(name) % len(BOX_COLOURS)] if name in bug_types else (255, 255, 255)
        cv2.rectangle(image, (int(x0 * w), int(y0 * h)), (max(int(x1 * w) - 1, 0), max(int(y1 * h) - 1, 0)), colour, 2)
    return image


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _map_svg(run: PlaytestRun) -> str:
    """Top-down map: obstacles, the camera path, and a marker per flagged or missed bug frame."""
    x0, y0, x1, y1 = run.world_bounds
    xs = [f.pose[0] for f in run.frames] or [0.0]
    ys = [f.pose[1] for f in run.frames] or [0.0]
    x0, y0, x1, y1 = min(x0, *xs), min(y0, *ys), max(x1, *xs), max(y1, *ys)
    scale = (MAP_SIZE - 20) / max(x1 - x0, y1 - y0, 1e-6)

    def pt(x: float, y: float) -> tuple[float, float]:  # world y grows north; SVG y grows down
        return 10 + (x - x0) * scale, MAP_SIZE - 10 - (y - y0) * scale

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{MAP_SIZE}" height="{MAP_SIZE}" class="map">',
             f'<rect x="0" y="0" width="{MAP_SIZE}" height="{MAP_SIZE}" fill="#20262c"/>']
    bx0, by0 = pt(run.world_bounds[0], run.world_bounds[3])
    bx1, by1 = pt(run.world_bounds[2], run.world_bounds[1])
    parts.append(f'<rect x="{bx0:.1f}" y="{by0:.1f}" width="{bx1 - bx0:.1f}" height="{by1 - by0:.1f}" fill="#2e3740" stroke="#56616b"/>')
    for o in run.obstacles:
        if o["kind"] == "circle":
            cx, cy = pt(o["x"], o["y"])
            parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{max(o["r"] * scale, 1):.1f}" fill="#4b5661"/>')
        else:
            a = math.radians(o["heading"])
            corners = []
            for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                lx, ly = sx * o["hx"], sy * o["hy"]
                corners.append(pt(o["x"] + lx * math.cos(a) - ly * math.sin(a), o["y"] + lx * math.sin(a) + ly * math.cos(a)))
            parts.append('<polygon points="' + " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in corners) + '" fill="#4b5661"/>')
    path = " ".join("{:.1f},{:.1f}".format(*pt(f.pose[0], f.pose[1])) for f in run.frames)
    parts.append(f'<polyline points="{path}" fill="none" stroke="#9fb3c8" stroke-width="1.5" opacity="0.8"/>')
    if run.frames:
        sx, sy = pt(run.frames[0].pose[0], run.frames[0].pose[1])
        parts.append(f'<circle cx="{sx:.1f}" cy="{sy:.1f}" r="5" fill="none" stroke="#fff"><title>start</title></circle>')
    types = run.evaluated_types()
    for f in run.frames:
        flagged, actual = f.is_flagged, any(f.truth.get(b, False) for b in types)
        if not flagged and not actual:
            continue
        colour = "#3ddc84" if flagged and actual else ("#ff5252" if flagged else "#ffb300")
        label = "flagged, real bug" if flagged and actual else ("flagged, no bug (false alarm)" if flagged else "missed bug")
        cx, cy = pt(f.pose[0], f.pose[1])
        parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="{colour}" opacity="0.85"><title>frame {f.index} '
                     f'at t={f.time:.2f}s: {label}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def summary(run: PlaytestRun) -> dict[str, Any]:
    return {
        "scene": run.scene, "seed": run.seed, "session": run.session_id, "model": run.model,
        "frames": len(run.frames), "flagged_frames": sum(f.is_flagged for f in run.frames),
        "bug_frames": sum(f.has_bug for f in run.frames), "errors": sum(bool(f.error) for f in run.frames),
        "thresholds": run.thresholds, "flag_window": {"frames": run.flag_window[0], "min": run.flag_window[1]},
        "evaluated_bug_types": run.evaluated_types(),
        "precision_recall": run.precision_recall(),
        "flagged": [{"frame": f.index, "time": round(f.time, 3), "position": [round(v, 3) for v in f.pose[:3]],
                     "bug_types": sorted(b for b, v in f.flagged.items() if v), "truth": sorted(b for b, v in f.truth.items() if v),
                     "scores": {b: round(s, 4) for b, s in f.scores.items()}} for f in run.frames if f.is_flagged],
    }


def render_html(run: PlaytestRun) -> str:
    data = summary(run)
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(name)}</td><td>{m['tp']}</td><td>{m['fp']}</td><td>{m['fn']}</td>"
        f"<td>{_fmt(m['precision'])}</td><td>{_fmt(m['recall'])}</td></tr>"
        for name, m in data["precision_recall"].items()
    )
    legend = "".join(
        f'<span class="chip" style="border-color: rgb{BOX_COLOURS[i % len(BOX_COLOURS)]}">{esc(b)} &ge; {run.thresholds.get(b, 0):.2f}</span>'
        for i, b in enumerate(run.bug_types)
    )
    cards = []
    for f in run.frames:
        if not f.is_flagged:
            continue
        flagged = ", ".join(esc(b) for b, v in f.flagged.items() if v)
        truth = ", ".join(esc(b) for b, v in f.truth.items() if v) or "none"
        verdict = "real bug" if any(f.truth.get(b) for b, v in f.flagged.items() if v) else ("other bug" if f.has_bug else "false alarm")
        scores = " ".join(f"{esc(b)} {s:.2f}" for b, s in f.scores.items())
        cards.append(
            f'<figure class="card {verdict.replace(" ", "-")}"><img src="{_jpeg_data_uri(_annotated(f, run.bug_types))}" '
            f'alt="frame {f.index}"><figcaption><b>frame {f.index}</b> &middot; t={f.time:.2f}s &middot; '
            f'pos ({f.pose[0]:.1f}, {f.pose[1]:.1f}, {f.pose[2]:.1f}) heading {f.pose[3]:.0f}&deg;<br>'
            f'flagged: {flagged}<br>ground truth: {truth} ({verdict})<br><small>{scores}</small></figcaption></figure>'
        )
    errors = [f for f in run.frames if f.error]
    n, k = run.flag_window
    window_html = f"<p>Flagged when {k} of the last {n} frames were over the threshold.</p>" if n > 1 else ""
    error_html = (f"<p class='warn'>{len(errors)} frame(s) failed: {esc(errors[0].error)}</p>" if errors else "")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Playtest report: {esc(run.session_id)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; background: #f5f6f8; color: #1d2329; }}
h1 {{ margin-bottom: 4px; }} .meta {{ color: #5a6570; margin-top: 0; }}
table {{ border-collapse: collapse; background: #fff; }} td, th {{ border: 1px solid #d5dae0; padding: 4px 10px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
.top {{ display: flex; gap: 32px; flex-wrap: wrap; align-items: flex-start; }}
.legend span {{ margin-right: 12px; }} .dot {{ display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 4px; }}
.chip {{ border: 2px solid; border-radius: 4px; padding: 1px 6px; margin-right: 6px; background: #fff; }}
.cards {{ display: flex; flex-wrap: wrap; gap: 12px; }}
.card {{ margin: 0; background: #fff; border: 1px solid #d5dae0; border-radius: 6px; padding: 6px; width: 212px; font-size: 12px; }}
.card img {{ width: 100%; image-rendering: pixelated; }} .card.false-alarm {{ border-color: #ff5252; }} .card.real-bug {{ border-color: #3ddc84; }}
.warn {{ color: #b00020; }}
</style></head><body>
<h1>Playtest report</h1>
<p class="meta">session {esc(run.session_id)} &middot; level {esc(run.scene)} (seed {run.seed}) &middot; model {esc(run.model)} &middot;
{data['frames']} frames, {data['flagged_frames']} flagged, {data['bug_frames']} with injected bugs</p>
{error_html}
<div class="top">
<div><h2>Where bugs were flagged</h2>{_map_svg(run)}
<p class="legend"><span><i class="dot" style="background:#3ddc84"></i>flagged, real bug</span>
<span><i class="dot" style="background:#ff5252"></i>false alarm</span><span><i class="dot" style="background:#ffb300"></i>missed bug</span>
<span>line: camera path</span></p></div>
<div><h2>Precision and recall (per frame, vs ground truth)</h2>
<table><tr><th>bug type</th><th>TP</th><th>FP</th><th>FN</th><th>precision</th><th>recall</th></tr>{rows}</table>
<p>Thresholds: {legend}</p>{window_html}
<p>Only bug types that both the model detects and the playtest injected are scored; "any" counts a frame once.</p></div>
</div>
<h2>Flagged frames ({data['flagged_frames']})</h2>
<div class="cards">{''.join(cards) or '<p>No frame was flagged.</p>'}</div>
</body></html>
"""


def write_report(run: PlaytestRun, out_dir: Path) -> tuple[Path, Path]:
    """Write ``report.html`` and ``report.json`` (each atomically) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = (out_dir / "report.html", out_dir / "report.json")
    for path, text in zip(paths, (render_html(run), json.dumps(summary(run), indent=2) + "\n")):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return paths
