"""``bugdet bench footage``: what segmenting and embedding a studio's own frames costs per 1,000.

It runs the user's path, not a kernel: playtest frames (320x240 by default) written as a plain
PNG folder, ingested into a fresh project, ``segment_project`` with the configured defaults
(OpenCV backend, ``segment.max_masks_per_frame``), then ``embed_masks`` with an UNPRETRAINED
ViT-S-32 (weights do not change the cost) on the chosen backend; the one-time setup (the ONNX export,
or the torch model build) is reported apart. Costs are extrapolated linearly to 1,000 frames
from the run's frame count, and the JSON says so.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import typer


def measure_footage(workdir: Path, frames: int, backend: str, width: int = 320, height: int = 240) -> dict[str, Any]:
    from bugdet.embed.pipeline import build_embedder, embed_masks
    from bugdet.imageio import write_rgb
    from bugdet.ingest.ingester import ingest
    from bugdet.playtest.session import PlaytestSession, PlaytestSpec
    from bugdet.project import Project
    from bugdet.segment.run import segment_project

    folder = workdir / "shots"
    folder.mkdir(parents=True, exist_ok=True)
    for f in PlaytestSession(PlaytestSpec(scene="park", seed=21, frames=frames, width=width, height=height)).frames():
        write_rgb(folder / f"{f.index:05d}.png", f.rgb)
    project = Project.open(workdir / "project", ["filter.embed.model=ViT-S-32", "filter.embed.pretrained=none",
                                                 f"filter.embed.backend={backend}"], create=True)
    ingest(project, [folder], split="train")
    started = time.perf_counter()
    seg = segment_project(project)
    segment_s = time.perf_counter() - started
    started = time.perf_counter()  # once per model: the ONNX export (onnx) or the model build (torch)
    embedder = build_embedder(project)
    setup_s = time.perf_counter() - started
    started = time.perf_counter()
    emb = embed_masks(project, embedder)
    embed_s = time.perf_counter() - started
    n = max(1, seg.frames_segmented)
    return {
        "frames": seg.frames_segmented, "resolution": f"{width}x{height}", "segment_backend": seg.backend,
        "max_masks_per_frame": project.config.segment.max_masks_per_frame,
        "masks": seg.masks_added, "masks_per_frame": round(seg.masks_added / n, 2),
        "embed_model": "ViT-S-32 (UNPRETRAINED)", "embed_backend": backend, "embedded": emb.embedded,
        "segment_s": round(segment_s, 2), "embed_s": round(embed_s, 2), "embedder_setup_s": round(setup_s, 2),
        "segment_s_per_1000_frames": round(1000 * segment_s / n, 1),
        "embed_s_per_1000_frames": round(1000 * embed_s / n, 1),
        "extrapolated_from_frames": n, "cpu_count": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2),
    }


def footage(
    frames: int = typer.Option(100, "--frames", min=1, help="Frames to segment and embed (costs are extrapolated to 1,000)."),
    backend: str = typer.Option("onnx", "--backend", help="Embedding backend: onnx (the default) or torch."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the measurements as JSON here."),
) -> None:
    """Cost of `bugdet segment` + `bugdet embed` per 1,000 user frames on this machine."""
    from bugdet.errors import InputError

    if backend not in ("onnx", "torch"):
        raise InputError(f"--backend must be onnx or torch, not {backend!r}")
    with tempfile.TemporaryDirectory(prefix="bugdet-footage-") as tmp:
        result = measure_footage(Path(tmp), frames, backend)
    text = json.dumps(result, indent=1)
    if json_out is not None:
        json_out.write_text(text + "\n")
    typer.echo(text)


def register(bench_app: typer.Typer) -> None:
    bench_app.command("footage")(footage)
