"""``bugdet label``, ``bugdet train`` and ``bugdet evaluate``: the detector stage's commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from bugdet.cli.common import ProjectOption, SetOption, console, open_project
from bugdet.errors import InputError


label_app = typer.Typer(
    help="Record frame labels: a tester's judgement, a labels file (import/export), or a simulated budget.",
    no_args_is_help=False,
)

FrameOption = typer.Option(
    None, "--frame", help="Frame to judge: its ingested file path or name, content sha256, or id (repeatable)."
)


@label_app.callback(invoke_without_command=True)
def label(
    ctx: typer.Context,
    project_dir: Path = ProjectOption,
    frame: Optional[List[str]] = FrameOption,
    bug: Optional[str] = typer.Option(None, "--bug", help="The frame shows this bug type."),
    good: bool = typer.Option(False, "--good", help="The frame shows no bug."),
    retract: bool = typer.Option(False, "--retract", help="Remove this judgement (the frame is unlabeled again; history is kept)."),
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
    """Record frame labels (--frame with --bug/--good), or `label import FILE` / `label export FILE`."""
    from bugdet.detect.bug_types import effective_bug_types, known_bug_types
    from bugdet.store.database import transaction
    from bugdet.store.frames import iter_frames
    from bugdet.store.labels import GOOD, ensure_labels_schema, insert_labels, record_labels, retract_labels, \
        sample_labels_from_ground_truth
    from bugdet.store.resolve import resolve_frames

    if ctx.invoked_subcommand is not None:
        ctx.obj = {"project_dir": project_dir, "overrides": overrides}
        return
    project = open_project(project_dir, overrides)
    conn = project.connect()
    if from_ground_truth:
        frames = list(iter_frames(conn, split=split))
        rows = sample_labels_from_ground_truth(frames, effective_bug_types(project), bugs_per_type, good_frames, seed)
        if not rows:
            raise InputError(f"no frames with ground truth in split {split!r}")
        record_labels(conn, rows, who=who or "simulated-tester", source="groundtruth-sample")
        n_bug = sum(1 for _, t, _ in rows if t != GOOD)
        console.print(f"labeled {n_bug} bug frames and {len(rows) - n_bug} good frames from ground truth (split {split})")
        return
    if not frame:
        raise InputError("give --frame FRAME (with --bug TYPE or --good), `bugdet label import FILE`, or --from-ground-truth")
    if (bug is None) == (not good):
        raise InputError("give exactly one of --bug TYPE or --good")
    kind = GOOD if good else bug
    known = known_bug_types(project, conn)
    if kind != GOOD and kind not in known:
        raise InputError(f"--bug {kind}: unknown bug type (known: {', '.join(known)}; add yours to detect.bug_types)")
    ids = [f.id for f in resolve_frames(conn, frame)]
    ensure_labels_schema(conn)
    with transaction(conn):
        if retract:
            n = retract_labels(conn, [(fid, kind) for fid in ids], who=who, source="cli")
        else:
            n = len(insert_labels(conn, [(fid, kind, 1) for fid in ids], who=who, source="cli"))
    if retract:
        console.print(f"removed {n} {kind} label(s) ({len(ids) - n} of the frames had none)")
    else:
        console.print(f"recorded {n} judgement(s): {kind}")


def _subcommand_project(ctx: typer.Context, project_dir: Optional[Path], overrides: Optional[List[str]]):
    """``-p``/``--set`` may come before the subcommand (``label -p DIR import F``) or after it."""
    parent = ctx.obj or {}
    root = project_dir or parent.get("project_dir") or Path(".")
    return open_project(root, [*(parent.get("overrides") or []), *(overrides or [])])


SubProjectOption = typer.Option(None, "--project", "-p", help="Project directory (holds bugdet.yaml).")


@label_app.command("import")
def label_import(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="Labels file: CSV with columns frame,label[,split][,box], or JSON lines (.jsonl)."),
    project_dir: Optional[Path] = SubProjectOption,
    who: str = typer.Option("", "--who", help="Who labeled (kept with every label)."),
    overrides: Optional[List[str]] = SetOption,
) -> None:
    """Import a labels file, all-or-nothing: one bad row and nothing is written (docs/own-game.md)."""
    from bugdet.detect.bug_types import known_bug_types
    from bugdet.store.labels_io import import_labels

    project = _subcommand_project(ctx, project_dir, overrides)
    conn = project.connect()
    try:
        report = import_labels(conn, file, known_bug_types(project, conn), who=who or "import")
    finally:
        conn.close()
    console.print(f"{file}: {report.describe()}", markup=False)


@label_app.command("export")
def label_export(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="Where to write: .csv, or .jsonl for JSON lines."),
    project_dir: Optional[Path] = SubProjectOption,
    overrides: Optional[List[str]] = SetOption,
) -> None:
    """Write the project's standing labels in the import format (importing it back changes nothing)."""
    from bugdet.store.labels_io import export_rows, write_label_file

    project = _subcommand_project(ctx, project_dir, overrides)
    conn = project.connect()
    try:
        rows, skipped_no = export_rows(conn)
    finally:
        conn.close()
    n = write_label_file(file, rows)
    note = f" ({skipped_no} 'not this bug type' judgements have no place in the format and were left out)" if skipped_no else ""
    console.print(f"wrote {n} labels to {file}{note}", markup=False)


def train(
    project_dir: Path = ProjectOption,
    mode: Optional[str] = typer.Option(None, "--mode", help="supervised | objective | pretrain_finetune | multitask | self_training (detect.mode)."),
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
        trained = train_project(project, run_name=run, progress=bar,
                                notify=lambda line: console.print(f"note: {line}", markup=False))
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
    app.add_typer(label_app, name="label")
    app.command("train")(train)
    app.command("evaluate")(evaluate)
