"""Drawing pairs from targets and sources, and writing them to disk for `bugdet augment`.

Pair ``i`` of a run depends only on ``(seed, i)`` (its own generator), so a run is reproducible,
any pair can be regenerated alone, and the trainer can draw pairs on the fly with the same code.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from bugdet.augment.assemble import no_objective_hint, project_objectives
from bugdet.augment.base import Objective, Sample, SourceMask, TargetFrame, UnusableTarget
from bugdet.augment.loaders import bank_available, load_sources, load_targets
from bugdet.augment.sheet import render_sheet
from bugdet.errors import InputError
from bugdet.imageio import write_rgb
from bugdet.progress import NullProgress, Progress
from bugdet.project import Project


def usable_targets(objective: Objective, targets: Sequence[TargetFrame]) -> list[TargetFrame]:
    """Targets the objective can use (FPPC: a visible weapon of a usable size)."""
    if not objective.needs_weapon:
        return list(targets)
    fraction = getattr(getattr(objective, "params", None), "min_weapon_fraction", 0.0)
    return [t for t in targets if t.weapon_mask is not None
            and np.count_nonzero(t.weapon_mask) >= max(1, fraction * t.weapon_mask.size)]


#: What to do when no target frame shows a weapon, per weapon source (one line each).
WEAPON_FIXES = {
    "engine": "these captures carry no engine weapon masks (aux.weapon_mask): set augment.weapon_source=auto, or "
              "save one weapon mask with `bugdet prompt --frame FRAME --box X0,Y0,X1,Y1 --save --role weapon` and set "
              "augment.weapon_source=prompt",
    "auto": "no screen-anchored viewmodel was found in the train frames: save one weapon mask with `bugdet prompt "
            "--frame FRAME --box X0,Y0,X1,Y1 --save --role weapon` and set augment.weapon_source=prompt",
    "prompt": "the saved weapon prompt did not propagate to any frame: save a prompt on a frame of each capture "
              "(`bugdet prompt ... --save --role weapon`)",
}


def require_usable_targets(objective: Objective, targets: Sequence[TargetFrame], weapon_source: str) -> list[TargetFrame]:
    """:func:`usable_targets`, or a one-line error with the fix when there are none.

    An objective that needs the weapon (FPPC) must never run on empty weapon masks: it would
    paint "over the gun" where there is no gun and teach the detector nothing true."""
    usable = usable_targets(objective, targets)
    if usable or not targets:
        return usable
    if objective.needs_weapon:
        raise InputError(f"{objective.bug_type}: none of {len(targets)} target frames has a weapon mask "
                         f"(augment.weapon_source={weapon_source}); {WEAPON_FIXES.get(weapon_source, '')}; "
                         f"or leave {objective.bug_type} out of detect.bug_types")
    raise InputError(f"{objective.bug_type}: none of {len(targets)} target frames is usable")


def draw_pair(
    objective: Objective,
    targets: Sequence[TargetFrame],
    sources: Sequence[SourceMask],
    rng: np.random.Generator,
    max_tries: int = 40,
) -> tuple[Sample, Sample]:
    """One pair on a random target; targets the objective cannot use are skipped."""
    if not targets:
        raise InputError(f"{objective.bug_type}: no usable target frames")
    reason = ""
    for _ in range(max_tries):
        target = targets[int(rng.integers(len(targets)))]
        try:
            return objective.make_pair(target, sources, rng)
        except UnusableTarget as exc:
            reason = str(exc)
    raise InputError(f"{objective.bug_type}: no pair after {max_tries} tries (last: {reason})")


def pair_rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(index)])


@dataclass
class AugmentReport:
    bug_type: str
    pairs: int
    seed: int
    weapon_source: str
    targets: int
    sources: int
    source_origin: str  # bank / all / none
    out_dir: Path
    index: Path
    sheet: Path
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for key in ("out_dir", "index", "sheet"):
            d[key] = str(d[key])
        return d


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_samples(
    project: Project,
    bug_type: str,
    n: int,
    seed: int = 0,
    weapon_source: str | None = None,
    frame_ids: Sequence[int] | None = None,
    progress: Progress | None = None,
) -> AugmentReport:
    """Write ``n`` pairs under ``augment/<bug_type>/``: PNG images and masks, ``index.jsonl``
    (one sample per line), ``summary.json`` and ``sheet.png``. The objective is the one training
    uses (the bug type's simulation and/or its exemplars, see :mod:`bugdet.augment.assemble`). A finished run replaces the
    previous one of the same bug type in one rename, so readers never see a mix of two runs."""
    if n < 1:
        raise InputError("--n must be at least 1")
    cfg = project.config.augment
    source_name = weapon_source or cfg.weapon_source
    params = dict(cfg.objectives.get(bug_type, {}))
    if bug_type == "fppc" and source_name != "engine":
        # estimated weapon masks can miss the gun's rim by a pixel: keep it out of the negative's paste
        params.setdefault("weapon_margin_px", 1)
    objectives = project_objectives(project, [bug_type], params_by_type={bug_type: params})
    if not objectives:
        raise InputError(f"unknown bug type {bug_type!r}: {no_objective_hint([bug_type], cfg.exemplars)}")
    (objective,) = objectives
    targets = require_usable_targets(objective, load_targets(project, frame_ids, source_name), source_name)
    if not targets:
        raise InputError(f"{bug_type}: no target frames in the train split of {project.root}")
    sources: list[SourceMask] = []
    origin = "none"
    if objective.needs_sources:
        origin = "bank" if bank_available(project) else "all"
        sources = load_sources(project)
        if not sources:
            raise InputError(f"{bug_type}: no source masks in {project.root} (run `bugdet segment` first)")

    stage = project.stage_dir("augment")
    final = stage / bug_type
    work = stage / f".{bug_type}.{os.getpid()}.tmp"
    shutil.rmtree(work, ignore_errors=True)
    (work / "samples").mkdir(parents=True)
    progress = progress or NullProgress()
    progress.start(f"augment {bug_type}", n)
    sheet_pairs: list[tuple[Sample, Sample]] = []
    try:
        with open(work / "index.jsonl", "w", encoding="utf-8") as index:
            for i in range(n):
                pos, neg = draw_pair(objective, targets, sources, pair_rng(seed, i))
                for sample, kind in ((pos, "pos"), (neg, "neg")):
                    image_rel = f"samples/{i:06d}_{kind}.png"
                    mask_rel = f"samples/{i:06d}_{kind}_mask.png"
                    write_rgb(work / image_rel, sample.image)
                    cv2.imwrite(str(work / mask_rel), sample.mask.astype(np.uint8) * 255)
                    row = {"pair": i, "label": sample.label, "bug_type": sample.bug_type, "image": image_rel,
                           "mask": mask_rel, "mask_pixels": int(sample.mask.sum()), "meta": _to_jsonable(sample.meta)}
                    index.write(json.dumps(row, sort_keys=True) + "\n")
                if len(sheet_pairs) < cfg.sheet_pairs:
                    sheet_pairs.append((pos, neg))
                progress.advance()
        write_rgb(work / "sheet.png", render_sheet(sheet_pairs))
        params = _to_jsonable(dataclasses.asdict(getattr(objective, "params", None))) if dataclasses.is_dataclass(
            getattr(objective, "params", None)) else {}
        report = AugmentReport(bug_type, n, seed, source_name, len(targets), len(sources), origin,
                               final, final / "index.jsonl", final / "sheet.png", params)
        (work / "summary.json").write_text(json.dumps(report.to_dict(), indent=1, sort_keys=True), encoding="utf-8")
        shutil.rmtree(final, ignore_errors=True)
        os.replace(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return report


def read_index(path: Path) -> list[dict[str, Any]]:
    """The samples of a written run (paths in each row are relative to the index's folder)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no augment index (run `bugdet augment` first)")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
