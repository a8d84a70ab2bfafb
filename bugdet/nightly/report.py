"""The run report: ``report.json`` for dashboards and alerts, ``report.html`` for people.

Written into the run's directory after every outcome (including failures, so the page says
where the run stopped) and copied to ``STATE/latest.json`` / ``latest.html``.
"""

from __future__ import annotations

import base64
import html
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bugdet.nightly.state import utc_now, write_json_atomic

if TYPE_CHECKING:
    from bugdet.nightly.steps import StepContext


def build_report(ctx: "StepContext") -> dict[str, Any]:
    s = ctx.state
    out = lambda name: s.outputs(name)  # noqa: E731 - short alias for the many lookups below
    segment = out("segment")
    evaluation = out("evaluate")
    return {
        "run_id": s.run_id,
        "status": s.status,
        "outcome": s.outcome,
        "error": s.error,
        "started_at": s.started_at,
        "written_at": utc_now(),
        "attempts": s.attempts,
        "project": str(ctx.project.root),
        "registry": str(ctx.registry.root),
        "model": ctx.cfg.model_name,
        "data": {
            "frames_added": out("ingest").get("frames_added"),
            "captures": out("ingest").get("sources", []),
            "new_since_last_run": out("check").get("new"),
            "changed_inputs": out("check").get("changed"),
            "frames_segmented": sum(v.get("frames_segmented", 0) for v in segment.values()) if segment else None,
            "masks_added": sum(v.get("masks_added", 0) for v in segment.values()) if segment else None,
            "masks_embedded": out("embed").get("embedded"),
            "mask_bank": out("cluster").get("bank_masks"),
            "rules_replayed": out("cluster").get("rules_replayed"),
            "labels": out("labels"),
        },
        "training": {k: out("train").get(k) for k in ("checkpoint", "resumed_from_epoch", "epochs_trained", "best_epoch",
                                                       "best_val_pr_auc", "thresholds")} if out("train") else None,
        "package": out("export").get("package"),
        "parity": out("export").get("parity"),
        "evaluation": evaluation or None,
        "decision": out("decide") or None,
        "publish": out("publish") or None,
        "timings_s": {name: step.get("seconds", 0.0) for name, step in s.steps.items()},
        "steps": {name: {"status": step.get("status"), "error": step.get("error", "")} for name, step in s.steps.items()},
    }


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "" if value is None else str(value)


def _metrics_rows(report: dict[str, Any]) -> list[list[Any]]:
    evaluation = report.get("evaluation") or {}
    challenger = (evaluation.get("challenger") or {}).get("metrics") or {}
    champion = (evaluation.get("champion") or {}).get("metrics") or {}
    rows = []
    for bug_type in sorted(set(challenger) | set(champion)):
        for metric in ("pr_auc", "f1", "precision_at_recall_0_5"):
            rows.append([bug_type, metric, champion.get(bug_type, {}).get(metric), challenger.get(bug_type, {}).get(metric)])
    return rows


def render_html(report: dict[str, Any], sheets: dict[str, str]) -> str:
    decision = report.get("decision") or {}
    evaluation = report.get("evaluation") or {}
    champion = evaluation.get("champion") or {}
    verdict = {"promoted": "challenger promoted", "not-promoted": "champion kept", "no-new-data": "nothing new: nothing done"}
    parts = [
        "<!doctype html><meta charset='utf-8'><title>bugdet nightly " + html.escape(report["run_id"]) + "</title>",
        "<style>body{font:14px sans-serif;margin:2em}table{border-collapse:collapse;margin:.5em 0 1.5em}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}.bad{color:#b00}.good{color:#070}</style>",
        f"<h1>Nightly run {html.escape(report['run_id'])}</h1>",
        f"<p class='{'bad' if report['status'] == 'failed' else 'good'}'><b>{html.escape(report['status'])}</b>: "
        f"{html.escape(verdict.get(report['outcome'], report['outcome'] or 'in progress'))}"
        f"{' &mdash; ' + html.escape(report['error']) if report['error'] else ''}</p>",
        f"<p>project {html.escape(report['project'])}, registry {html.escape(report['registry'])}, model "
        f"{html.escape(report['model'])}, attempt {report['attempts']}, started {html.escape(report['started_at'])}</p>",
        "<h2>Data added</h2>",
        _table(["what", "value"], [[k, v] for k, v in report["data"].items() if not isinstance(v, (list, dict))]
               + [["new since last run", report["data"].get("new_since_last_run")],
                  ["changed inputs", ", ".join(report["data"].get("changed_inputs") or []) or "none"]]),
    ]
    if report.get("training"):
        parts += ["<h2>Training</h2>", _table(["what", "value"], [[k, v] for k, v in report["training"].items()])]
    if evaluation:
        eval_set = evaluation.get("eval_set", {})
        parts += [f"<h2>Champion {html.escape(str(champion.get('version') or '(none)'))} vs challenger "
                  f"{html.escape(str(evaluation.get('challenger', {}).get('version')))}</h2>",
                  f"<p>fixed evaluation set: {eval_set.get('frames')} frames, frozen {html.escape(str(eval_set.get('frozen_at')))}</p>",
                  _table(["bug type", "metric", "champion", "challenger"], _metrics_rows(report))]
    if decision:
        parts += ["<h2>Decision</h2>", f"<p class='{'good' if decision.get('promote') else 'bad'}'>"
                  f"{'promote' if decision.get('promote') else 'keep the champion'}: {html.escape(decision.get('reason', ''))}</p>"]
    parts += ["<h2>Timings</h2>", _table(["step", "status", "seconds"],
                                        [[k, report["steps"][k]["status"], v] for k, v in report["timings_s"].items()])]
    for bug_type, data_uri in sheets.items():
        parts.append(f"<h2>Objective samples: {html.escape(bug_type)}</h2><img src='{data_uri}' style='max-width:100%'>")
    return "\n".join(parts) + "\n"


def write_report(ctx: "StepContext") -> tuple[Path, Path]:
    report = build_report(ctx)
    sheets = {}
    for bug_type, info in (ctx.state.outputs("objectives").get("sheets") or {}).items():
        path = Path(info["sheet"])
        if path.is_file():
            sheets[bug_type] = "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
    directory = ctx.state.directory
    json_path, html_path = directory / "report.json", directory / "report.html"
    write_json_atomic(json_path, report)
    tmp = html_path.with_name(".report.html.tmp")
    tmp.write_text(render_html(report, sheets), encoding="utf-8")
    tmp.replace(html_path)
    for src, name in ((json_path, "latest.json"), (html_path, "latest.html")):
        latest_tmp = ctx.state_dir / f".{name}.tmp"
        shutil.copyfile(src, latest_tmp)
        latest_tmp.replace(ctx.state_dir / name)
    return json_path, html_path
