"""``bugdet bench segment``: automatic-mode throughput and prompt latency on a project's frames."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import List, Optional

import typer

from bugdet.cli.common import ProjectOption, SetOption, console, open_project
from bugdet.errors import InputError


def bench_segment(
    project_dir: Path = ProjectOption,
    frames: int = typer.Option(16, "--frames", min=1, help="Time this many of the project's frames (ingest order)."),
    backend: Optional[str] = typer.Option(None, "--backend", "-b", help="Backend to time (default: segment.backend)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the measurements as JSON here."),
    point_prompts: bool = typer.Option(
        True, "--point-prompts/--no-point-prompts",
        help="Also measure one-click object selection (IoU against object IDs) on held-out playtest frames.",
    ),
    click_seed: int = typer.Option(0, "--click-seed", help="Seed of the random clicks of the point-prompt measurement."),
    overrides: Optional[List[str]] = SetOption,
) -> None:
    """Masks per second of `bugdet segment`, milliseconds per interactive prompt, and how well one click
    selects one object on held-out playtest frames (nothing is stored)."""
    from bugdet.imageio import read_rgb
    from bugdet.bench.segment.speed import measure_segmentation
    from bugdet.store.frames import iter_frames

    project = open_project(project_dir, overrides or [])
    conn = project.connect()
    try:
        rows = [f for _, f in zip(range(frames), iter_frames(conn))]
    finally:
        conn.close()
    if not rows:
        raise InputError(f"{project.root}: the project has no frames to time (run `bugdet ingest` first)")
    images = [read_rgb(project.root / row.path) for row in rows]
    result = measure_segmentation(images, project.config.segment, backend)
    result.update(
        {
            "benchmark": "segment",
            "image_size": [int(images[0].shape[1]), int(images[0].shape[0])],
            "points_per_side": project.config.segment.points_per_side,
            "machine": platform.processor() or platform.machine(),
        }
    )
    console.print(
        f"{result['backend']}: {result['masks_per_s']:.1f} masks/s, {result['frames_per_s']:.2f} frames/s "
        f"({result['masks']} masks on {result['frames']} frames), {result['prompt_ms']:.1f} ms per prompt"
    )
    if point_prompts:
        result.update(_measure_clicks(project, backend, click_seed))
        console.print(
            f"one click, {result['point_prompt_clicks']} objects on {result['point_prompt_frames']} held-out playtest "
            f"frames: IoU median {result['point_prompt_iou_median']:.2f}, "
            f"{100 * result['point_prompt_iou_ge_0_5']:.0f}% at IoU >= 0.5; with a background point: median "
            f"{result['point_prompt_iou_median_with_background']:.2f}, "
            f"{100 * result['point_prompt_iou_ge_0_5_with_background']:.0f}% at >= 0.5",
            markup=False,
        )
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=1))


def _measure_clicks(project, backend: Optional[str], seed: int) -> dict:
    """Point-prompt IoU of the project's prompt backend on the held-out playtest frames (see click_bench)."""
    from bugdet.progress import rich_progress
    from bugdet.bench.segment.clicks import DEFAULT_FRAME_INDICES, DEFAULT_SESSIONS, measure_point_prompts, playtest_frames
    from bugdet.segment.factory import build_predictor

    cfg = project.config.segment
    predictor = build_predictor(cfg, backend or (cfg.backend if cfg.backend != "engine" else "opencv"))
    with rich_progress(console) as bar:
        clicks = measure_point_prompts(
            predictor, playtest_frames(), seed=seed, progress=bar,
            total_frames=len(DEFAULT_SESSIONS) * len(DEFAULT_FRAME_INDICES),
        )
    clicks["point_prompt_sessions"] = [f"{scene}/{seed}" for scene, seed in DEFAULT_SESSIONS]
    clicks["point_prompt_backend"] = predictor.name
    return clicks


def register(bench_app: typer.Typer) -> None:
    bench_app.command("segment")(bench_segment)
