"""Training data for the detector: labeled frames and objective samples, as tensors.

Two sources feed training. *Labeled frames* are the few real frames a tester judged (bug or
good). *Objective samples* are made on the fly by the augment stage's objectives: a positive and
its matched negative from the same content, so every batch contrasts "bug" with "same picture,
no bug". Objective samples also carry a pixel mask of where the bug is, which supervises the
localisation map directly.

Everything random is drawn from a generator seeded by (seed, epoch, step), so a resumed run
sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import torch

from bugdet.augment.base import Objective, SourceMask, TargetFrame, UnusableTarget


def batch_rng(seed: int, epoch: int, step: int, stream: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, step, stream])


def resize_rgb(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    if rgb.shape[:2] == (h, w):
        return rgb
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)


def to_tensor(images: Sequence[np.ndarray], size: tuple[int, int]) -> torch.Tensor:
    """RGB uint8 images -> float [N, 3, H, W] in [0, 1] at the detector's input size."""
    arr = np.stack([resize_rgb(im, size) for im in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(255.0)


def masks_to_tensor(masks: Sequence[np.ndarray | None], size: tuple[int, int]) -> torch.Tensor:
    """Bug masks -> fraction of each cell covered, at the activation map's size [N, h, w]."""
    h, w = size
    out = np.zeros((len(masks), h, w), np.float32)
    for i, m in enumerate(masks):
        if m is not None and m.any():
            out[i] = cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(out)


@dataclass
class LabeledFrame:
    """A real frame with a tester's (or ground truth's) judgement per bug type."""

    rgb: np.ndarray  # already at the detector's input size
    labels: np.ndarray  # [T] float32 0/1
    known: np.ndarray  # [T] bool: which bug types the judgement covers
    frame_id: int | None = None

    @property
    def is_bug(self) -> bool:
        return bool((self.labels[self.known] > 0).any())


@dataclass
class Batch:
    images: torch.Tensor  # [N, 3, H, W]
    labels: torch.Tensor  # [N, T]
    known: torch.Tensor  # [N, T] bool
    masks: torch.Tensor | None = None  # [N, T, h, w] coverage, objective samples only
    mask_known: torch.Tensor | None = None  # [N] bool: rows whose masks are exact
    pseudo: torch.Tensor | None = None  # [N] bool: rows whose labels are another model's guesses (self-training)


def jitter_frame(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mild photometric jitter and a small shift: k real bug frames get seen many times."""
    gain = rng.uniform(0.85, 1.15)
    bias = rng.uniform(-12, 12)
    out = np.clip(rgb.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)
    dx, dy = rng.integers(-4, 5, size=2)
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(out, m, (rgb.shape[1], rgb.shape[0]), borderMode=cv2.BORDER_REFLECT)


class LabeledSampler:
    """Batches of labeled frames with bugs oversampled to ``bug_fraction`` of each batch."""

    def __init__(self, frames: Sequence[LabeledFrame], input_size: tuple[int, int], bug_fraction: float = 0.25):
        if not frames:
            raise ValueError("no labeled frames to train on")
        self.frames = list(frames)
        self.input_size = input_size
        self.bugs = [f for f in self.frames if f.is_bug]
        self.goods = [f for f in self.frames if not f.is_bug]
        self.bug_fraction = bug_fraction if self.bugs and self.goods else (1.0 if self.bugs else 0.0)

    def batch(self, rng: np.random.Generator, n: int) -> Batch:
        n_bug = int(round(n * self.bug_fraction))
        picks = [self.bugs[i] for i in rng.integers(0, len(self.bugs), n_bug)] if n_bug else []
        picks += [self.goods[i] for i in rng.integers(0, len(self.goods), n - n_bug)] if n - n_bug else []
        images = [jitter_frame(f.rgb, rng) for f in picks]
        return Batch(
            images=to_tensor(images, self.input_size),
            labels=torch.from_numpy(np.stack([f.labels for f in picks])),
            known=torch.from_numpy(np.stack([f.known for f in picks])),
        )


class ObjectiveSampler:
    """Positive/negative pairs from the augment stage's objectives, made on the fly.

    With ``unlabeled`` frames, a share of each batch (``unlabeled_fraction``) is plain unlabeled
    frames counted as "no bug". At realistic prevalence (under 1%) that label is right 99 times
    in 100, and it is what teaches the detector the hard negatives no pair contains: the weapon
    lowered for a reload, the gun drawn correctly in front of a wall the player hugs.
    """

    def __init__(
        self,
        objectives: Sequence[Objective],
        targets: Sequence[TargetFrame],
        sources: Sequence[SourceMask],
        bug_types: Sequence[str],
        input_size: tuple[int, int],
        unlabeled: Sequence[np.ndarray] = (),
        unlabeled_fraction: float = 0.25,
    ):
        if not objectives:
            raise ValueError("no objectives to sample from")
        if not targets:
            raise ValueError("objective training needs target frames")
        self.objectives = list(objectives)
        self.targets = list(targets)
        self.sources = list(sources)
        self.bug_types = list(bug_types)
        self.input_size = input_size
        self.unlabeled = [resize_rgb(u, input_size) for u in unlabeled]
        self.unlabeled_fraction = unlabeled_fraction if self.unlabeled else 0.0
        for o in self.objectives:
            if o.bug_type not in self.bug_types:
                raise ValueError(f"objective {o.bug_type!r} is not one of the detector's bug types {self.bug_types}")

    def batch(self, rng: np.random.Generator, n: int, map_size: tuple[int, int]) -> Batch:
        images, labels, masks = [], [], []
        t = len(self.bug_types)
        n_unlabeled = int(round(n * self.unlabeled_fraction))
        for i in rng.integers(0, len(self.unlabeled), n_unlabeled) if n_unlabeled else []:
            images.append(self.unlabeled[i])
            labels.append(np.zeros(t, np.float32))
            masks.append([None] * t)
        failures = 0
        while len(images) < n:
            objective = self.objectives[int(rng.integers(len(self.objectives)))]
            target = self.targets[int(rng.integers(len(self.targets)))]
            try:
                pair = objective.make_pair(target, self.sources, rng)
            except UnusableTarget:
                failures += 1
                if failures > 50 * n:
                    raise ValueError(f"objective {objective.bug_type!r} cannot use any of the target frames") from None
                continue
            for sample in pair:
                row = np.zeros(t, np.float32)
                row[self.bug_types.index(sample.bug_type)] = float(sample.label)
                images.append(sample.image)
                labels.append(row)
                per_type = [None] * t
                per_type[self.bug_types.index(sample.bug_type)] = sample.mask
                masks.append(per_type)
        images, labels, masks = images[:n], labels[:n], masks[:n]
        mask_t = torch.stack([masks_to_tensor(m, map_size) for m in masks])  # [N, T, h, w]
        return Batch(
            images=to_tensor(images, self.input_size),
            labels=torch.from_numpy(np.stack(labels)),
            # The targets are ordinary (mostly clean) frames: the other types' "no bug" is known too.
            known=torch.ones((n, t), dtype=torch.bool),
            masks=mask_t,
            mask_known=torch.ones(n, dtype=torch.bool),
        )


def concat_batches(a: Batch, b: Batch) -> Batch:
    n_a, n_b = a.images.shape[0], b.images.shape[0]

    def masks_of(x: Batch, n: int, like: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        if x.masks is not None:
            return x.masks, x.mask_known
        ref = like.masks
        return torch.zeros((n, *ref.shape[1:])), torch.zeros(n, dtype=torch.bool)

    if a.pseudo is None and b.pseudo is None:
        pseudo = None
    else:
        pseudo = torch.cat([a.pseudo if a.pseudo is not None else torch.zeros(n_a, dtype=torch.bool),
                            b.pseudo if b.pseudo is not None else torch.zeros(n_b, dtype=torch.bool)])
    if a.masks is None and b.masks is None:
        masks = mask_known = None
    else:
        ma, ka = masks_of(a, n_a, b)
        mb, kb = masks_of(b, n_b, a)
        masks, mask_known = torch.cat([ma, mb]), torch.cat([ka, kb])
    return Batch(
        images=torch.cat([a.images, b.images]),
        labels=torch.cat([a.labels, b.labels]),
        known=torch.cat([a.known, b.known]),
        masks=masks,
        mask_known=mask_known,
        pseudo=pseudo,
    )
