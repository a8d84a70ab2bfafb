"""``detect.mode: self_training`` for a project: pre-train, fine-tune a teacher, train a student.

The stages (issue 17's lever 3, :mod:`bugdet.detect.selftrain` has the why):

1. ``pretrain/``: the objectives alone on the train split (as ``pretrain_finetune`` begins);
2. ``teacher/``: those weights fine-tuned on the tester's labels (``pretrain_finetune``'s result);
3. the teacher scores the unlabeled train frames (the objectives' "no bug" pool) and its scores,
   re-centred on its calibrated thresholds (raised where they would call more than
   ``detect.pseudo_max_share`` of the pool a bug), become soft pseudo-labels;
4. ``student/``: the pre-trained weights again, fine-tuned on the labels plus the pseudo-labeled
   frames with the auxiliary confidence loss. The student is the run's detector.

Each stage keeps its own checkpoints under the run directory, so a run killed in any stage resumes
there: a finished stage's ``last.pt`` makes its trainer return the kept weights at once.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

from bugdet.detect.data import LabeledFrame, ObjectiveSampler
from bugdet.detect.model import BugDetector
from bugdet.detect.selftrain import PseudoLabels, PseudoLabelSampler, teacher_pseudo_labels
from bugdet.detect.train import TrainResult, TrainSettings, Trainer, predict_scores
from bugdet.progress import Progress


@dataclass
class TeacherStudentResult:
    student: TrainResult
    teacher: TrainResult
    pseudo: PseudoLabels


def train_teacher_student(new_detector: Callable[[], BugDetector], settings: TrainSettings, labeled: Sequence[LabeledFrame],
                          sampler: ObjectiveSampler, val: Sequence[LabeledFrame], run_dir: Path | None = None,
                          progress: Progress | None = None) -> TeacherStudentResult:
    """The four stages above; ``new_detector()`` makes a freshly initialised detector (same seed)."""
    if not sampler.unlabeled:
        raise ValueError("self-training needs unlabeled train frames to pseudo-label")

    def stage(name: str) -> Path | None:
        return run_dir / name if run_dir is not None else None

    pretrain = Trainer(new_detector(), replace(settings, mode="objective"), objective=sampler, val=val,
                       run_dir=stage("pretrain"), progress=progress).fit()
    pretrained = copy.deepcopy(pretrain.detector.state_dict())
    fine = replace(settings, epochs=settings.finetune_epochs, lr=settings.finetune_lr)

    teacher_model = new_detector()
    teacher_model.load_state_dict(pretrained)
    teacher = Trainer(teacher_model, replace(fine, mode="supervised"), labeled=labeled, val=val,
                      run_dir=stage("teacher"), progress=progress).fit()
    size = tuple(teacher.detector.input_size)
    scores = predict_scores(teacher.detector, sampler.unlabeled, device=settings.device)
    pseudo = teacher_pseudo_labels(scores, teacher.thresholds, teacher.detector.bug_types, sampler.unlabeled, size,
                                   max_positive_share=settings.pseudo_max_share)

    student_model = new_detector()
    student_model.load_state_dict(pretrained)
    student = Trainer(student_model, replace(fine, mode="self_training"), labeled=labeled, val=val,
                      run_dir=stage("student"), progress=progress, pseudo=PseudoLabelSampler(pseudo, size)).fit()
    return TeacherStudentResult(student, teacher, pseudo)
