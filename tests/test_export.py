"""Export: a briefly trained real CNN -> ONNX model package, with the parity check and the
atomic, checksummed package the service relies on.

The helpers at the top (frames, a trained detector, a package) are shared with the service tests.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from bugdet.errors import InputError
from bugdet.export.package import ExportError, export_package
from bugdet.detect.model import BugDetector, create_detector
from service.model_package import MANIFEST_NAME, MODEL_FILE, PackageError, load_manifest

BUG_TYPES = ["missing_texture", "black_hole"]
INPUT_SIZE = (64, 64)


def small_detector(widths: tuple[int, ...] = (8, 16, 32)) -> BugDetector:
    """The training stage's detector with a small from-scratch backbone: quick to train and export."""
    config = {"backbone": {"type": "compact_cnn", "widths": list(widths)}, "input_size": list(INPUT_SIZE)}
    return create_detector(config, BUG_TYPES)


def scene_frames(n: int, seed: int = 0, size: tuple[int, int] = (96, 128)) -> tuple[list[np.ndarray], np.ndarray]:
    """OpenCV-drawn game-like frames (sky, ground, boxes) and their labels [n, 2].

    Bug frames carry a magenta/black checkerboard patch (a missing texture) and/or a pure-black
    polygon (a hole in the geometry), at random places and sizes.
    """
    rng = np.random.default_rng(seed)
    h, w = size
    frames, labels = [], np.zeros((n, len(BUG_TYPES)), np.float32)
    for i in range(n):
        frame = np.zeros((h, w, 3), np.uint8)
        horizon = int(rng.integers(h // 3, h // 2))
        frame[:horizon] = (int(rng.integers(90, 140)), int(rng.integers(150, 200)), 235)
        frame[horizon:] = (int(rng.integers(60, 110)), int(rng.integers(110, 160)), int(rng.integers(40, 80)))
        for _ in range(int(rng.integers(2, 5))):
            x, y = int(rng.integers(0, w - 20)), int(rng.integers(horizon - 20, h - 20))
            color = tuple(int(c) for c in rng.integers(80, 220, 3))
            cv2.rectangle(frame, (x, y), (x + int(rng.integers(10, 30)), y + int(rng.integers(10, 30))), color, -1)
        noise = rng.integers(-12, 12, size=frame.shape)
        frame = np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        if i % 3 == 1 or i % 5 == 0:
            s = int(rng.integers(16, 32))
            x, y = int(rng.integers(0, w - s)), int(rng.integers(0, h - s))
            cells = (np.indices((s, s)).sum(0) // 4) % 2
            frame[y : y + s, x : x + s] = np.where(cells[..., None] == 1, (255, 0, 255), (0, 0, 0)).astype(np.uint8)
            labels[i, 0] = 1
        if i % 3 == 2 or i % 7 == 0:
            cx, cy, r = int(rng.integers(15, w - 15)), int(rng.integers(15, h - 15)), int(rng.integers(8, 15))
            pts = np.array([[cx - r, cy], [cx, cy - r], [cx + r, cy + r // 2]], np.int32)
            cv2.fillPoly(frame, [pts], (0, 0, 0))
            labels[i, 1] = 1
        frames.append(frame)
    return frames, labels


def trained_detector(steps: int = 25, seed: int = 0) -> BugDetector:
    """A real detector trained for a few Adam steps on scene frames (seconds on CPU).

    Cached: the service tests reuse the same trained networks (nothing mutates them)."""
    return _train(steps, seed)


@functools.lru_cache(maxsize=None)
def _train(steps: int, seed: int) -> BugDetector:
    torch.manual_seed(seed)
    frames, labels = scene_frames(48, seed=seed)
    x = torch.from_numpy(np.stack([cv2.resize(f, INPUT_SIZE[::-1], interpolation=cv2.INTER_AREA) for f in frames]))
    x = x.permute(0, 3, 1, 2).float() / 255.0
    y = torch.from_numpy(labels)
    model = small_detector()
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        idx = torch.randperm(len(x))[:12]
        scores, _ = model(x[idx])
        loss = torch.nn.functional.binary_cross_entropy(scores.clamp(1e-6, 1 - 1e-6), y[idx])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()


def make_package(models_dir: Path, version: str = "1", detector: BugDetector | None = None, name: str = "detector",
                 **kwargs) -> Path:
    """Export with the fast TorchScript exporter (the dynamo path is covered by the export test)."""
    detector = detector or trained_detector()
    kwargs.setdefault("exporter", "torchscript")
    frames, _ = scene_frames(6, seed=99)
    result = export_package(
        detector, frames, models_dir, name=name, version=version,
        thresholds={"missing_texture": 0.5, "black_hole": 0.6},
        training_data={"frames": 48, "source": "OpenCV-drawn test scenes"}, metrics={"note": "test model"}, **kwargs,
    )
    return result.path


@pytest.fixture(scope="module")
def detector() -> BugDetector:
    return trained_detector()


def test_export_writes_verified_package_with_parity(tmp_path: Path, detector: BugDetector) -> None:
    frames, _ = scene_frames(8, seed=5)
    result = export_package(detector, frames, tmp_path, name="detector", version="7", thresholds={"black_hole": 0.3})
    assert result.path == tmp_path / "detector-7"
    assert result.parity.passed and result.parity.max_abs_diff <= 1e-4 and result.parity.frames == 8
    manifest = load_manifest(result.path, verify=True)
    assert manifest.bug_types == tuple(BUG_TYPES)
    assert manifest.thresholds == {"missing_texture": 0.5, "black_hole": 0.3}
    assert (manifest.input.height, manifest.input.width) == INPUT_SIZE
    assert manifest.heatmap_size == (8, 8)
    assert manifest.raw["parity"]["max_abs_diff"] == result.parity.max_abs_diff
    assert manifest.raw["onnx"]["exporter"] == result.exporter == "dynamo"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["detector-7"]  # no temp dir left over

    import onnxruntime as ort

    session = ort.InferenceSession(str(result.path / MODEL_FILE), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == "images" and inp.type == "tensor(uint8)" and inp.shape[1:] == [64, 64, 3]
    assert not isinstance(inp.shape[0], int)  # dynamic batch axis
    batch = np.stack([cv2.resize(f, (64, 64), interpolation=cv2.INTER_AREA) for f in frames[:5]])
    scores, heatmaps = session.run(None, {"images": batch})
    assert scores.shape == (5, 2) and heatmaps.shape == (5, 2, 8, 8)


def test_trained_detector_separates_bug_frames(detector: BugDetector) -> None:
    frames, labels = scene_frames(24, seed=1)
    x = torch.from_numpy(np.stack([cv2.resize(f, (64, 64), interpolation=cv2.INTER_AREA) for f in frames]))
    with torch.inference_mode():
        scores, _ = detector(x.permute(0, 3, 1, 2).float() / 255.0)
    # a few training steps: not a good detector, but a real one whose outputs depend on the image
    assert float(scores[:, 0][labels[:, 0] == 1].mean()) > float(scores[:, 0][labels[:, 0] == 0].mean())


def test_export_fails_above_tolerance_and_leaves_nothing(tmp_path: Path, detector: BugDetector) -> None:
    frames, _ = scene_frames(4, seed=2)
    with pytest.raises(ExportError, match="differs from torch"):
        export_package(detector, frames, tmp_path, version="1", tolerance=1e-12, exporter="torchscript")
    assert list(tmp_path.iterdir()) == []


def test_export_rejects_bad_inputs(tmp_path: Path, detector: BugDetector) -> None:
    frames, _ = scene_frames(2)
    with pytest.raises(InputError, match="unknown bug types"):
        export_package(detector, frames, tmp_path, thresholds={"lag": 0.5})
    with pytest.raises(InputError, match=r"within \[0, 1\]"):
        export_package(detector, frames, tmp_path, thresholds={"black_hole": 2.0})
    with pytest.raises(InputError, match="no calibration frames"):
        export_package(detector, [], tmp_path)
    with pytest.raises(InputError, match="bug_types"):
        export_package(torch.nn.Conv2d(3, 1, 1), frames, tmp_path)
    with pytest.raises(InputError, match="exporter must be"):
        export_package(detector, frames, tmp_path, exporter="jit")
    export_package(detector, frames, tmp_path, version="1", exporter="torchscript")
    with pytest.raises(InputError, match="already exists"):
        export_package(detector, frames, tmp_path, version="1")


def test_corrupt_or_partial_package_fails_verification(tmp_path: Path, detector: BugDetector) -> None:
    frames, _ = scene_frames(2)
    path = export_package(detector, frames, tmp_path, version="1", exporter="torchscript").path
    data = bytearray((path / MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (path / MODEL_FILE).write_bytes(bytes(data))
    with pytest.raises(PackageError, match="sha256"):
        load_manifest(path)
    (path / MODEL_FILE).write_bytes(bytes(data[:100]))
    with pytest.raises(PackageError, match="half-copied"):
        load_manifest(path)
    os.remove(path / MANIFEST_NAME)
    with pytest.raises(PackageError, match="no manifest.json"):
        load_manifest(path)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bugdet", *args], capture_output=True, text=True, timeout=300)


def test_cli_exports_a_training_stage_checkpoint(tmp_path: Path) -> None:
    """`bugdet export` on the training stage's own checkpoint format and a project's frames."""
    from bugdet.detect.model import create_detector, save_checkpoint

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(scene_frames(4, seed=8)[0]):
        cv2.imwrite(str(folder / f"{i:03d}.png"), frame[..., ::-1])
    project = tmp_path / "proj"
    result = run_cli("ingest", str(folder), "--project", str(project), "--init")
    assert result.returncode == 0, result.stderr
    detector = create_detector("compact_cnn", BUG_TYPES).eval()
    save_checkpoint(project / "models" / "run1" / "detector.pt", detector,
                    {"thresholds": {"missing_texture": 0.4, "black_hole": 0.7}, "data": {"labeled_frames": 3}, "best_val_pr_auc": 0.5})
    result = run_cli("export", "--project", str(project), "--version", "3", "--threshold", "black_hole=0.65",
                     "--set", "export.exporter=torchscript", "--json", str(tmp_path / "report.json"))
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["package"] == str(project / "packages" / "detector-3") and report["parity"]["passed"]
    manifest = load_manifest(project / "packages" / "detector-3")
    assert manifest.thresholds == {"missing_texture": 0.4, "black_hole": 0.65}
    assert (manifest.input.height, manifest.input.width) == (144, 192)
    assert manifest.raw["training_data"] == {"labeled_frames": 3} and manifest.raw["metrics"]["best_val_pr_auc"] == 0.5

    bad = run_cli("export", "--project", str(project), "--threshold", "black_hole")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "expected BUG_TYPE=PROBABILITY" in bad.stderr


def test_export_leaves_the_callers_module_untouched(tmp_path: Path) -> None:
    model = small_detector((4, 8)).train().double()
    export_package(model, scene_frames(2)[0], tmp_path, version="1", exporter="torchscript")
    assert model.training and next(model.parameters()).dtype == torch.float64


def test_region_detector_exports_with_whole_frame_input_and_heatmaps(tmp_path: Path) -> None:
    """The crop and the heatmap placement are part of the graph: callers still send whole frames."""
    config = {"backbone": {"type": "compact_cnn", "widths": [8, 16, 32]}, "input_size": list(INPUT_SIZE),
              "region": {"box": [0.25, 0.5, 1.0, 1.0], "bug_types": BUG_TYPES}}
    detector = create_detector(config, BUG_TYPES, seed=0)
    frames, _ = scene_frames(6, seed=3)
    result = export_package(detector, frames, tmp_path, name="corner", version="1", thresholds={})
    assert result.parity.passed and result.exporter == "dynamo"
    manifest = load_manifest(result.path, verify=True)
    assert (manifest.input.height, manifest.input.width) == INPUT_SIZE and manifest.heatmap_size == (8, 8)
