"""The fixed evaluation set and scoring a model package on it exactly as the service would.

The set is chosen once (frames of a split and scenes) and frozen into ``STATE/eval_set.json`` by
content hash, so new captures of the same split never change what champion and challenger are
compared on from one night to the next. Both models are scored from their *packages* through the
service's own loading and preprocessing (:func:`service.runtime.load_model`,
:func:`service.frames.fit_to_input`), so the comparison measures what would actually be served.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bugdet.detect.frames import truth_vector
from bugdet.detect.metrics import evaluate_scores
from bugdet.errors import InputError
from bugdet.imageio import read_rgb
from bugdet.nightly.config import EvalSet
from bugdet.nightly.state import read_json, utc_now, write_json_atomic
from bugdet.project import Project
from bugdet.store.frames import FrameRow, iter_frames
from bugdet.store.labels import current_labels, label_vector

EVAL_SET_NAME = "eval_set.json"


@dataclass(frozen=True)
class FrozenEvalSet:
    path: Path
    sha256: list[str]
    definition: dict
    frozen_at: str


def freeze_eval_set(project: Project, spec: EvalSet, state_dir: Path) -> FrozenEvalSet:
    """The frozen set: read it if it exists, else choose it now from the project's frames."""
    path = state_dir / EVAL_SET_NAME
    data = read_json(path)
    if data is None:
        conn = project.connect()
        try:
            rows = [f for f in iter_frames(conn, split=spec.split) if not spec.scenes or f.scene in spec.scenes]
        finally:
            conn.close()
        rows = rows[: spec.max_frames] if spec.max_frames else rows
        if not rows:
            scenes = f" of scenes {', '.join(spec.scenes)}" if spec.scenes else ""
            raise InputError(f"no frames in split {spec.split!r}{scenes} for the evaluation set (capture a held-out level first)")
        data = {"definition": spec.model_dump(), "frozen_at": utc_now(), "sha256": [f.sha256 for f in rows]}
        write_json_atomic(path, data)
    return FrozenEvalSet(path, list(data["sha256"]), dict(data.get("definition", {})), str(data.get("frozen_at", "")))


def eval_frames(project: Project, frozen: FrozenEvalSet) -> list[FrameRow]:
    conn = project.connect()
    try:
        by_sha = {f.sha256: f for f in iter_frames(conn)}
    finally:
        conn.close()
    missing = [s for s in frozen.sha256 if s not in by_sha]
    if missing:
        raise InputError(f"{frozen.path}: {len(missing)} frozen evaluation frames are no longer in the project "
                         f"(first {missing[0][:12]}); delete the file to choose a new set")
    return [by_sha[s] for s in frozen.sha256]


def score_package(project: Project, package: Path, frames: list[FrameRow], batch: int = 32) -> dict[str, dict]:
    """Per bug type metrics of the package at its own thresholds: ground truth where captures carry
    it, else the testers' current labels. Types without both bug and good frames are left out."""
    from service.frames import fit_to_input
    from service.model_package import PackageError, load_manifest
    from service.runtime import load_model

    try:
        model = load_model(load_manifest(package, verify=True), device="cpu")
    except PackageError as exc:
        raise InputError(f"cannot score {package}: {exc}") from None
    height, width = model.input_hw
    bug_types = list(model.manifest.bug_types)
    conn = project.connect()
    try:
        judged = current_labels(conn)
    finally:
        conn.close()
    scores = []
    for i in range(0, len(frames), batch):
        images = np.stack([fit_to_input(read_rgb(project.root / f.path), height, width) for f in frames[i : i + batch]])
        scores.append(model.run(images)[0])
    all_scores = np.concatenate(scores)
    labels, known = [], []
    for f in frames:
        y, k = truth_vector(f, bug_types) if f.ground_truth is not None else label_vector(judged.get(f.id, {}), bug_types)
        labels.append(y)
        known.append(k)
    labels_arr, known_arr = np.stack(labels), np.stack(known)
    out = {}
    for t, name in enumerate(bug_types):
        rows = known_arr[:, t]
        y = labels_arr[rows, t] > 0
        if y.any() and not y.all():
            out[name] = evaluate_scores(all_scores[rows, t], y, model.manifest.thresholds[name]).to_dict()
    return out
