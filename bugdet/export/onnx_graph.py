"""Detector -> ONNX graph whose input is what engines and image decoders produce.

The graph takes ``images`` uint8 [N, H, W, 3] RGB and does the cast, the scale to [0, 1] and the
NHWC -> NCHW transpose itself, so a client (the service, a C++ engine plugin, Triton) needs to know
nothing about the detector's normalisation: the only preprocessing outside the graph is resizing
to (H, W), which the manifest states. The batch axis is dynamic so the service can batch freely.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from bugdet.errors import InputError

INPUT_NAME = "images"
OUTPUT_NAMES = ("scores", "heatmaps")


class UInt8FrameAdapter(nn.Module):
    """Wraps a contract detector so it accepts uint8 NHWC frames."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = images.permute(0, 3, 1, 2).to(torch.float32) * (1.0 / 255.0)
        scores, heatmaps = self.detector(x)
        return scores, heatmaps


def check_detector(detector: nn.Module) -> tuple[list[str], tuple[int, int]]:
    """Validate the contract attributes; return (bug_types, (H, W))."""
    bug_types = getattr(detector, "bug_types", None)
    input_size = getattr(detector, "input_size", None)
    if not isinstance(detector, nn.Module):
        raise InputError(f"detector: expected a torch.nn.Module, got {type(detector).__name__}")
    if not bug_types or not all(isinstance(b, str) and b for b in bug_types):
        raise InputError("detector: needs a non-empty `bug_types` list of names")
    if len(set(bug_types)) != len(bug_types):
        raise InputError(f"detector: duplicate bug types in {bug_types}")
    if not input_size or len(input_size) != 2 or min(int(v) for v in input_size) <= 0:
        raise InputError(f"detector: needs `input_size` (H, W), got {input_size!r}")
    return list(bug_types), (int(input_size[0]), int(input_size[1]))


EXPORTERS = ("dynamo", "torchscript")


def _export_dynamo(adapter: nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    batch = torch.export.Dim("batch", min=1, max=4096)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            adapter, (example,), input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
            dynamic_shapes={"images": {0: batch}}, opset_version=opset, dynamo=True, verbose=False,
        )
        program.save(str(path), external_data=False)


def _export_torchscript(adapter: nn.Module, example: torch.Tensor, path: Path, opset: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            adapter, (example,), str(path), input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
            dynamic_axes={name: {0: "batch"} for name in (INPUT_NAME, *OUTPUT_NAMES)},
            opset_version=opset, dynamo=False,
        )


def export_onnx(detector: nn.Module, path: Path, opset: int = 18, exporter: str = "dynamo") -> str:
    """Write ``detector`` (wrapped for uint8 input) to ``path`` as a single-file ONNX graph.

    ``dynamo`` (torch.export, the supported path) falls back to the TorchScript exporter for
    models it cannot trace; ``torchscript`` uses the older exporter directly (seconds faster, and
    enough for plain CNNs). Returns the exporter used, which the manifest records.
    """
    if exporter not in EXPORTERS:
        raise InputError(f"export: exporter must be one of {EXPORTERS}, got {exporter!r}")
    _, (height, width) = check_detector(detector)
    adapter = UInt8FrameAdapter(detector).eval().cpu()
    example = torch.zeros((2, height, width, 3), dtype=torch.uint8)
    dynamo_error: Exception | None = None
    if exporter == "dynamo":
        try:
            _export_dynamo(adapter, example, path, opset)
            return "dynamo"
        except Exception as error:  # noqa: BLE001 - any tracing failure: try the older exporter
            dynamo_error = error
    try:
        _export_torchscript(adapter, example, path, opset)
        return "torchscript"
    except Exception as script_error:  # noqa: BLE001
        tried = f"torch.export: {dynamo_error}; " if dynamo_error else ""
        raise InputError(f"detector: ONNX export failed ({tried}TorchScript: {script_error})") from None
