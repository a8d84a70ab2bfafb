"""onnxruntime backend: the exported CLIP towers with full graph optimisation.

Session options are set for throughput on CPU (all graph optimisations, intra-op threads = the
cores we may use, sequential execution since a ViT has no parallel branches worth scheduling) and
CUDA is used when onnxruntime-gpu and a GPU exist. The tokenizer is open_clip's own, so prompts are
tokenised exactly as in the torch backend.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bugdet.embed.base import Embedder, to_pixel_batch
from bugdet.embed.models import LOCAL_DIR_PREFIX, ModelSpec, build_open_clip_model
from bugdet.embed.onnx_export import OnnxExport, export_towers, load_export


def make_session(path: Path, providers: list[str], threads: int = 0) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or (os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=providers)


def ensure_export(cache_root: Path, spec: ModelSpec, model: Any = None, tokenizer: Any = None) -> OnnxExport:
    """The cached export for ``spec``, exporting it first (building the torch model if not given)."""
    cached = load_export(cache_root, spec)
    if cached is not None:
        return cached
    if model is None:
        model, tokenizer = build_open_clip_model(spec, "cpu")
    return export_towers(cache_root, spec, model, tokenizer)


class OnnxClipEmbedder(Embedder):
    """CLIP towers through onnxruntime, numerically interchangeable with :class:`TorchClipEmbedder`."""

    def __init__(self, spec: ModelSpec, cache_root: Path, providers: list[str] | None = None, batch_size: int = 32,
                 threads: int = 0, model: Any = None, tokenizer: Any = None):
        import open_clip

        export = ensure_export(cache_root, spec, model, tokenizer)
        providers = providers or ["CPUExecutionProvider"]
        self.spec, self.export = spec, export
        self.key, self.label, self.pretrained, self.dim = spec.key, spec.label, spec.pretrained, export.dim
        self.batch_size = batch_size
        self.image_session = make_session(export.image_path, providers, threads)
        self._text_session: Any = None
        self._providers, self._threads = providers, threads
        name = LOCAL_DIR_PREFIX + spec.weights if spec.source == "local-dir" else spec.arch
        self.tokenizer = tokenizer or open_clip.get_tokenizer(name)

    def forward_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Image tower on an already preprocessed NCHW batch."""
        return self.image_session.run(None, {"pixels": pixels})[0].astype(np.float32, copy=False)

    def _embed_image_batch(self, images: Sequence[np.ndarray]) -> np.ndarray:
        e = self.export
        return self.forward_pixels(to_pixel_batch(images, e.image_size, e.mean, e.std))

    def _embed_text_batch(self, texts: list[str]) -> np.ndarray:
        if self._text_session is None:  # text is needed rarely (prompts); load its graph lazily
            self._text_session = make_session(self.export.text_path, self._providers, self._threads)
        tokens = self.tokenizer(texts).numpy().astype(np.int64)
        return self._text_session.run(None, {"tokens": tokens})[0].astype(np.float32, copy=False)
