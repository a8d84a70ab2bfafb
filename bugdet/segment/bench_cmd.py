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
    overrides: Optional[List[str]] = SetOption,
) -> None:
    """Masks per second of `bugdet segment` and milliseconds per interactive prompt (nothing is stored)."""
    from bugdet.imageio import read_rgb
    from bugdet.segment.bench import measure_segmentation
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
    if json_out is not None:
        json_out.write_text(json.dumps(result, indent=1))


def register(bench_app: typer.Typer) -> None:
    bench_app.command("segment")(bench_segment)
