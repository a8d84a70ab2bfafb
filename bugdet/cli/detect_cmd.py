"""``bugdet label``, ``bugdet train`` and ``bugdet evaluate``: the detector stage's commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from bugdet.cli.common import ProjectOption, SetOption, console, open_project
from bugdet.errors import InputError


def label(
    project_dir: Path = ProjectOption,
    frame: Optional[List[int]] = typer.Option(None, "--frame", help="Frame id to judge (repeatable)."),
    bug: Optional[str] = typer.Option(None, "--bug", help="The frame shows this bug type."),
    good: bool = typer.Option(False, "--good", help="The frame shows no bug."),
    retract: bool = typer.Option(False, "--retract", help="Record a 'no' instead of a 'yes' (undo a judgement)."),
    who: str = typer.Option("", "--who", help="Who judged (kept with the label)."),
    from_ground_truth: bool = typer.Option(
        False, "--from-ground-truth", help="Simulate a tester: label K bug frames per type and N good frames drawn from ground truth."
    ),
    bugs_per_type: int = typer.Option(10, "--bugs-per-type", min=0, help="K, with --from-ground-truth."),
    good_frames: int = typer.Option(40, "--good-frames", min=0, help="N, with --from-ground-truth."),
    seed: int = typer.Option(0, "--seed", help="Seed of the simulated tester's draw."),
    split: str = typer.Option("train", "--split", help="Split the simulated tester labels from."),
    overrides: Optional[List[str]] = SetOption,
) -> None:
    """Record frame labels: a tester's judgement, or a simulated low-label budget from ground truth."""
    from bugdet.store.frames import get_frame, iter_frames
    from bugdet.store.labels import GOOD, record_labels, sample_labels_from_ground_truth

    project = open_project(project_dir, overrides)
    conn = project.connect()
    if from_ground_truth:
        frames = list(iter_frames(conn, split=split))
        rows = sample_labels_from_ground_truth(frames, project.config.detect.bug_types, bugs_per_type, good_frames, seed)
        if not rows:
            raise InputError(f"no frames with ground truth in split {split!r}")
        record_labels(conn, rows, who=who or "simulated-tester", source="groundtruth-sample")
        n_bug = sum(1 for _, t, _ in rows if t != GOOD)
        console.print(f"labeled {n_bug} bug frames and {len(rows) - n_bug} good frames from ground truth (split {split})")
        return
    if not frame:
        raise InputError("give --frame ID (with --bug TYPE or --good), or --from-ground-truth")
    if (bug is None) == (not good):
        raise InputError("give exactly one of --bug TYPE or --good")
    kind = GOOD if good else bug
    if kind != GOOD and kind not in project.config.detect.bug_types:
        raise InputError(f"--bug {kind}: not one of detect.bug_types ({', '.join(project.config.detect.bug_types)})")
    for fid in frame:
        if get_frame(conn, fid) is None:
            raise InputError(f"--frame {fid}: no such frame in {project.root}")
    record_labels(conn, [(fid, kind, 0 if retract else 1) for fid in frame], who=who, source="cli")
    console.print(f"recorded {len(frame)} judgement(s): {kind}{' (retracted)' if retract else ''}")


def train(
    project_dir: Path = ProjectOption,
    mode: Optional[str] = typer.Option(None, "--mode", help="supervised | objective | pretrain_finetune | multitask (detect.mode)."),
    model: Optional[str] = typer.Option(None, "--model", help="Detector config name or JSON file (detect.model)."),
    bugs: Optional[str] = typer.Option(None, "--bugs", help="Comma-separated bug types (detect.bug_types)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", min=1, help="detect.epochs."),
    run: Optional[str] = typer.Option(None, "--run", help="Run name under models/; an existing run resumes from its last checkpoint."),
    overrides: Optional[List[str]] = SetOption,
) -> None:
    """Train the detector on the objective and/or the labels; calibrate thresholds on validation."""
    from bugdet.detect.pipeline import train_project
    from bugdet.progress import rich_progress

    flags = list(overrides or [])
    for key, value in (("mode", mode), ("model", model), ("epochs", epochs)):
        if value is not None:
            flags.append(f"detect.{key}={json.dumps(value)}")
    if bugs:
        flags.append(f"detect.bug_types={json.dumps([b.strip() for b in bugs.split(',') if b.strip()])}")
    project = open_project(project_dir, flags)
    with rich_progress(console) as bar:
        trained = train_project(project, run_name=run, progress=bar)
    r = trained.result
    console.print(f"best epoch {r.best_epoch} (validation PR-AUC {r.best_score:.3f})")
    for t, thr in r.thresholds.items():
        note = "" if r.calibrated[t] else " (not calibrated: no bug frames of this type in validation)"
        console.print(f"  {t}: threshold {thr:.4f}{note}")
    console.print(f"detector: {trained.checkpoint}")


def evaluate(
    checkpoint: Path = typer.Argument(..., help="A detector checkpoint (models/<run>/detector.pt)."),
    project_dir: Path = ProjectOption,
    split: str = typer.Option("test", "--split", help="Frames of this split are scored."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the metrics as JSON here."),
    overrides: Optional[List[str]] = SetOption,
) -> None:
    """Score a detector: F1 at its calibrated threshold, PR-AUC, precision at 50% recall, per bug type."""
    from rich.table import Table

    from bugdet.detect.pipeline import evaluate_project

    project = open_project(project_dir, overrides)
    detector, evaluation = evaluate_project(project, checkpoint, split=split)
    table = Table(title=f"{checkpoint} on split {split}")
    for col in ("bug type", "F1", "PR-AUC", "P@R0.5", "TP", "FP", "FN", "bugs/frames"):
        table.add_column(col)
    for t, m in evaluation.metrics.items():
        table.add_row(t, f"{m.f1:.3f}", f"{m.pr_auc:.3f}", f"{m.precision_at_recall_0_5:.3f}", str(m.tp), str(m.fp), str(m.fn),
                      f"{m.positives}/{m.positives + m.negatives}")
    console.print(table)
    if not evaluation.metrics:
        raise InputError(f"split {split!r} has no frames with both bug and good judgements for {', '.join(detector.bug_types)}")
    if json_out:
        json_out.write_text(json.dumps(evaluation.to_dict(), indent=1))


def register(app: typer.Typer) -> None:
    app.command("label")(label)
    app.command("train")(train)
    app.command("evaluate")(evaluate)
