"""``bugdet bench augment``: pair generation speed per objective and weapon-mask estimation
speed and accuracy, on frames of the playtest world held in memory (no disk I/O).

The trainer draws pairs on the fly, so ``make_pair`` must cost a few milliseconds at 320x240;
the weapon estimators run once per capture, so their per-frame cost and IoU against the engine
stencil are what matter.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import typer

from bugdet.augment.base import OBJECTIVES, SourceMask, TargetFrame
from bugdet.augment.catalogue import build_objective
from bugdet.augment.generate import draw_pair, pair_rng, usable_targets
from bugdet.augment.weapon import estimate_weapon_masks, mask_iou, propagate_masks


def playtest_inputs(scene: str = "park", seed: int = 7, frames: int = 120, width: int = 320, height: int = 240,
                    source_every: int = 10, min_area: int = 150) -> tuple[list[TargetFrame], list[SourceMask]]:
    """Targets (with engine weapon masks) and object-ID sources from a playtest session in memory."""
    from bugdet.playtest.session import PlaytestSession, PlaytestSpec
    from bugdet.playtest.world import WEAPON_ID
    from bugdet.segment.masks import mask_bbox

    targets: list[TargetFrame] = []
    sources: list[SourceMask] = []
    session = PlaytestSession(PlaytestSpec(scene=scene, seed=seed, frames=frames, width=width, height=height))
    for fr in session.frames():
        targets.append(TargetFrame(fr.rgb, fr.weapon_mask, fr.index))
        if fr.index % source_every:
            continue
        for oid in np.unique(fr.ids):
            mask = (fr.ids == oid) & ~fr.weapon_mask
            if oid in (0, WEAPON_ID) or mask.sum() < min_area:
                continue
            x, y, w, h = mask_bbox(mask)
            sources.append(SourceMask(fr.rgb[y:y + h, x:x + w].copy(), mask[y:y + h, x:x + w].copy(),
                                      str(oid), len(sources), fr.index, box=(x, y, w, h)))
    return targets, sources


def time_objective(bug: str, targets, sources, pairs: int) -> dict[str, float]:
    objective = build_objective(bug)
    usable = usable_targets(objective, targets)
    draw_pair(objective, usable, sources, pair_rng(0, 0))  # warm-up (imports, caches)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(pairs):
        draw_pair(objective, usable, sources, pair_rng(1, i))
    return {"ms_per_pair": round((time.perf_counter() - wall) * 1000 / pairs, 3),
            "cpu_ms_per_pair": round((time.process_time() - cpu) * 1000 / pairs, 3)}


def measure_weapon(targets: list[TargetFrame]) -> dict[str, float]:
    frames = [t.rgb for t in targets]
    truth = [t.weapon_mask for t in targets]
    wall = time.perf_counter()
    auto, info = estimate_weapon_masks(frames)
    auto_s = time.perf_counter() - wall
    areas = np.array([m.sum() for m in truth])
    ref = int(np.argmax(areas >= 0.9 * np.percentile(areas, 90)))  # the tester prompts a frame with the whole gun
    wall = time.perf_counter()
    prompted = [p.mask for p in propagate_masks(frames[ref], truth[ref], frames)]
    prompt_s = time.perf_counter() - wall
    per_auto = [mask_iou(a, t) for a, t in zip(auto, truth)]
    per_prompt = [mask_iou(a, t) for a, t in zip(prompted, truth)]
    return {
        "frames": len(frames),
        "auto_seconds": round(auto_s, 3),
        "auto_ms_per_frame": round(auto_s * 1000 / len(frames), 2),
        "auto_iou_pooled": round(mask_iou(np.stack(auto), np.stack(truth)), 4),
        "auto_iou_median": round(float(np.median(per_auto)), 4),
        "auto_frames_without_weapon": info.get("frames_without_weapon", 0),
        "engine_frames_without_weapon": int((areas == 0).sum()),
        "prompt_ms_per_frame": round(prompt_s * 1000 / len(frames), 2),
        "prompt_iou_pooled": round(mask_iou(np.stack(prompted), np.stack(truth)), 4),
        "prompt_iou_median": round(float(np.median(per_prompt)), 4),
    }


def register(bench_app: typer.Typer) -> None:
    @bench_app.command("augment")
    def bench_augment(
        json_path: Path = typer.Option(..., "--json", help="Where to write the measurements."),
        pairs: int = typer.Option(200, "--pairs", help="Pairs timed per objective."),
        frames: int = typer.Option(150, "--frames", help="Playtest frames per scene (every 2nd is used)."),
    ) -> None:
        """make_pair cost per objective at 320x240; weapon estimation (auto/prompt) speed and IoU."""
        results: dict[str, object] = {"resolution": "320x240", "pairs_per_objective": pairs}
        targets, sources = playtest_inputs("park", 7, frames)
        results["objectives"] = {bug: time_objective(bug, targets, sources, pairs) for bug in OBJECTIVES}
        weapon = {}
        for scene, seed in (("park", 7), ("indoor", 8)):
            t, _ = playtest_inputs(scene, seed, frames * 2, source_every=10**9)
            weapon[f"{scene}-{seed}"] = measure_weapon(t[::2])
        results["weapon"] = weapon
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=1))
        typer.echo(json.dumps(results, indent=1))
