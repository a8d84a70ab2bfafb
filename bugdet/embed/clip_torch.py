"""open_clip eager (PyTorch) backend: the reference every other backend is tested against."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from bugdet.embed.base import Embedder, to_pixel_batch
from bugdet.embed.models import ModelSpec, build_open_clip_model


def preprocess_params(model: Any) -> tuple[int, tuple[float, ...], tuple[float, ...]]:
    """Image size, mean and std the model was built for (from open_clip's preprocess config)."""
    cfg = getattr(model.visual, "preprocess_cfg", {}) or {}
    size = cfg.get("size", getattr(model.visual, "image_size", 224))
    if isinstance(size, (tuple, list)):
        size = size[0]
    mean = tuple(cfg.get("mean", (0.48145466, 0.4578275, 0.40821073)))
    std = tuple(cfg.get("std", (0.26862954, 0.26130258, 0.27577711)))
    return int(size), mean, std


class TorchClipEmbedder(Embedder):
    """CLIP image and text towers run eagerly with open_clip."""

    def __init__(self, spec: ModelSpec, device: str = "cpu", batch_size: int = 32, threads: int = 0,
                 model: Any = None, tokenizer: Any = None):
        import torch

        if threads:
            torch.set_num_threads(threads)
        if model is None:
            model, tokenizer = build_open_clip_model(spec, device)
        self.spec = spec
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.device = device
        self.key, self.label, self.pretrained = spec.key, spec.label, spec.pretrained
        self.batch_size = batch_size
        self.image_size, self.mean, self.std = preprocess_params(model)
        output_dim = getattr(model.visual, "output_dim", None)
        self.dim = int(output_dim) if output_dim else int(self._embed_text_batch(["x"]).shape[1])

    def _embed_image_batch(self, images: Sequence[np.ndarray]) -> np.ndarray:
        pixels = to_pixel_batch(images, self.image_size, self.mean, self.std)
        return self.forward_pixels(pixels)

    def forward_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Image tower on an already preprocessed NCHW batch (benchmarks and parity tests use this)."""
        import torch

        with torch.inference_mode():
            feats = self.model.encode_image(torch.from_numpy(pixels).to(self.device), normalize=True)
        return feats.float().cpu().numpy()

    def _embed_text_batch(self, texts: list[str]) -> np.ndarray:
        import torch

        tokens = self.tokenizer(texts).to(self.device)
        with torch.inference_mode():
            feats = self.model.encode_text(tokens, normalize=True)
        return feats.float().cpu().numpy()
