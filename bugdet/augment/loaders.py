"""Targets and sources of the objectives, read from a project.

Targets are good or unlabeled frames with their weapon mask from one of three sources
(``engine`` stencil, a tester's ``prompt`` propagated along the capture, or ``auto`` temporal
estimation). Sources are the masks of the filtering stage's bank (kept and cluster-balanced,
with sampling weights); before a bank exists, every stored mask is used and a log line says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import defaultdict
from typing import Iterable, Sequence

import numpy as np

from bugdet.augment.base import SourceMask, TargetFrame
from bugdet.augment.weapon import PropagationParams, TemporalParams, WeaponTemplate
from bugdet.errors import InputError
from bugdet.imageio import read_mask, read_rgb
from bugdet.project import Project
from bugdet.segment.masks import MaskRecord, iter_masks, mask_bbox, rle_decode, rle_encode
from bugdet.store.frames import FrameRow, iter_frames, training_frames

log = logging.getLogger("bugdet.augment")

WEAPON_SOURCES = ("engine", "prompt", "auto")
WEAPON_ROLE = "weapon"
PROMPT_BACKEND = "prompt"
#: Mask labels that name the viewmodel itself (engine-ID masks, prompts saved with a role).
WEAPON_LABELS = frozenset({"weapon", "viewmodel"})


def _select_frames(
    project: Project, frame_ids: Iterable[int] | None, include_bugs: bool, split: str | None
) -> list[FrameRow]:
    conn = project.connect()
    try:
        if split is None and frame_ids is None:
            # no explicit choice: train-split frames only, never validation or test (a leak)
            rows = training_frames(conn, project.config.detect.train_split)
        else:
            rows = list(iter_frames(conn, split=split))
    finally:
        conn.close()
    if frame_ids is not None:
        wanted = list(dict.fromkeys(int(i) for i in frame_ids))
        by_id = {r.id: r for r in rows}
        missing = [i for i in wanted if i not in by_id]
        if missing:
            raise InputError(f"{len(missing)} frame id(s) not in the project{' split ' + split if split else ''}: {missing[:5]}")
        rows = [by_id[i] for i in wanted]
    if not include_bugs:
        rows = [r for r in rows if not r.is_bug()]
    return rows


def engine_weapon_mask(project: Project, row: FrameRow) -> np.ndarray | None:
    """The capture's viewmodel stencil of a frame, or None when the capture had none."""
    rel = (row.aux or {}).get("weapon_mask")
    return None if not rel else read_mask(project.root / rel)


def prompt_weapon_masks(project: Project) -> dict[int, MaskRecord]:
    """Frame id -> the tester's saved weapon mask (newest per frame)."""
    conn = project.connect()
    try:
        found = {}
        for m in iter_masks(conn, backend=PROMPT_BACKEND):
            if m.meta.get("role") == WEAPON_ROLE:
                found[m.frame_id] = m
        return found
    finally:
        conn.close()


def load_targets(
    project: Project,
    frame_ids: Iterable[int] | None = None,
    weapon_source: str | None = None,
    *,
    include_bugs: bool | None = None,
    split: str | None = None,
) -> list[TargetFrame]:
    """Target frames (good or unlabeled; ``include_bugs`` adds known bug frames) with weapon masks.

    Without ``frame_ids`` or ``split`` the targets are the train split's frames (see
    :func:`bugdet.store.frames.training_frames`): validation and test frames are never drawn.

    ``weapon_source`` defaults to the project's ``augment.weapon_source``. A frame whose weapon
    cannot be found gets ``weapon_mask=None`` (engine: no stencil) or an empty mask (prompt/auto:
    the weapon is not visible, e.g. lowered for a reload); FPPC skips both.
    """
    cfg = project.config.augment
    source = weapon_source or cfg.weapon_source
    if source not in WEAPON_SOURCES:
        raise InputError(f"unknown weapon source {source!r}; expected one of {', '.join(WEAPON_SOURCES)}")
    rows = _select_frames(project, frame_ids, cfg.include_bug_frames if include_bugs is None else include_bugs, split)
    images = [read_rgb(project.root / r.path) for r in rows]
    if source == "engine":
        masks = [engine_weapon_mask(project, r) for r in rows]
        missing = sum(m is None for m in masks)
        if missing:
            log.warning("%d of %d target frames have no engine weapon mask (aux.weapon_mask)", missing, len(rows))
    elif source == "prompt":
        masks = _prompt_masks(project, rows, images, cfg.temporal_frames)
    else:
        masks = _auto_masks(project, rows, images, cfg.temporal_frames)
    return [TargetFrame(rgb, m, r.id) for r, rgb, m in zip(rows, images, masks)]


#: Bump when the estimators change, so cached weapon masks from older code are not reused.
WEAPON_CACHE_VERSION = 2


class _WeaponMaskCache:
    """Estimated weapon masks kept under ``augment/weapon_masks/`` (RLE per frame content hash).

    A capture's template is fixed by its inputs (the pool frames, the prompt, the parameters),
    and so is each frame's mask; the key hashes those inputs, so the trainer's repeated
    ``load_targets`` calls propagate each frame once, and any change of input starts afresh."""

    def __init__(self, project: Project, kind: str, key_parts: list):
        digest = hashlib.sha256(json.dumps([WEAPON_CACHE_VERSION, kind, *key_parts], sort_keys=True, default=str)
                                .encode()).hexdigest()[:24]
        self.path = project.stage_dir("augment") / "weapon_masks" / f"{kind}-{digest}.json"
        self.frames: dict[str, dict] = {}
        if self.path.is_file():
            try:
                self.frames = json.loads(self.path.read_text(encoding="utf-8"))["frames"]
            except (OSError, ValueError, KeyError):
                self.frames = {}  # a damaged cache is recomputed, never trusted

    def get(self, sha: str) -> np.ndarray | None:
        rle = self.frames.get(sha)
        return None if rle is None else rle_decode(rle)

    def put_all(self, items: dict[str, np.ndarray]) -> None:
        if not items:
            return
        self.frames.update({sha: rle_encode(m) for sha, m in items.items()})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"frames": self.frames}, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, self.path)


def _capture_pool(project: Project, conn, source_id: int, size: int) -> tuple[list[FrameRow], list[np.ndarray]]:
    """Up to ``size`` frames evenly spread over one capture (the template's statistics)."""
    capture = list(iter_frames(conn, source_id=source_id))
    if not capture:
        return [], []
    pick = sorted(set(np.linspace(0, len(capture) - 1, min(size, len(capture))).round().astype(int).tolist()))
    rows = [capture[i] for i in pick]
    return rows, [read_rgb(project.root / r.path) for r in rows]


def _masks_via_cache(cache: _WeaponMaskCache, rows: Sequence[FrameRow], images: Sequence[np.ndarray],
                     members: Sequence[int], template_factory) -> dict[int, np.ndarray]:
    """Masks of ``members`` (indices into rows), computing only those the cache lacks."""
    out = {k: cache.get(rows[k].sha256) for k in members}
    missing = [k for k, m in out.items() if m is None]
    if missing:
        template: WeaponTemplate = template_factory()
        computed = template.masks([images[k] for k in missing])
        out.update(zip(missing, computed))
        cache.put_all({rows[k].sha256: m for k, m in zip(missing, computed)})
    return out


def _prompt_masks(project: Project, rows: Sequence[FrameRow], images: Sequence[np.ndarray],
                  pool_size: int) -> list[np.ndarray | None]:
    refs = prompt_weapon_masks(project)
    if not refs:
        raise InputError("no weapon prompt saved: segment the weapon on one frame with `bugdet prompt ... --save --role weapon`")
    conn = project.connect()
    try:
        ref_rows = {r.id: r for r in iter_frames(conn) if r.id in refs}

        def nearest_ref(row: FrameRow) -> int:
            # Same capture first (same weapon and lighting), then the closest frame in it.
            return min(ref_rows, key=lambda i: (ref_rows[i].source_id != row.source_id,
                                                abs(ref_rows[i].source_index - row.source_index), i))

        out: list[np.ndarray | None] = [None] * len(rows)
        groups: dict[int, list[int]] = defaultdict(list)
        for k, row in enumerate(rows):
            if row.id in refs:
                out[k] = refs[row.id].decode()
            else:
                groups[nearest_ref(row)].append(k)
        for ref_id, members in groups.items():
            ref_row, ref_mask = ref_rows[ref_id], refs[ref_id]
            pool_rows = list(iter_frames(conn, source_id=ref_row.source_id))
            cache = _WeaponMaskCache(project, "prompt", [ref_mask.id, ref_row.sha256, ref_mask.rle["counts"][:64],
                                                         len(pool_rows), repr(PropagationParams())])

            def factory(ref_row=ref_row, ref_mask=ref_mask) -> WeaponTemplate:
                _, pool = _capture_pool(project, conn, ref_row.source_id, pool_size)
                return WeaponTemplate.from_prompt(read_rgb(project.root / ref_row.path), ref_mask.decode(), pool)

            for k, m in _masks_via_cache(cache, rows, images, members, factory).items():
                out[k] = m
    finally:
        conn.close()
    log.info("weapon masks of %d frames propagated from %d prompt(s)", sum(len(g) for g in groups.values()), len(groups))
    return out


def _auto_masks(
    project: Project, rows: Sequence[FrameRow], images: Sequence[np.ndarray], pool_size: int
) -> list[np.ndarray | None]:
    by_capture: dict[int, list[int]] = defaultdict(list)
    for k, row in enumerate(rows):
        by_capture[row.source_id].append(k)
    out: list[np.ndarray | None] = [None] * len(rows)
    temporal = TemporalParams(max_frames=pool_size)
    conn = project.connect()
    try:
        for source_id, members in by_capture.items():
            # The template comes from the whole capture, not just the targets: more frames, more
            # world motion behind a viewmodel that stays put.
            capture = list(iter_frames(conn, source_id=source_id))
            if min(pool_size, len(capture)) < temporal.min_frames:
                log.warning("capture %d: only %d frames, too few to estimate the weapon (need %d)",
                            source_id, len(capture), temporal.min_frames)
                continue
            pick = np.linspace(0, len(capture) - 1, min(pool_size, len(capture))).round().astype(int)
            cache = _WeaponMaskCache(project, "auto", [sorted(capture[i].sha256 for i in set(pick.tolist())),
                                                      repr(temporal), repr(PropagationParams())])

            def factory(source_id=source_id) -> WeaponTemplate:
                _, pool = _capture_pool(project, conn, source_id, pool_size)
                template = WeaponTemplate.from_frames(pool, temporal)
                if not template.mask.any():
                    log.warning("capture %d: no screen-anchored stable region found (no viewmodel?)", source_id)
                return template

            for k, m in _masks_via_cache(cache, rows, images, members, factory).items():
                out[k] = m
    finally:
        conn.close()
    return out


def bank_available(project: Project) -> bool:
    from bugdet.cluster.bank import bank_path

    return bank_path(project).is_file()


def _candidate_records(project: Project, use_bank: bool) -> tuple[list[MaskRecord], str]:
    if use_bank and bank_available(project):
        from bugdet.cluster.bank import load_mask_bank

        records = load_mask_bank(project)
        return records, "bank"
    conn = project.connect()
    try:
        records = list(iter_masks(conn))
    finally:
        conn.close()
    if use_bank:
        log.warning("no mask bank built yet (run `bugdet cluster`): using all %d stored masks as sources", len(records))
    return records, "all"


def load_sources(
    project: Project,
    mask_ids: Iterable[int] | None = None,
    *,
    frame_ids: Iterable[int] | None = None,
    use_bank: bool = True,
    min_area: int | None = None,
    max_sources: int | None = None,
) -> list[SourceMask]:
    """Paste sources cut out of their frames: the bank's masks (with its sampling weights), or
    every stored mask when no bank exists; ``mask_ids`` picks masks explicitly.

    Viewmodel masks are never sources, and a source loses the pixels of its own frame's weapon
    (engine stencil or saved weapon prompt), so a pasted region never carries a piece of gun.
    """
    cfg = project.config.augment
    min_area = cfg.min_source_area if min_area is None else min_area
    max_sources = cfg.max_sources if max_sources is None else max_sources
    records, origin = _candidate_records(project, use_bank and mask_ids is None)
    if mask_ids is not None:
        wanted = {int(i) for i in mask_ids}
        records = [r for r in records if r.id in wanted]
    conn = project.connect()
    try:
        rows = {r.id: r for r in iter_frames(conn)}
        if frame_ids is not None:
            frames_wanted = {int(i) for i in frame_ids}
        elif mask_ids is None:
            # the bank may hold masks of every split: paste sources come from train-split frames only
            frames_wanted = {r.id for r in training_frames(conn, project.config.detect.train_split)}
        else:
            frames_wanted = None
    finally:
        conn.close()
    if frames_wanted is not None:
        records = [r for r in records if r.frame_id in frames_wanted]
    records = [
        r for r in records
        if r.area >= min_area and r.meta.get("role") != WEAPON_ROLE and (r.label or "").lower() not in WEAPON_LABELS
    ]
    if len(records) > max_sources:
        pick = np.linspace(0, len(records) - 1, max_sources).round().astype(int)
        records = [records[i] for i in pick]
    prompts = prompt_weapon_masks(project)
    by_frame: dict[int, list[MaskRecord]] = defaultdict(list)
    for r in records:
        by_frame[r.frame_id].append(r)
    out: list[SourceMask] = []
    skipped_weapon = 0
    for frame_id in sorted(by_frame):
        row = rows.get(frame_id)
        if row is None:
            continue
        rgb = read_rgb(project.root / row.path)
        weapon = engine_weapon_mask(project, row)
        if weapon is None and frame_id in prompts:
            weapon = prompts[frame_id].decode()
        for rec in by_frame[frame_id]:
            mask = rec.decode()
            if weapon is not None:
                on_weapon = np.count_nonzero(mask & weapon)
                if on_weapon > cfg.max_source_weapon_overlap * max(rec.area, 1):
                    skipped_weapon += 1
                    continue
                mask = mask & ~weapon
            x, y, w, h = mask_bbox(mask)
            if w == 0 or np.count_nonzero(mask) < min_area:
                continue
            weight = float(rec.meta.get("bank_weight", 1.0))
            out.append(SourceMask(
                rgb=rgb[y:y + h, x:x + w].copy(), alpha=mask[y:y + h, x:x + w].copy(), label=rec.label,
                mask_id=rec.id, frame_id=frame_id, weight=weight, box=(x, y, w, h),
            ))
    out.sort(key=lambda s: s.mask_id or 0)
    log.info("%d source masks from %s (%d skipped: mostly weapon)", len(out), "the mask bank" if origin == "bank" else "all masks", skipped_weapon)
    return out
