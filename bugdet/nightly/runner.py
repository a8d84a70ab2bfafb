"""Run the nightly job: lock, resume or start a run, do each unfinished step, report.

The order of :data:`~bugdet.nightly.steps.STEPS` is the pipeline's; this module only decides
which steps still need running. A step's outputs are saved before the next starts; a step that
raises marks the run failed (the champion is untouched, since only the last step switches it),
and the next invocation resumes that run at the step that failed. When nothing is new since the
last finished run, every step after ``check`` is recorded as skipped and nothing is trained or
published.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bugdet.errors import BugdetError
from bugdet.nightly.config import NightlyConfig
from bugdet.nightly.report import write_report
from bugdet.nightly.state import RunState, exclusive_lock, new_run, unfinished_run
from bugdet.nightly.steps import STEPS, StepContext, finish_watermarks, timed
from bugdet.progress import NullProgress, Progress
from bugdet.project import Project
from bugdet.registry import Registry


class NightlyFailed(BugdetError):
    """A step of the nightly run failed; the run is kept and resumed next time."""


@dataclass
class NightlyResult:
    state: RunState
    report_json: Path
    report_html: Path
    resumed: bool

    @property
    def outcome(self) -> str:
        return self.state.outcome


def project_overrides(cfg: NightlyConfig) -> list[str]:
    """The nightly file's ``set:`` plus its training budget, as ``--set`` style overrides."""
    out = list(cfg.set)
    if cfg.train.epochs is not None:
        out.append(f"detect.epochs={cfg.train.epochs}")
    if cfg.train.steps_per_epoch is not None:
        out.append(f"detect.steps_per_epoch={cfg.train.steps_per_epoch}")
    return out


def abandon_unfinished(cfg: NightlyConfig) -> RunState | None:
    """Mark the run a resume would pick up as abandoned (e.g. it fails the same way every night)."""
    with exclusive_lock(cfg.state_path):
        state = unfinished_run(cfg.state_path)
        if state is not None:
            state.status = "abandoned"
            state.save()
        return state


def run_nightly(cfg: NightlyConfig, progress: Progress | None = None, announce: Callable[[str], None] | None = None,
                stop_after: str | None = None) -> NightlyResult:
    """One nightly run (or the rest of an interrupted one). ``stop_after`` ends the invocation
    after that step, leaving the run to be resumed (for staged rollouts and tests)."""
    names = [name for name, _ in STEPS]
    if stop_after is not None and stop_after not in names:
        raise BugdetError(f"unknown step {stop_after!r} (steps: {', '.join(names)})")
    say = announce or (lambda line: None)
    progress = progress or NullProgress()
    project = Project.open(cfg.project_dir, project_overrides(cfg))
    registry = Registry(cfg.registry_dir)
    with exclusive_lock(cfg.state_path):
        state = unfinished_run(cfg.state_path)
        resumed = state is not None
        state = state or new_run(cfg.state_path)
        state.attempts += 1
        state.status, state.error = "running", ""
        state.save()
        say(f"{'resuming' if resumed else 'starting'} nightly run {state.run_id} (attempt {state.attempts})")
        ctx = StepContext(cfg, project, registry, state, progress)
        for name, step in STEPS:
            if state.done(name):
                say(f"  {name}: done in an earlier attempt")
            elif state.done("check") and not state.outputs("check")["has_new_data"]:
                state.record(name, "skipped", reason="no new data since the last finished run")
            else:
                say(f"  {name} ...")
                try:
                    outputs, seconds = timed(step, ctx)
                except BaseException as exc:
                    state.status = "failed"
                    state.error = f"{name}: {exc}" if str(exc) else f"{name}: {type(exc).__name__}"
                    state.record(name, "failed", seconds=0.0, error=traceback.format_exc(limit=4))
                    json_path, html_path = write_report(ctx)
                    if isinstance(exc, Exception):
                        raise NightlyFailed(f"nightly run {state.run_id} failed at {state.error}; the champion is unchanged, "
                                            f"the next run resumes here (report {html_path})") from exc
                    raise
                state.record(name, "done", outputs, seconds)
                say(f"  {name}: {_summary(name, outputs)} ({seconds:.1f} s)")
            if name == stop_after:
                json_path, html_path = write_report(ctx)
                return NightlyResult(state, json_path, html_path, resumed)
        if not state.outputs("check")["has_new_data"]:
            state.outcome = "no-new-data"
        else:
            state.outcome = "promoted" if state.outputs("publish").get("promoted") else "not-promoted"
        finish_watermarks(ctx)
        state.status = "finished"
        state.save()
        json_path, html_path = write_report(ctx)
        say(f"nightly run {state.run_id}: {state.outcome}; report {html_path}")
        return NightlyResult(state, json_path, html_path, resumed)


def _summary(name: str, outputs: dict) -> str:
    if name == "ingest":
        return f"{outputs['frames_added']} new frames from {len(outputs['captures'])} captures"
    if name == "check":
        if not outputs["has_new_data"]:
            return "nothing new"
        return "new data: " + ", ".join(f"{k} {outputs['new'][k]:+d}" if k in outputs["new"] else k for k in outputs["changed"])
    if name == "segment":
        return "; ".join(f"{split}: {r['frames_segmented']} frames, {r['masks_added'] + r['engine_masks_added']} masks "
                         f"({r['frames_skipped']} already segmented)" for split, r in outputs.items())
    if name in ("embed", "cluster"):
        return outputs["summary"]
    if name == "train":
        return (f"{outputs['epochs_trained']} epochs (resumed after {outputs['resumed_from_epoch']}), "
                f"best val PR-AUC {outputs['best_val_pr_auc']:.3f}")
    if name == "export":
        return outputs["package"]
    if name == "objectives":
        return ", ".join(f"{t}: {v['pairs']} pairs, sheet {v['sheet']}" for t, v in outputs["sheets"].items()) or "built when training starts"
    if name == "labels":
        return f"{outputs['frames_judged']} frames judged; label rows by source {outputs['label_rows_by_source']}"
    if name == "evaluate":
        champion = outputs["champion"]
        return (f"{outputs['eval_set']['frames']} fixed frames; challenger {outputs['challenger']['metrics']}"
                + (f"; champion {champion['version']} {champion['metrics']}" if champion else "; no champion yet"))[:400]
    if name == "decide":
        return ("promote: " if outputs["promote"] else "keep the champion: ") + outputs["reason"]
    if name == "publish":
        return f"champion is {outputs['champion']}"
    return ", ".join(f"{k}={v}" for k, v in outputs.items() if isinstance(v, (int, float, str)))[:200]
