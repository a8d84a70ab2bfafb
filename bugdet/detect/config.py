"""The ``detect:`` section: which detector, which bug types, and how to train it."""

from typing import Literal

from pydantic import Field

from bugdet.config_base import Section


class DetectConfig(Section):
    model: str = Field(
        "auto",
        description="Detector config: auto, a name from bugdet/detect/model_configs (compact_cnn, compact_cnn_viewmodel, "
        "clip_vit_s32, ...) or a JSON file. auto = compact_cnn_viewmodel (the viewmodel's corner at full resolution) when "
        "every bug type shows on the viewmodel (fppc), else compact_cnn (the whole frame).",
    )
    bug_types: list[str] = Field(
        default_factory=list,
        description="Bug types the detector has a head for; each needs an objective or labels. Empty: the bug types "
        "the project's labels hold (else its ground truth's).",
    )
    mode: Literal["supervised", "objective", "pretrain_finetune", "multitask", "self_training"] = Field(
        "pretrain_finetune",
        description="supervised (labels only), objective (self-supervised only), pretrain_finetune (the default: steadiest over seeds), "
        "multitask, self_training (pretrain_finetune's detector pseudo-labels the unlabeled train frames and a student "
        "learns from labels and pseudo-labels: about +0.03 F1 on the playtest bench, below its teacher on OpenArena (mean PR-AUC 0.18 vs 0.23), about 1.4x the training time).",
    )
    prevalence: float = Field(
        0.01, gt=0, lt=1, description="Bug prevalence the thresholds are calibrated for (deployment is about 1% or less)."
    )
    pseudo_max_share: float = Field(
        0.02, gt=0, le=1,
        description="self_training: the teacher may call at most this share of the unlabeled train frames a bug of any one type "
        "(its calibrated threshold rises where it would flag more). Bugs are rare in gameplay; raise it for footage you know is buggier, 1 = no cap.",
    )
    train_split: str = Field("train", description="Frames of this split provide labels and objective targets.")
    val_split: str = Field("val", description="Labeled frames of this split choose the best epoch and the thresholds.")
    epochs: int = Field(8, ge=1, description="Epochs of the main phase (pre-training for pretrain_finetune).")
    finetune_epochs: int = Field(4, ge=0, description="Fine-tuning epochs after pre-training (pretrain_finetune only).")
    steps_per_epoch: int = Field(40, ge=1, description="Optimiser steps per epoch.")
    batch_size: int = Field(32, ge=2, description="Frames per step.")
    lr: float = Field(2e-3, gt=0, description="Peak learning rate (AdamW, warm-up then cosine decay).")
    finetune_lr: float = Field(5e-4, gt=0, description="Peak learning rate of fine-tuning.")
    objective_fraction: float = Field(0.5, ge=0, le=1, description="Multi-task: share of each batch made of objective pairs.")
    unlabeled_fraction: float = Field(
        0.25, ge=0, lt=1,
        description="Share of each objective batch made of unlabeled train frames counted as 'no bug' (right ~99% of the time at realistic prevalence).",
    )
    bug_fraction: float = Field(0.25, gt=0, lt=1, description="Share of each labeled batch drawn from the few bug frames (oversampling).")
    localisation_weight: float = Field(0.5, ge=0, description="Weight of the activation-map loss on objective samples' bug masks.")
    color_jitter: float = Field(
        0.5, ge=0, le=1.5,
        description="Strength of per-frame colour jitter on training batches (0 = off): helps a detector trained on one palette work on scene variants it never saw.",
    )
    ema_decay: float = Field(
        0.98, ge=0, lt=1,
        description="Keep an exponential moving average of the weights with this decay per step (0 = off) and validate, keep and export the average: steadier with few labels.",
    )
    patience: int = Field(3, ge=1, description="Early stopping: epochs without validation improvement before a phase ends.")
    seed: int = Field(0, description="Seed of initialisation and of every training batch.")
    max_targets: int = Field(400, ge=1, description="At most this many target frames are held in memory for the objectives.")
    check_objective_pairs: int = Field(
        24, ge=0,
        description="Before training, draw this many pairs from each built-in simulation and measure whether its positives "
        "lean towards the project's labeled real bug frames (bugdet.augment.realism; result in the training summary, "
        "and a note when one does not, with pretrained embeddings only: unpretrained ones were measured to mislead). 0 = skip.",
    )
