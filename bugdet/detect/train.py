"""Training the detector in the four modes the method compares.

- ``supervised``: only the few labeled frames (the baseline).
- ``objective``: only self-supervised objective pairs (k good frames, zero bug labels).
- ``pretrain_finetune``: the objective first, then the labeled frames at a lower rate.
- ``multitask``: every batch mixes objective pairs and labeled frames, trained jointly.
- ``self_training``: labeled frames plus unlabeled frames pseudo-labeled by a teacher (or by kNN
  weak labels), with the auxiliary confidence loss on the pseudo rows
  (:mod:`bugdet.detect.selftrain`); the student usually starts from pre-trained weights.

A run is a list of phases; every epoch ends with a checkpoint (model, optimiser, where in the
plan, best score so far) and validation on a labeled split. Batches are drawn from generators
seeded by (seed, epoch, step) and the learning rate is a function of the position in the plan,
so a run killed and resumed from its last checkpoint ends with the same weights as one that
never stopped. With ``ema_decay`` set, validation, the kept weights and the result use an
exponential moving average of the weights (:mod:`bugdet.detect.averaging`), saved with every
checkpoint. The best epoch by validation PR-AUC is kept; after training, each bug type's
threshold is calibrated on the validation split for the deployment prevalence.
"""

from __future__ import annotations

import copy
import math
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from bugdet.detect.averaging import WeightAverage
from bugdet.detect.data import Batch, LabeledFrame, LabeledSampler, ObjectiveSampler, batch_rng, concat_batches, to_tensor
from bugdet.detect.metrics import average_precision, calibrate_threshold
from bugdet.detect.model import BugDetector, load_checkpoint, save_checkpoint
from bugdet.detect.photometric import color_jitter
from bugdet.detect.region import require_viewmodel_inside
from bugdet.detect.selftrain import PseudoLabelSampler, confidence_targets
from bugdet.progress import NullProgress, Progress

Mode = Literal["supervised", "objective", "pretrain_finetune", "multitask", "self_training"]
MODES: tuple[str, ...] = ("supervised", "objective", "pretrain_finetune", "multitask", "self_training")


@dataclass
class TrainSettings:
    mode: Mode = "multitask"
    epochs: int = 8
    steps_per_epoch: int = 40
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    finetune_epochs: int = 4
    finetune_lr: float = 5e-4
    objective_fraction: float = 0.5
    bug_fraction: float = 0.25
    localisation_weight: float = 0.5
    color_jitter: float = 0.0
    ema_decay: float = 0.0  # 0 = off (detect.ema_decay defaults to 0.98): validate and keep an average of recent weights
    patience: int = 3
    seed: int = 0
    prevalence: float = 0.01
    device: str = "cpu"
    pseudo_fraction: float = 0.5  # self_training: share of each batch made of pseudo-labeled frames
    confidence_weight: float = 0.5  # self_training: weight of the student's own hardened prediction (Burns et al.)
    confidence_warmup: float = 0.2  # ... reached linearly over this share of the phase (0 at its start)
    pseudo_max_share: float = 0.02  # self_training: at most this share of the pool is a teacher's guessed bug, per type


@dataclass
class Phase:
    name: str
    epochs: int
    lr: float
    labeled: bool
    objective: bool
    pseudo: bool = False


def plan_phases(s: TrainSettings) -> list[Phase]:
    if s.mode == "supervised":
        return [Phase("supervised", s.epochs, s.lr, labeled=True, objective=False)]
    if s.mode == "objective":
        return [Phase("objective", s.epochs, s.lr, labeled=False, objective=True)]
    if s.mode == "pretrain_finetune":
        return [
            Phase("pretrain", s.epochs, s.lr, labeled=False, objective=True),
            Phase("finetune", s.finetune_epochs, s.finetune_lr, labeled=True, objective=False),
        ]
    if s.mode == "multitask":
        return [Phase("multitask", s.epochs, s.lr, labeled=True, objective=True)]
    if s.mode == "self_training":
        return [Phase("self_training", s.epochs, s.lr, labeled=True, objective=False, pseudo=True)]
    raise ValueError(f"unknown training mode {s.mode!r} (expected one of {', '.join(MODES)})")


@dataclass
class TrainResult:
    detector: BugDetector
    thresholds: dict[str, float]
    calibrated: dict[str, bool]
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = float("nan")


def _lr_at(phase: Phase, epoch: int, step: int, steps: int) -> float:
    """Short linear warm-up, then cosine decay to 5% over the phase: a pure function of position."""
    total = max(phase.epochs * steps, 1)
    t = epoch * steps + step
    warm = min(20, total // 10)
    if t < warm:
        return phase.lr * (t + 1) / warm
    progress = (t - warm) / max(total - warm, 1)
    return phase.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def predict_scores(detector: BugDetector, images: Sequence[np.ndarray], device: str = "cpu", batch_size: int = 64) -> np.ndarray:
    """Scores [N, T] for RGB frames of any size (resized to the detector's input)."""
    detector.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            x = to_tensor(images[i : i + batch_size], detector.input_size).to(device)
            scores, _ = detector(x)
            out.append(scores.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, len(detector.bug_types)), np.float32)


class Trainer:
    def __init__(
        self,
        detector: BugDetector,
        settings: TrainSettings,
        labeled: Sequence[LabeledFrame] = (),
        objective: ObjectiveSampler | None = None,
        val: Sequence[LabeledFrame] = (),
        run_dir: Path | None = None,
        progress: Progress | None = None,
        pseudo: PseudoLabelSampler | None = None,
    ):
        self.detector = detector.to(settings.device)
        self.s = settings
        self.phases = plan_phases(settings)
        needs_labels = any(p.labeled for p in self.phases)
        needs_objective = any(p.objective for p in self.phases)
        if needs_labels and not labeled:
            raise ValueError(f"mode {settings.mode} needs labeled frames")
        if needs_labels and not any(f.is_bug for f in labeled):
            raise ValueError(f"mode {settings.mode} needs at least one labeled bug frame")
        if needs_objective and objective is None:
            raise ValueError(f"mode {settings.mode} needs an objective")
        if any(p.pseudo for p in self.phases) and pseudo is None:
            raise ValueError(f"mode {settings.mode} needs pseudo-labeled frames")
        self.pseudo = pseudo
        self.confidence_weight = 0.0  # the auxiliary confidence loss's weight at the current step
        self.labeled = LabeledSampler(labeled, detector.input_size, settings.bug_fraction) if needs_labels else None
        self.objective = objective
        if objective is not None:
            require_viewmodel_inside(detector.region, [t.weapon_mask for t in objective.targets])
        self.val = list(val)
        self.run_dir = Path(run_dir) if run_dir else None
        self.progress = progress or NullProgress()
        with torch.no_grad():
            probe = torch.zeros(1, 3, *detector.input_size, device=settings.device)
            self.map_size = tuple(detector.activation_maps(probe)[1].shape[-2:])
        self._val_tensor = to_tensor([f.rgb for f in self.val], detector.input_size) if self.val else None
        self.average = WeightAverage(self.detector, settings.ema_decay) if settings.ema_decay > 0 else None

    @contextmanager
    def _kept_weights(self) -> Iterator[None]:
        """The detector holds the weights training keeps (the average, when on) inside the block;
        the live weights the optimiser steps come back after it."""
        if self.average is None:
            yield
            return
        live = copy.deepcopy(self.detector.state_dict())
        self.detector.load_state_dict(self.average.shadow)
        try:
            yield
        finally:
            self.detector.load_state_dict(live)

    # -- batches ---------------------------------------------------------------------------
    def _batch(self, phase: Phase, rng: np.random.Generator) -> Batch:
        n = self.s.batch_size
        if phase.pseudo:
            n_pseudo = min(n - 1, int(round(n * self.s.pseudo_fraction)))
            if n_pseudo > 0:
                return concat_batches(self.pseudo.batch(rng, n_pseudo), self._labeled_batch(rng, n - n_pseudo))
        if phase.labeled and phase.objective:
            n_obj = int(round(n * self.s.objective_fraction))
            n_obj -= n_obj % 2  # objective samples come in pairs
            a = self.objective.batch(rng, n_obj, self.map_size)
            b = self._labeled_batch(rng, n - n_obj)
            return concat_batches(a, b)
        if phase.objective:
            return self.objective.batch(rng, n, self.map_size)
        return self._labeled_batch(rng, n)

    def _labeled_batch(self, rng: np.random.Generator, n: int) -> Batch:
        """Labeled frames, colour-jittered: a handful of real frames seen hundreds of times would
        otherwise teach their palette. Objective pairs are not jittered: they are made fresh from
        many targets every step, and jitter on them hurt multi-task runs in the quality bench."""
        batch = self.labeled.batch(rng, n)
        if self.s.color_jitter > 0:
            batch.images = color_jitter(batch.images, np.random.default_rng(rng.integers(1 << 62)), self.s.color_jitter)
        return batch

    def _loss(self, batch: Batch) -> torch.Tensor:
        dev = self.s.device
        logits, cam = self.detector.activation_maps(batch.images.to(dev))
        known = batch.known.to(dev).float()
        labels = confidence_targets(batch.labels.to(dev), logits, batch.pseudo, self.confidence_weight)
        cls = F.binary_cross_entropy_with_logits(logits, labels, weight=known, reduction="sum")
        loss = cls / known.sum().clamp(min=1)
        if batch.masks is not None and self.s.localisation_weight > 0 and batch.mask_known.any():
            rows = batch.mask_known.to(dev)
            loc = F.binary_cross_entropy_with_logits(cam[rows], batch.masks.to(dev)[rows])
            loss = loss + self.s.localisation_weight * loc
        return loss

    def _confidence_weight(self, phase: Phase, epoch: int, step: int) -> float:
        """Burns et al. warm the confidence term up: early on the student's own guesses are noise."""
        done = (epoch * self.s.steps_per_epoch + step) / max(phase.epochs * self.s.steps_per_epoch, 1)
        ramp = 1.0 if self.s.confidence_warmup <= 0 else min(1.0, done / self.s.confidence_warmup)
        return self.s.confidence_weight * ramp

    # -- validation --------------------------------------------------------------------------
    def validation_scores(self) -> np.ndarray:
        self.detector.eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(self.val), 64):
                scores, _ = self.detector(self._val_tensor[i : i + 64].to(self.s.device))
                out.append(scores.float().cpu().numpy())
        return np.concatenate(out)

    def _validate(self) -> float:
        """Mean PR-AUC over the bug types that have bug frames in the validation split."""
        if not self.val:
            return float("nan")
        scores = self.validation_scores()
        aps = []
        for t in range(len(self.detector.bug_types)):
            labels = np.array([f.labels[t] > 0 for f in self.val if f.known[t]])
            col = np.array([scores[i, t] for i, f in enumerate(self.val) if f.known[t]])
            if labels.any():
                aps.append(average_precision(col, labels))
        return float(np.mean(aps)) if aps else float("nan")

    # -- checkpoints -----------------------------------------------------------------------
    def _state(self, optimizer: torch.optim.Optimizer, position: dict, best: dict, history: list) -> dict:
        average = self.average.state_dict() if self.average is not None else None
        return {"training": {"settings": asdict(self.s), "position": position, "best": best,
                             "history": history, "optimizer": optimizer.state_dict(), "average": average}}

    def _resume(self) -> tuple[dict, dict, list, dict | None]:
        last = self.run_dir / "last.pt" if self.run_dir else None
        if last is None or not last.exists():
            return {"phase": 0, "epoch": 0}, {"score": -1.0, "epoch": -1, "patience": self.s.patience}, [], None
        detector, payload = load_checkpoint(last)
        self.detector.load_state_dict(detector.state_dict())
        t = payload["training"]
        if self.average is not None and t.get("average"):
            self.average.load_state_dict(t["average"])
        return t["position"], t["best"], t["history"], t["optimizer"]

    # -- the loop --------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        torch.manual_seed(self.s.seed)
        position, best, history, opt_state = self._resume()
        best_state = copy.deepcopy(self.detector.state_dict())
        if self.run_dir and (self.run_dir / "best.pt").exists():
            best_state = load_checkpoint(self.run_dir / "best.pt")[0].state_dict()
        global_epoch = sum(p.epochs for p in self.phases[: position["phase"]]) + position["epoch"]
        total_steps = sum(p.epochs for p in self.phases) * self.s.steps_per_epoch
        self.progress.start(f"train {self.s.mode}", total_steps)
        self.progress.advance(global_epoch * self.s.steps_per_epoch)
        for phase_index in range(position["phase"], len(self.phases)):
            phase = self.phases[phase_index]
            params = [p for p in self.detector.parameters() if p.requires_grad]
            optimizer = torch.optim.AdamW(params, lr=phase.lr, weight_decay=self.s.weight_decay)
            start_epoch = position["epoch"] if phase_index == position["phase"] else 0
            if opt_state is not None and phase_index == position["phase"] and start_epoch > 0:
                optimizer.load_state_dict(opt_state)
            if start_epoch == 0:
                best["patience"] = self.s.patience
                if self.average is not None:
                    self.average.reset(self.detector)
            for epoch in range(start_epoch, phase.epochs):
                if best["patience"] <= 0:
                    break
                self.detector.train()
                losses = []
                for step in range(self.s.steps_per_epoch):
                    for group in optimizer.param_groups:
                        group["lr"] = _lr_at(phase, epoch, step, self.s.steps_per_epoch)
                    batch = self._batch(phase, batch_rng(self.s.seed, global_epoch, step))
                    if phase.pseudo:
                        self.confidence_weight = self._confidence_weight(phase, epoch, step)
                    loss = self._loss(batch)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    if self.average is not None:
                        self.average.update(self.detector)
                    losses.append(float(loss.detach()))
                    self.progress.advance()
                with self._kept_weights():
                    score = self._validate()
                    history.append({"epoch": global_epoch, "phase": phase.name, "loss": float(np.mean(losses)), "val_pr_auc": score})
                    improved = not math.isnan(score) and score > best["score"] + 1e-6
                    if improved or math.isnan(score):
                        best.update(score=score if not math.isnan(score) else best["score"], epoch=global_epoch, patience=self.s.patience)
                        best_state = copy.deepcopy(self.detector.state_dict())
                        if self.run_dir:
                            save_checkpoint(self.run_dir / "best.pt", self.detector)
                    else:
                        best["patience"] -= 1
                global_epoch += 1
                if self.run_dir:
                    nxt = {"phase": phase_index, "epoch": epoch + 1}
                    save_checkpoint(self.run_dir / "last.pt", self.detector, self._state(optimizer, nxt, best, history))
            # The next phase (fine-tuning) starts from the best weights so far, not the last.
            self.detector.load_state_dict(best_state)
            if self.run_dir:
                nxt = {"phase": phase_index + 1, "epoch": 0}
                save_checkpoint(self.run_dir / "last.pt", self.detector, self._state(optimizer, nxt, best, history))
        self.detector.load_state_dict(best_state)
        thresholds, calibrated = self.calibrate()
        return TrainResult(self.detector, thresholds, calibrated, history, best["epoch"], best["score"])

    def calibrate(self) -> tuple[dict[str, float], dict[str, bool]]:
        """Per-type thresholds maximising F1 at the deployment prevalence on the validation split."""
        thresholds, calibrated = {}, {}
        scores = self.validation_scores() if self.val else None
        for t, name in enumerate(self.detector.bug_types):
            labels = np.array([f.labels[t] > 0 for f in self.val if f.known[t]], dtype=bool)
            if scores is not None and labels.any() and not labels.all():
                col = np.array([scores[i, t] for i, f in enumerate(self.val) if f.known[t]])
                thresholds[name] = calibrate_threshold(col, labels, self.s.prevalence)
                calibrated[name] = True
            else:
                thresholds[name], calibrated[name] = 0.5, False
        return thresholds, calibrated
