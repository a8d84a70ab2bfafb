"""Export CLIP's image and text towers to ONNX once, cached by model + weights identity.

The cache lives in the project (``embeddings/onnx/<spec.key>/``), so a nightly job pays for the
export once per model. Files are written to a temporary name and renamed, and ``meta.json`` (the
preprocessing the image tower expects) is written last: its presence means the export is complete.
Each tower's output is already L2-normalised inside the graph, exactly as ``encode_*(normalize=True)``.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bugdet.embed.models import ModelSpec

ONNX_OPSET = 17
META_FILE = "meta.json"


@dataclass
class OnnxExport:
    """Where an exported model lives and what its image tower expects."""

    directory: Path
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    dim: int
    context_length: int
    label: str
    pretrained: bool

    @property
    def image_path(self) -> Path:
        return self.directory / "image.onnx"

    @property
    def text_path(self) -> Path:
        return self.directory / "text.onnx"


def export_dir(cache_root: Path, spec: ModelSpec) -> Path:
    return Path(cache_root) / spec.key


def load_export(cache_root: Path, spec: ModelSpec) -> OnnxExport | None:
    """The cached export for ``spec``, or None when there is none (or it is incomplete)."""
    directory = export_dir(cache_root, spec)
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    export = OnnxExport(directory=directory, **{k: (tuple(v) if isinstance(v, list) else v) for k, v in meta.items()})
    if not (export.image_path.is_file() and export.text_path.is_file()):
        return None
    return export


def _image_tower(model: Any) -> Any:
    import torch

    class ImageTower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            return self.model.encode_image(pixels, normalize=True)

    return ImageTower().eval()


def _text_tower(model: Any) -> Any:
    import torch

    class TextTower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            return self.model.encode_text(tokens, normalize=True)

    return TextTower().eval()


def _export(module: Any, example: Any, input_name: str, path: Path) -> None:
    import torch

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # Grad mode on: in eval + no_grad, nn.MultiheadAttention takes its fused fast path
    # (aten::_native_multi_head_attention), which has no ONNX symbolic.
    with warnings.catch_warnings(), torch.inference_mode(False), torch.enable_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (example,), str(tmp),
            input_names=[input_name], output_names=["embedding"],
            dynamic_axes={input_name: {0: "batch"}, "embedding": {0: "batch"}},
            opset_version=ONNX_OPSET, do_constant_folding=True, dynamo=False,
        )
    os.replace(tmp, path)


def export_towers(cache_root: Path, spec: ModelSpec, model: Any, tokenizer: Any) -> OnnxExport:
    """Export both towers of an already built open_clip ``model`` (returns the cached one if present)."""
    import torch

    from bugdet.embed.clip_torch import preprocess_params

    cached = load_export(cache_root, spec)
    if cached is not None:
        return cached
    directory = export_dir(cache_root, spec)
    directory.mkdir(parents=True, exist_ok=True)
    size, mean, std = preprocess_params(model)
    if any(p.device.type != "cpu" or p.dtype != torch.float32 for p in model.parameters()):
        model = copy.deepcopy(model).to("cpu").float()  # export an fp32 CPU copy; leave the caller's model alone
    model = model.eval()
    pixels = torch.zeros(2, 3, size, size)
    tokens = tokenizer(["a photo of a tree.", "grass"])
    _export(_image_tower(model), pixels, "pixels", directory / "image.onnx")
    _export(_text_tower(model), tokens, "tokens", directory / "text.onnx")
    with torch.no_grad():
        dim = int(model.encode_text(tokens[:1], normalize=True).shape[1])
    export = OnnxExport(directory=directory, image_size=size, mean=tuple(mean), std=tuple(std), dim=dim,
                        context_length=int(tokens.shape[1]), label=spec.label, pretrained=spec.pretrained)
    meta = {k: v for k, v in asdict(export).items() if k != "directory"}
    tmp = directory / f".{META_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    os.replace(tmp, directory / META_FILE)
    return export
