"""Write a model package: ONNX graph + parity check + manifest, atomically.

Everything is built inside a hidden temp directory beside the destination (same filesystem) and
renamed into place at the end, so the service's directory watcher can never see a package under
its final name that is missing files, and a failed export leaves nothing behind.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from torch import nn

from bugdet import __version__
from bugdet.errors import BugdetError, InputError
from bugdet.export.onnx_graph import INPUT_NAME, OUTPUT_NAMES, check_detector, export_onnx
from bugdet.export.parity import ParityReport, check_parity, torch_outputs
from service.frames import fit_to_input
from service.model_package import FORMAT_NAME, FORMAT_VERSION, MANIFEST_NAME, MODEL_FILE, file_entry, load_manifest


class ExportError(BugdetError):
    """The detector could not be exported faithfully (e.g. parity above tolerance)."""


@dataclass(frozen=True)
class ExportResult:
    path: Path
    parity: ParityReport
    exporter: str


_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def default_version() -> str:
    """A sortable UTC timestamp, so a later export of the same model sorts after an earlier one."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")


def prepare_frames(frames: Sequence[np.ndarray], input_size: tuple[int, int]) -> np.ndarray:
    """Resize RGB frames exactly as the service will and stack them as uint8 [N, H, W, 3]."""
    if not frames:
        raise InputError("export: no calibration frames for the parity check")
    return np.stack([fit_to_input(np.asarray(f, np.uint8), *input_size) for f in frames])


def _check_thresholds(bug_types: list[str], thresholds: Mapping[str, float]) -> dict[str, float]:
    unknown = sorted(set(thresholds) - set(bug_types))
    if unknown:
        raise InputError(f"export: thresholds for unknown bug types {unknown} (detector has {bug_types})")
    result = {}
    for bug in bug_types:
        value = float(thresholds.get(bug, 0.5))
        if not 0.0 <= value <= 1.0:
            raise InputError(f"export: threshold for {bug} must be within [0, 1], got {value}")
        result[bug] = value
    return result


def _check_outputs(scores: np.ndarray, heatmaps: np.ndarray, n: int, t: int) -> tuple[int, int]:
    """The contract's output shapes and ranges, checked before anything is written."""
    if scores.shape != (n, t):
        raise ExportError(f"export: detector scores have shape {scores.shape}, contract says {(n, t)}")
    if heatmaps.ndim != 4 or heatmaps.shape[:2] != (n, t):
        raise ExportError(f"export: detector heatmaps have shape {heatmaps.shape}, contract says [{n}, {t}, h, w]")
    for name, values in (("scores", scores), ("heatmaps", heatmaps)):
        if not np.isfinite(values).all() or values.min() < 0.0 or values.max() > 1.0:
            raise ExportError(f"export: detector {name} are not probabilities in [0, 1]")
    return int(heatmaps.shape[2]), int(heatmaps.shape[3])


def export_package(
    detector: nn.Module,
    frames: Sequence[np.ndarray],
    models_dir: Path,
    *,
    name: str = "detector",
    version: str | None = None,
    thresholds: Mapping[str, float] | None = None,
    training_data: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    tolerance: float = 1e-4,
    opset: int = 18,
    exporter: str = "dynamo",
) -> ExportResult:
    """Export ``detector`` to ``models_dir/<name>-<version>/`` and return where and how well.

    Raises :class:`ExportError` (and writes nothing) when the ONNX outputs differ from torch's by
    more than ``tolerance`` on ``frames``.
    """
    bug_types, input_size = check_detector(detector)
    version = version or default_version()
    for label, value in (("name", name), ("version", version)):
        if not _SAFE.match(value):
            raise InputError(f"export: {label} {value!r} may only use letters, digits, '.', '_' and '-'")
    thresholds = _check_thresholds(bug_types, thresholds or {})
    batch = prepare_frames(frames, input_size)
    # Export a float32 CPU copy: the caller's module (maybe on a GPU, maybe half precision,
    # maybe still training) is left exactly as it was.
    detector = copy.deepcopy(detector).float().cpu().eval()
    scores, heatmaps = torch_outputs(detector, batch)
    heatmap_size = _check_outputs(scores, heatmaps, len(batch), len(bug_types))

    models_dir = Path(models_dir)
    final = models_dir / f"{name}-{version}"
    if final.exists():
        raise InputError(f"export: {final} already exists (packages are immutable; choose another --version)")
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = models_dir / f".{final.name}.partial-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        exporter = export_onnx(detector, staging / MODEL_FILE, opset=opset, exporter=exporter)
        parity = check_parity(detector, staging / MODEL_FILE, batch, tolerance)
        if not parity.passed:
            raise ExportError(
                f"export: ONNX output differs from torch by {parity.max_abs_diff:.3g} on {parity.frames} frames "
                f"(tolerance {tolerance:g}); not writing the package"
            )
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "name": name,
            "version": version,
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "bugdet_version": __version__,
            "bug_types": bug_types,
            "thresholds": thresholds,
            "input": {
                "name": INPUT_NAME, "height": input_size[0], "width": input_size[1], "channels": 3,
                "dtype": "uint8", "layout": "NHWC", "color": "RGB",
                "preprocessing": "resize to (height, width): OpenCV INTER_AREA when shrinking, INTER_LINEAR when "
                "growing; the graph casts to float, scales by 1/255, transposes to NCHW and normalises",
            },
            "outputs": {
                OUTPUT_NAMES[0]: {"dtype": "float32", "shape": ["N", len(bug_types)], "meaning": "probability per bug type"},
                OUTPUT_NAMES[1]: {"dtype": "float32", "shape": ["N", len(bug_types), *heatmap_size],
                                  "meaning": "low-resolution localisation map per bug type, in [0, 1]"},
            },
            "heatmap_size": list(heatmap_size),
            "onnx": {"file": MODEL_FILE, "opset": opset, "exporter": exporter, "dynamic_batch": True},
            "parity": parity.as_dict(),
            "training_data": dict(training_data or {}),
            "metrics": dict(metrics or {}),
            "files": {MODEL_FILE: file_entry(staging / MODEL_FILE)},
        }
        manifest_path = staging / MANIFEST_NAME
        manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        _fsync_tree(staging)
        load_manifest(staging, verify=True)  # what the service will do, before the package is visible
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportResult(final, parity, exporter)


def _fsync_tree(directory: Path) -> None:
    """Flush the files and the directory so the rename never publishes unflushed data."""
    for path in directory.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
