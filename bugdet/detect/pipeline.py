"""Project-level training and evaluation: what ``bugdet train`` and ``bugdet evaluate`` run.

The trainer works on in-memory frames; this module decides which of a project's frames play
which part (tester labels from the train split, ground truth or labels of the validation split,
train-split frames as objective targets, the mask bank as sources) and where the run is kept
(``models/<run>/``: ``last.pt`` and ``best.pt`` while training, ``detector.pt`` when done).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from bugdet.detect.bug_types import with_effective_bug_types
from bugdet.detect.config import DetectConfig
from bugdet.detect.data import LabeledFrame, ObjectiveSampler
from bugdet.detect.evaluate import Evaluation, evaluate_frames
from bugdet.detect.frames import frames_with_ground_truth, frames_with_labels, load_images
from bugdet.detect.holdout import Holdout, hold_out
from bugdet.detect.model import BugDetector, create_detector, load_checkpoint, save_checkpoint
from bugdet.detect.train import TrainResult, TrainSettings, Trainer, plan_phases
from bugdet.device import resolve_torch_device
from bugdet.errors import InputError
from bugdet.progress import Progress
from bugdet.project import Project
from bugdet.store.frames import iter_frames
from bugdet.store.labels import GOOD, current_labels


def settings_from_config(cfg: DetectConfig, device: str) -> TrainSettings:
    return TrainSettings(
        mode=cfg.mode, epochs=cfg.epochs, steps_per_epoch=cfg.steps_per_epoch, batch_size=cfg.batch_size,
        lr=cfg.lr, finetune_epochs=cfg.finetune_epochs, finetune_lr=cfg.finetune_lr,
        objective_fraction=cfg.objective_fraction, bug_fraction=cfg.bug_fraction,
        localisation_weight=cfg.localisation_weight, color_jitter=cfg.color_jitter, ema_decay=cfg.ema_decay, patience=cfg.patience, seed=cfg.seed,
        prevalence=cfg.prevalence, device=device, pseudo_max_share=cfg.pseudo_max_share,
    )


def validation_frames(project: Project, cfg: DetectConfig, size: tuple[int, int]) -> list[LabeledFrame]:
    """Ground truth of the validation split when captures carry it, else the testers' labels there."""
    frames = frames_with_ground_truth(project, cfg.bug_types, size, split=cfg.val_split)
    return frames or frames_with_labels(project, cfg.bug_types, size, split=cfg.val_split)


def objective_sampler(project: Project, cfg: DetectConfig, size: tuple[int, int], good_only: bool,
                      exclude_ids: set[int] = frozenset()) -> ObjectiveSampler:
    """Objectives for every configured bug type that has one (a built-in simulation, or with
    ``augment.exemplars`` on, the train split's labeled bug frames as exemplars), on train-split
    targets (less ``exclude_ids``: frames held out for validation, never targets or exemplars)."""
    from bugdet.augment.assemble import no_objective_hint, project_objectives
    from bugdet.augment.generate import require_usable_targets
    from bugdet.augment.loaders import load_sources, load_targets

    augment = project.config.augment
    objectives = project_objectives(project, cfg.bug_types, exclude_ids=exclude_ids)
    if not objectives:
        raise InputError(no_objective_hint(cfg.bug_types, augment.exemplars))
    conn = project.connect()
    judged = current_labels(conn)
    train_rows = [f for f in iter_frames(conn, split=cfg.train_split) if f.id not in exclude_ids]
    # Frames a tester labeled as a bug are no "no bug" targets (nor unlabeled "no bug" frames below).
    unlabeled_rows = [f for f in train_rows if not any(v == 1 for k, v in judged.get(f.id, {}).items() if k != GOOD)]
    if good_only:
        ids = [f.id for f in train_rows if judged.get(f.id, {}).get(GOOD) == 1]
        if not ids:
            raise InputError("objective mode uses labeled good frames as targets, and none are labeled (bugdet label --good)")
    else:
        ids = [f.id for f in unlabeled_rows]
    ids = ids[: cfg.max_targets]
    if not ids:
        raise InputError(f"no frames in split {cfg.train_split!r} to build objectives on")
    targets = load_targets(project, frame_ids=ids, weapon_source=augment.weapon_source)
    needs_sources = any(o.needs_sources for o in objectives)
    sources = load_sources(project) if needs_sources else []
    for objective in objectives:  # FPPC with no findable weapon is an error with its fix, never silent
        require_usable_targets(objective, targets, augment.weapon_source)
    # Unlabeled train frames double as "no bug" examples (see ObjectiveSampler).
    step = max(1, len(unlabeled_rows) // cfg.max_targets)
    unlabeled = load_images(project, unlabeled_rows[::step], size)
    return ObjectiveSampler(objectives, targets, sources, cfg.bug_types, size,
                            unlabeled=unlabeled, unlabeled_fraction=cfg.unlabeled_fraction)


@dataclass
class TrainedRun:
    result: TrainResult
    run_dir: Path
    checkpoint: Path
    holdout_note: str | None = None  # set when validation frames were held out of the train split


def holdout_from_train(project: Project, cfg: DetectConfig, size: tuple[int, int],
                       labeled: list[LabeledFrame]) -> Holdout | None:
    """Validation frames held out of the train split's labels by capture or episode (see
    :mod:`bugdet.detect.holdout`), for a project whose validation split judges nothing."""
    labeled = labeled or frames_with_labels(project, cfg.bug_types, size, split=cfg.train_split)
    if not labeled:
        return None
    conn = project.connect()
    try:
        rows = list(iter_frames(conn, split=cfg.train_split))
    finally:
        conn.close()
    return hold_out(labeled, rows, rows, seed=cfg.seed)


def train_project(project: Project, run_name: str | None = None, progress: Progress | None = None,
                  notify: Callable[[str], None] | None = None) -> TrainedRun:
    """Train the project's detector; ``notify`` hears decisions a user should know before the
    long part starts (validation frames held out of the train split)."""
    from bugdet.augment.assemble import exemplar_counts

    project = with_effective_bug_types(project)
    cfg = project.config.detect
    device = resolve_torch_device(project.config.device)
    run_name = run_name or f"{cfg.mode}-{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = project.stage_dir("models") / run_name
    detector = create_detector(cfg.model, cfg.bug_types, seed=cfg.seed)
    size = detector.input_size
    settings = settings_from_config(cfg, device)
    phases = plan_phases(settings)
    self_training = cfg.mode == "self_training"  # pre-training, a teacher and a student (detect/teacher_student.py)
    labeled: list[LabeledFrame] = []
    if any(p.labeled for p in phases):
        labeled = frames_with_labels(project, cfg.bug_types, size, split=cfg.train_split)
        if not any(f.is_bug for f in labeled):
            raise InputError(f"mode {cfg.mode} needs labeled bug frames in split {cfg.train_split!r} (bugdet label; "
                             "ingest with --split train, or give a split column in the labels file)")
    val = validation_frames(project, cfg, size)
    holdout = None
    if not val and cfg.val_split != cfg.train_split:
        holdout = holdout_from_train(project, cfg, size, labeled)
        if holdout is not None:
            val = holdout.val
            labeled = holdout.train if labeled else []
            if notify is not None:
                notify(holdout.describe(cfg.val_split))
    sampler = None
    if any(p.objective for p in phases) or self_training:
        sampler = objective_sampler(project, cfg, size, good_only=cfg.mode == "objective",
                                    exclude_ids=holdout.excluded_frame_ids if holdout else frozenset())
    realism = {"checked": [], "skipped": "no objective or no labeled frames"}
    if sampler is not None and labeled:
        from bugdet.detect.objective_check import check_simulations

        realism = check_simulations(project, cfg, sampler, labeled, notify)
    pseudo_summary = None
    if self_training:
        from bugdet.detect.teacher_student import train_teacher_student

        stages = train_teacher_student(lambda: create_detector(cfg.model, cfg.bug_types, seed=cfg.seed), settings, labeled,
                                       sampler, val, run_dir=run_dir, progress=progress)
        result = stages.student
        pseudo_summary = {**stages.pseudo.describe(), "teacher_best_val_pr_auc": stages.teacher.best_score}
    else:
        trainer = Trainer(detector, settings, labeled=labeled, objective=sampler, val=val, run_dir=run_dir, progress=progress)
        result = trainer.fit()
    summary = {
        "labeled_frames": len(labeled),
        "labeled_bugs": sum(f.is_bug for f in labeled),
        "objective_targets": len(sampler.targets) if sampler else 0,
        "objective_sources": len(sampler.sources) if sampler else 0,
        "objective_exemplars": exemplar_counts(sampler.objectives) if sampler else {},
        "validation_frames": len(val),
        "validation_source": holdout.describe(cfg.val_split) if holdout else f"split {cfg.val_split!r}",
        "pretrained_backbone": detector.pretrained,
        "objective_realism": realism,
        "pseudo_labels": pseudo_summary,
    }
    checkpoint = run_dir / "detector.pt"
    save_checkpoint(checkpoint, result.detector, {
        "thresholds": result.thresholds, "calibrated": result.calibrated, "history": result.history,
        "settings": asdict(settings), "data": summary, "best_epoch": result.best_epoch, "best_val_pr_auc": result.best_score,
    })
    (run_dir / "summary.json").write_text(json.dumps({
        "checkpoint": str(checkpoint), "thresholds": result.thresholds, "calibrated": result.calibrated,
        "best_epoch": result.best_epoch, "best_val_pr_auc": result.best_score, "data": summary, "history": result.history,
    }, indent=1))
    return TrainedRun(result, run_dir, checkpoint, holdout.describe(cfg.val_split) if holdout else None)


def evaluate_project(project: Project, checkpoint: Path, split: str = "test") -> tuple[BugDetector, Evaluation]:
    detector, payload = load_checkpoint(checkpoint)
    frames = frames_with_ground_truth(project, detector.bug_types, detector.input_size, split=split)
    if not frames:
        frames = frames_with_labels(project, detector.bug_types, detector.input_size, split=split)
    if not frames:
        raise InputError(f"no frames with ground truth or labels in split {split!r} to evaluate on")
    device = resolve_torch_device(project.config.device)
    detector.to(device)
    return detector, evaluate_frames(detector, frames, payload.get("thresholds", {}), device=device)
