"""The embedder interface every later stage codes against, and the shared image preprocessing.

An embedder maps RGB crops and text prompts into one space where cosine similarity means "looks
like / is described by". Rows come back L2-normalised float32, so inner product = cosine and FAISS
inner-product indexes can be used directly.

Preprocessing is done here in numpy, once, for every backend: the torch and ONNX backends then see
byte-identical inputs, so their parity test measures the model export and nothing else. Crops are
letterboxed (padded to a square with the neutral grey of :func:`~bugdet.segment.masks.mask_crop`)
rather than centre-cropped: a mask crop is already tight, and centre-cropping would cut off the
ends of long thin objects (a fence, a branch) that are the point of the crop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import cv2
import numpy as np

from bugdet.segment.masks import NEUTRAL_RGB


def letterbox_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """Pad ``rgb`` to a centred square of neutral grey, then resize it to ``size`` x ``size``."""
    h, w = rgb.shape[:2]
    side = max(h, w)
    canvas = np.empty((side, side, 3), dtype=np.uint8)
    canvas[:] = NEUTRAL_RGB
    y0, x0 = (side - h) // 2, (side - w) // 2
    canvas[y0:y0 + h, x0:x0 + w] = rgb
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_CUBIC
    return cv2.resize(canvas, (size, size), interpolation=interpolation)


def to_pixel_batch(images: Sequence[np.ndarray], size: int, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """RGB uint8 images -> normalised float32 NCHW batch, as CLIP's image tower expects."""
    batch = np.stack([letterbox_square(img, size) for img in images]).astype(np.float32) / 255.0
    batch = (batch - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


class Embedder(ABC):
    """Images and texts -> L2-normalised float32 rows in one shared space.

    Attributes every implementation sets:
      ``key``: identity of model + weights (where embeddings are stored, what the ONNX cache is keyed by);
      ``label``: human-readable model name; ``pretrained``: False for random-init models, whose
      outputs must be labelled unpretrained; ``dim``: embedding width; ``batch_size``.
    """

    key: str
    label: str
    pretrained: bool
    dim: int
    batch_size: int = 32

    def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Embed RGB uint8 HxWx3 images of any size; returns (len(images), dim)."""
        out = [self._embed_image_batch(images[i:i + self.batch_size]) for i in range(0, len(images), self.batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed text prompts; returns (len(texts), dim)."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return self._embed_text_batch(list(texts))

    @abstractmethod
    def _embed_image_batch(self, images: Sequence[np.ndarray]) -> np.ndarray: ...

    @abstractmethod
    def _embed_text_batch(self, texts: list[str]) -> np.ndarray: ...
