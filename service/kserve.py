"""KServe v2 / Open Inference Protocol semantics, shared by the gRPC and the HTTP front ends.

Both front ends only translate their wire format into the calls here, so a model looks the same
through either (same metadata, configuration, statistics, errors) and both feed the same dynamic
batcher as bugdet.v1. A model package is exposed as a model whose input ``images`` is UINT8
[-1, H, W, 3] and whose outputs are ``scores`` FP32 [-1, T] and ``heatmaps`` FP32 [-1, T, h, w],
exactly the ONNX graph's signature.

Every failure is a plain exception (:class:`InvalidRequest`, :class:`ModelNotFound`, the batcher's
``QueueFull`` / ``DeadlineExceeded``) that :func:`service.errors.status_for` maps to a status.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from service.batcher import DynamicBatcher
from service.config import SERVICE_VERSION, ServerConfig
from service.echo import echo, echo_list
from service.errors import InvalidRequest
from service.model_package import MODEL_FILE, VERSIONS_DIR, has_alias
from service.registry import IndexEntry, ModelRegistry
from service.runtime import LoadedModel
from service.statistics import InferenceStatistics, ModelStats, RequestTimer

OUTPUTS = ("scores", "heatmaps")
PLATFORM = "onnxruntime_onnx"
SERVER_NAME = "bugdet"
#: What ServerMetadata / GET /v2 announce: the Triton extensions both front ends implement.
EXTENSIONS = ("model_configuration", "statistics", "model_repository", "binary_tensor_data")


@dataclass
class InputTensor:
    """One request tensor as either front end received it: raw little-endian bytes, or values."""

    name: str
    datatype: str
    shape: list[int]
    raw: bytes | memoryview | None = None
    values: Sequence[int] | None = None


def server_metadata() -> dict:
    return {"name": SERVER_NAME, "version": SERVICE_VERSION, "extensions": list(EXTENSIONS)}


def model_metadata(model: LoadedModel) -> dict:
    m = model.manifest
    t = len(m.bug_types)
    return {
        "name": m.name, "versions": [m.version], "platform": PLATFORM,
        "inputs": [{"name": m.input.name, "datatype": "UINT8", "shape": [-1, m.input.height, m.input.width, 3]}],
        "outputs": [{"name": OUTPUTS[0], "datatype": "FP32", "shape": [-1, t]},
                    {"name": OUTPUTS[1], "datatype": "FP32", "shape": [-1, t, *m.heatmap_size]}],
    }


def served_by_alias(model: LoadedModel) -> bool:
    """True when the package is a registry version that a champion alias names."""
    directory = model.manifest.directory
    return directory.parent.name == VERSIONS_DIR and has_alias(directory.parent.parent)


def model_config(model: LoadedModel, config: ServerConfig, max_batch: int) -> dict:
    """Triton's model configuration (JSON field names of model_config.proto).

    ``max_batch_size`` is the most frames one request may carry; the dynamic batcher forms runs
    of ``max_batch`` frames from what is queued (``preferred_batch_size``).
    """
    m = model.manifest
    t = len(m.bug_types)
    version = m.version
    policy = {"specific": {"versions": [int(version)]}} if served_by_alias(model) and version.isdigit() else {"latest": {"num_versions": 1}}
    gpu = model.provider.startswith("CUDA")
    return {
        "name": m.name,
        "platform": PLATFORM,
        "backend": "onnxruntime",
        "version_policy": policy,
        "max_batch_size": config.max_frames_per_request,
        "input": [{"name": m.input.name, "data_type": "TYPE_UINT8", "format": "FORMAT_NHWC", "dims": [m.input.height, m.input.width, 3]}],
        "output": [{"name": OUTPUTS[0], "data_type": "TYPE_FP32", "dims": [t]},
                   {"name": OUTPUTS[1], "data_type": "TYPE_FP32", "dims": [t, *m.heatmap_size]}],
        "dynamic_batching": {"preferred_batch_size": [max_batch],
                             "max_queue_delay_microseconds": round(config.max_queue_delay_ms * 1000)},
        "instance_group": [{"name": m.name, "count": 1, "kind": "KIND_GPU" if gpu else "KIND_CPU"}],
        "default_model_filename": MODEL_FILE,
        "parameters": {"bug_types": {"string_value": ",".join(m.bug_types)},
                       "thresholds": {"string_value": ",".join(f"{b}={m.thresholds[b]:g}" for b in m.bug_types)}},
    }


def input_frames(model: LoadedModel, tensors: Sequence[InputTensor], max_frames: int) -> np.ndarray:
    """The request's one input tensor as uint8 [N, H, W, 3], checked against the model."""
    spec = model.manifest.input
    if len(tensors) != 1 or tensors[0].name != spec.name:
        raise InvalidRequest(f"{model.name} takes exactly one input {spec.name!r}, got {echo_list(t.name for t in tensors)}")
    tensor = tensors[0]
    if tensor.datatype != "UINT8":
        raise InvalidRequest(f"input {spec.name!r} must be UINT8, got {echo(tensor.datatype) if tensor.datatype else 'no datatype'}")
    shape = list(tensor.shape)
    expected = [spec.height, spec.width, 3]
    if len(shape) != 4 or shape[1:] != expected or shape[0] < 1:
        raise InvalidRequest(f"input {spec.name!r} must have shape [N, {spec.height}, {spec.width}, 3], got {shape[:8]}")
    if shape[0] > max_frames:
        raise InvalidRequest(f"batch of {shape[0]} frames; at most {max_frames} per request")
    if tensor.raw is not None:
        data = np.frombuffer(tensor.raw, np.uint8)
    else:
        values = np.asarray(tensor.values if tensor.values is not None else [])
        if values.dtype.kind not in "iub" and values.size:
            raise InvalidRequest(f"input {spec.name!r}: UINT8 data must be integers")
        values = values.astype(np.int64, copy=False).ravel()
        if values.size and (values.min() < 0 or values.max() > 255):
            raise InvalidRequest(f"input {spec.name!r}: values must fit in UINT8 (0..255)")
        data = values.astype(np.uint8)
    expected_size = int(np.prod(shape))
    if data.size != expected_size:
        raise InvalidRequest(f"input {spec.name!r}: {data.size} bytes for shape {shape} (expected {expected_size})")
    return data.reshape(shape)


class PendingInference:
    """A validated request on its way through the batcher; :meth:`finish` records its statistics."""

    def __init__(self, model: LoadedModel, frames: np.ndarray, requested: list[str], request_id: str, timer: RequestTimer):
        self.model, self.frames, self.requested, self.request_id, self.timer = model, frames, requested, request_id, timer

    def outputs(self, result: tuple[np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
        """The requested outputs (in request order) as contiguous float32 arrays."""
        self.timer.answered()
        tensors = dict(zip(OUTPUTS, result))
        return {name: np.ascontiguousarray(tensors[name], dtype=np.float32) for name in self.requested}

    def finish(self, ok: bool) -> None:
        self.timer.finish(ok, len(self.frames) if ok else 0)


class KServeModels:
    """What both front ends ask of the service: lookups, inference, statistics, repository control."""

    def __init__(self, registry: ModelRegistry, batcher: DynamicBatcher, config: ServerConfig,
                 statistics: InferenceStatistics | None = None):
        self.registry, self.batcher, self.config = registry, batcher, config
        self.statistics = statistics or InferenceStatistics()

    def model(self, name: str, version: str = "") -> LoadedModel:
        if not name:
            raise InvalidRequest("a model name is required")
        return self.registry.get(name, version)

    def is_ready(self, name: str, version: str = "") -> bool:
        try:
            self.model(name, version)
        except (LookupError, InvalidRequest):
            return False
        return True

    def config_of(self, name: str, version: str = "") -> dict:
        return model_config(self.model(name, version), self.config, self.batcher.max_batch)

    # -- inference
    def prepare(self, name: str, version: str, tensors: Sequence[InputTensor], requested: Sequence[str], request_id: str = "") -> PendingInference:
        """Resolve the model and check the request; statistics start counting from here."""
        model = self.model(name, version)
        timer = self.statistics.start(model)
        try:
            wanted = list(requested) or list(OUTPUTS)
            unknown = [n for n in wanted if n not in OUTPUTS]
            if unknown:
                raise InvalidRequest(f"unknown output(s) {echo_list(unknown)}; {model.name} has {list(OUTPUTS)}")
            frames = input_frames(model, tensors, self.config.max_frames_per_request)
        except BaseException:
            timer.finish(False)
            raise
        timer.submitted()
        return PendingInference(model, frames, wanted, request_id, timer)

    def run(self, pending: PendingInference, deadline: float | None) -> dict[str, np.ndarray]:
        """Infer through the batcher (inline when idle) and wait; a failure is recorded."""
        try:
            return pending.outputs(self.batcher.run(pending.model, pending.frames, deadline))
        except BaseException:
            pending.finish(False)
            raise

    def submit(self, pending: PendingInference, deadline: float | None) -> Future:
        """Queue without waiting (streams); waits for room in the queue instead of refusing."""
        try:
            return self.batcher.submit(pending.model, pending.frames, deadline, wait_for_room=True)
        except BaseException:
            pending.finish(False)
            raise

    # -- statistics
    def stats(self, name: str = "", version: str = "") -> list[ModelStats]:
        """Per model version; a named model must be served (or have been), as in Triton."""
        if name:
            snapshot = self.statistics.snapshot(name, version)
            if not snapshot:
                self.model(name, version)  # raises NOT_FOUND for an unknown model
        for model in self.registry.models():
            if (not name or model.name == name) and (not version or model.version == version):
                self.statistics.ensure(model)
        return self.statistics.snapshot(name, version)

    # -- repository
    def index(self, ready_only: bool = False) -> list[IndexEntry]:
        entries = self.registry.index()
        return [e for e in entries if e.state == "READY"] if ready_only else entries

    def load(self, name: str) -> None:
        if not name:
            raise InvalidRequest("load needs a model name")
        self.registry.load(name)

    def unload(self, name: str) -> None:
        if not name:
            raise InvalidRequest("unload needs a model name")
        self.registry.unload(name)

