"""One loaded model package: an onnxruntime session checked against its manifest and warmed.

A :class:`LoadedModel` is immutable once built; hot reload builds a new one and swaps the
reference, so a batch already running keeps the session it started with.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from service.model_package import PackageError, PackageManifest
from service.statistics import ExecutionLog


def providers_for(device: str) -> list[str]:
    """CUDA first when onnxruntime-gpu sees a GPU (and the caller allows it), CPU otherwise."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device in ("auto", "cuda") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        raise PackageError("device cuda requested but onnxruntime has no CUDA provider (install onnxruntime-gpu)")
    return ["CPUExecutionProvider"]


def new_session(model_path: str, device: str = "auto", intra_op_threads: int = 0):
    """The session settings the service uses; the benchmark's in-process baseline uses the same.

    ``intra_op_threads`` 0 lets onnxruntime use every core.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # No busy-waiting between runs: on a small shared CPU, spinning intra-op threads steal the
    # cores that gRPC threads need to decode and answer (and a client's own session, if any).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model_path, sess_options=options, providers=providers_for(device))


@dataclass(frozen=True)
class FrameOutput:
    """What the model says about one frame."""

    scores: np.ndarray  # [T] float32
    heatmaps: np.ndarray  # [T, h, w] float32


@dataclass
class LoadedModel:
    manifest: PackageManifest
    session: object
    provider: str
    loaded_at: float = field(default_factory=time.time)
    executions: ExecutionLog = field(default_factory=ExecutionLog)  # for the KServe per-request statistics

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def key(self) -> str:
        return f"{self.manifest.name}-{self.manifest.version}"

    @property
    def input_hw(self) -> tuple[int, int]:
        return self.manifest.input.height, self.manifest.input.width

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 [N, H, W, 3] -> (scores [N, T], heatmaps [N, T, h, w])."""
        started = time.perf_counter_ns()
        scores, heatmaps = self.session.run(None, {self.manifest.input.name: batch})
        self.executions.record(started, time.perf_counter_ns(), len(batch))
        return scores, heatmaps


def load_model(manifest: PackageManifest, device: str = "auto", warm_batches: tuple[int, ...] = (1,), intra_op_threads: int = 0) -> LoadedModel:
    """Create the session, check its signature against the manifest and run warm-up batches.

    Anything wrong (unloadable graph, wrong input, outputs that disagree with the manifest) raises
    :class:`PackageError`, so a bad package is refused before it can replace a working one.
    """
    try:
        session = new_session(str(manifest.model_path), device, intra_op_threads)
    except PackageError:
        raise
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise PackageError(f"{manifest.directory}: onnxruntime cannot load model.onnx: {exc}") from None
    inputs = session.get_inputs()
    h, w = manifest.input.height, manifest.input.width
    if len(inputs) != 1 or inputs[0].name != manifest.input.name or inputs[0].type != "tensor(uint8)" or list(inputs[0].shape[1:]) != [h, w, 3]:
        got = [(i.name, i.type, i.shape) for i in inputs]
        raise PackageError(f"{manifest.directory}: graph input {got} does not match the manifest ({manifest.input.name} uint8 [N,{h},{w},3])")
    model = LoadedModel(manifest, session, session.get_providers()[0])
    t = len(manifest.bug_types)
    for n in warm_batches:
        try:
            scores, heatmaps = model.run(np.zeros((n, h, w, 3), np.uint8))
        except Exception as exc:  # noqa: BLE001
            raise PackageError(f"{manifest.directory}: warm-up inference failed: {exc}") from None
        if scores.shape != (n, t) or heatmaps.shape != (n, t, *manifest.heatmap_size):
            raise PackageError(
                f"{manifest.directory}: outputs {scores.shape} / {heatmaps.shape} disagree with the manifest "
                f"({t} bug types, heatmap {manifest.heatmap_size})"
            )
    return model
