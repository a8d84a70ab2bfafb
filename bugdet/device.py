"""Pick the compute device once, the same way everywhere: CUDA when present, CPU otherwise."""

from __future__ import annotations

from bugdet.errors import ConfigError


def resolve_torch_device(requested: str = "auto") -> str:
    """Map the config's ``device`` (auto / cpu / cuda[:N]) to a torch device string."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device: {requested} requested but CUDA is not available on this machine")
        return requested
    if requested == "cpu":
        return "cpu"
    raise ConfigError(f"device: expected auto, cpu or cuda[:N], got {requested!r}")


def onnx_providers(requested: str = "auto") -> list[str]:
    """onnxruntime execution providers: CUDA first when onnxruntime-gpu and a GPU exist."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if requested in ("auto",) or requested.startswith("cuda"):
        if "CUDAExecutionProvider" in available:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if requested.startswith("cuda"):
            raise ConfigError(f"device: {requested} requested but onnxruntime has no CUDA provider (install the gpu extra)")
    return ["CPUExecutionProvider"]


def faiss_gpu_count() -> int:
    """Number of GPUs faiss can use (0 with faiss-cpu)."""
    import faiss

    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get else 0
