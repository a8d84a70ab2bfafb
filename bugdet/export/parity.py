"""Prove the exported graph computes what the torch detector computes, on real frames.

Both sides get the same uint8 frames, prepared by the service's own :func:`service.frames.fit_to_input`,
so a pass means the service will reproduce the trained detector's outputs to within the tolerance.
Batch 1 and the full batch are both run through onnxruntime, which also proves the batch axis is
really dynamic.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bugdet.export.onnx_graph import INPUT_NAME, UInt8FrameAdapter


@dataclass(frozen=True)
class ParityReport:
    frames: int
    max_abs_diff_scores: float
    max_abs_diff_heatmaps: float
    tolerance: float

    @property
    def max_abs_diff(self) -> float:
        return max(self.max_abs_diff_scores, self.max_abs_diff_heatmaps)

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.tolerance

    def as_dict(self) -> dict:
        return {**asdict(self), "max_abs_diff": self.max_abs_diff, "passed": self.passed}


def torch_outputs(detector: nn.Module, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference outputs of the torch detector on uint8 NHWC frames."""
    adapter = UInt8FrameAdapter(detector).eval().cpu()
    with torch.inference_mode():
        scores, heatmaps = adapter(torch.from_numpy(np.ascontiguousarray(frames)))
    return scores.numpy(), heatmaps.numpy()


def check_parity(detector: nn.Module, onnx_path: Path, frames: np.ndarray, tolerance: float) -> ParityReport:
    """Max absolute output difference between torch and onnxruntime (CPU) over ``frames``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ref_scores, ref_heatmaps = torch_outputs(detector, frames)
    batched_scores, batched_heatmaps = session.run(None, {INPUT_NAME: frames})
    single = [session.run(None, {INPUT_NAME: frames[i : i + 1]}) for i in range(len(frames))]
    single_scores = np.concatenate([s for s, _ in single])
    single_heatmaps = np.concatenate([h for _, h in single])
    diff_scores = max(float(np.abs(ref_scores - batched_scores).max()), float(np.abs(ref_scores - single_scores).max()))
    diff_heatmaps = max(
        float(np.abs(ref_heatmaps - batched_heatmaps).max()), float(np.abs(ref_heatmaps - single_heatmaps).max())
    )
    return ParityReport(len(frames), diff_scores, diff_heatmaps, tolerance)
