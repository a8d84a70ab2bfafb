"""A deterministic, model-free embedder for tests: colour histograms for images, keywords for text.

:class:`ColourHistogramTestEmbedder` implements the full :class:`~bugdet.embed.base.Embedder`
interface with features a person can predict: an image's vector is the share of its (non-background)
pixels nearest each named colour, and a text's vector counts the colour words (and a few objects with
an obvious colour: grass, sky, ...) it contains. So "reject: grass" really rejects green crops and
the keep/reject, clustering and weak-label logic can be tested exactly, in milliseconds, with no
weights. It is a test double of the interface, not a substitute for CLIP.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from bugdet.embed.base import Embedder, l2_normalise
from bugdet.segment.masks import NEUTRAL_RGB

#: Named colour prototypes (RGB); the embedding has one dimension per name, in this order.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (210, 40, 40),
    "green": (50, 160, 50),
    "blue": (40, 70, 210),
    "yellow": (230, 210, 50),
    "white": (240, 240, 240),
    "black": (20, 20, 20),
    "brown": (120, 75, 35),
    "magenta": (210, 40, 210),
}

#: Words that name a colour indirectly.
KEYWORDS: dict[str, str] = {
    "grass": "green", "tree": "green", "trees": "green", "leaf": "green", "leaves": "green", "foliage": "green",
    "sky": "blue", "water": "blue", "lake": "blue",
    "fire": "red", "brick": "red", "blood": "red",
    "sun": "yellow", "sand": "yellow",
    "snow": "white", "cloud": "white",
    "shadow": "black", "night": "black",
    "wood": "brown", "trunk": "brown", "dirt": "brown", "trail": "brown",
    "checker": "magenta", "placeholder": "magenta",
}


class ColourHistogramTestEmbedder(Embedder):
    """Test double of the CLIP embedder: colour histograms (images) and colour keywords (texts)."""

    key = "colour-histogram-test-v1"
    label = "colour-histogram test embedder (not CLIP)"
    pretrained = True
    dim = len(COLOURS)

    def __init__(self, batch_size: int = 64):
        self.batch_size = batch_size
        self._protos = np.asarray(list(COLOURS.values()), np.float32)
        self._names = list(COLOURS)

    def _histogram(self, image: np.ndarray) -> np.ndarray:
        pixels = image.reshape(-1, 3)
        foreground = np.any(pixels != np.asarray(NEUTRAL_RGB, np.uint8), axis=1)
        pixels = pixels[foreground].astype(np.float32)
        if pixels.size == 0:
            return np.zeros(self.dim, np.float32)
        d = ((pixels[:, None, :] - self._protos[None]) ** 2).sum(-1)
        return np.bincount(d.argmin(1), minlength=self.dim).astype(np.float32)

    def _embed_image_batch(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return l2_normalise(np.stack([self._histogram(img) for img in images]))

    def _embed_text_batch(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"[a-z]+", text.lower()):
                colour = word if word in COLOURS else KEYWORDS.get(word)
                if colour:
                    out[i, self._names.index(colour)] += 1.0
        return l2_normalise(out)
