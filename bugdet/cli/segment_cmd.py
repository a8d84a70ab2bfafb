"""``bugdet segment`` (automatic masks for every new frame) and ``bugdet prompt`` (one tester prompt)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from bugdet.cli.common import ProjectOption, SetOption, console, open_project
from bugdet.errors import InputError

BackendOption = typer.Option(
    None, "--backend", "-b", help="opencv (no weights), sam (needs segment.sam.checkpoint) or engine (ID maps only)."
)


def segment(
    project_dir: Path = ProjectOption,
    backend: Optional[str] = BackendOption,
    split: Optional[str] = typer.Option(None, "--split", help="Only frames of this split (train/val/test)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Segment at most N new frames this run (in ingest order)."),
    sample: Optional[int] = typer.Option(
        None, "--sample", min=1, help="Segment N frames spread evenly over captures and time (a fixed sample: rerun adds nothing)."
    ),
    redo: bool = typer.Option(False, "--redo", help="Replace the masks of frames already segmented by this backend."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the run report as JSON here."),
    overrides: Optional[List[str]] = SetOption,
) -> None:
    """Cut every not-yet-segmented frame into candidate masks (re-running adds nothing twice)."""
    from bugdet.progress import rich_progress
    from bugdet.scale.dispatch import segment_project

    flags = list(overrides or [])
    if backend is not None:
        flags.append(f"segment.backend={backend}")
    project = open_project(project_dir, flags)
    with rich_progress(console) as bar:
        report = segment_project(project, redo=redo, split=split, limit=limit, sample=sample, progress=bar)
    for problem in report.problems:
        console.print(f"[yellow]warning:[/] {problem}")
    if json_out is not None:
        json_out.write_text(json.dumps(report.to_dict(), indent=1))
    statuses = ", ".join(f"{k} {v}" for k, v in sorted(report.statuses.items())) or "nothing new"
    if sample is not None:
        console.print(f"sample: {report.frames_considered} frames spread over captures and time"
                      f"{f' of split {split}' if split else ''}", markup=False)
    console.print(
        f"{report.frames_segmented} frames segmented ({report.frames_skipped} already done): "
        f"{report.masks_added} automatic ({report.backend}) masks, {report.engine_masks_added} engine masks "
        f"({statuses})",
        markup=False,
    )


def _parse_numbers(text: str, count: int, what: str) -> list[float]:
    parts = [p for p in text.replace(" ", "").split(",") if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != count:
        raise InputError(f"{what} {text!r}: expected {count} comma-separated numbers")
    return values


def prompt(
    frame_ref: str = typer.Option(..., "--frame", "-f", help="Frame: its ingested file path or name, content sha256, or id."),
    points: Optional[List[str]] = typer.Option(None, "--point", help="Positive point X,Y on the object (repeatable)."),
    negatives: Optional[List[str]] = typer.Option(None, "--neg", help="Negative point X,Y on background to exclude (repeatable)."),
    box: Optional[str] = typer.Option(None, "--box", help="Box X0,Y0,X1,Y1 around the object."),
    project_dir: Path = ProjectOption,
    backend: Optional[str] = BackendOption,
    out: Optional[Path] = typer.Option(None, "--out", help="Write the mask as an 8-bit PNG (255 = object)."),
    overlay: Optional[Path] = typer.Option(None, "--overlay", help="Write the frame with the mask tinted, to check it."),
    save: bool = typer.Option(False, "--save", help="Store the mask in the project (backend 'prompt')."),
    role: Optional[str] = typer.Option(
        None, "--role", help="With --save: what the mask is, e.g. weapon (one mask per role and frame; later stages use it)."
    ),
    label: Optional[str] = typer.Option(None, "--label", help="With --save: a semantic label for the mask."),
    force: bool = typer.Option(False, "--force", help="With --save --role weapon: save a mask covering most of the frame anyway."),
    overrides: Optional[List[str]] = SetOption,
) -> None:
    """Segment one object from geometry prompts (points and/or a box) on one frame."""
    import cv2
    import numpy as np

    from bugdet.device import resolve_torch_device
    from bugdet.imageio import read_rgb
    from bugdet.segment.id_prompts import frame_predictor
    from bugdet.segment.prompts import check_role_mask, is_frame_filling, make_prompt
    from bugdet.segment.store import save_prompt_mask
    from bugdet.store.resolve import resolve_frames

    if role and not save:
        raise InputError("--role only applies to a saved mask: add --save")
    project = open_project(project_dir, overrides or [])
    cfg = project.config.segment
    name = backend or (cfg.backend if cfg.backend != "engine" else "opencv")
    coords = [_parse_numbers(p, 2, "--point") for p in points or []] + [_parse_numbers(p, 2, "--neg") for p in negatives or []]
    labels = [1] * len(points or []) + [0] * len(negatives or [])
    box_values = _parse_numbers(box, 4, "--box") if box else None

    conn = project.connect()
    try:
        frame = resolve_frames(conn, [frame_ref])[0]
        frame_id = frame.id
        rgb = read_rgb(project.root / frame.path)
        device = resolve_torch_device(project.config.device) if name == "sam" else "cpu"
        predictor = frame_predictor(project, frame, rgb, backend, device)  # ID-map clicks where the frame has one
        mask, score = predictor.predict(points=coords or None, labels=labels or None, box=box_values)
        result = {"frame": frame_id, "backend": predictor.name, "score": round(score, 4), "area": int(mask.sum()),
                  "frame_filling": is_frame_filling(mask)}
        ys, xs = np.nonzero(mask)
        result["bbox"] = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
        if save:
            check_role_mask(mask, role, force, "pass --force")
            spec = make_prompt(rgb.shape, coords or None, labels or None, box_values).to_meta()
            record = save_prompt_mask(conn, frame_id, mask, score, model=predictor.name, prompt=spec, role=role, label=label)
            result["mask_id"] = record.id
    finally:
        conn.close()
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out), mask.astype(np.uint8) * 255)
    if overlay is not None:
        from bugdet.imageio import write_rgb

        tinted = rgb.copy()
        tinted[mask] = (0.5 * tinted[mask] + 0.5 * np.array([255, 0, 255])).astype(np.uint8)
        write_rgb(overlay, tinted)
    typer.echo(json.dumps(result))


def register(app: typer.Typer) -> None:
    app.command("segment")(segment)
    app.command("prompt")(prompt)
