"""Throughput of segmentation, for the pipeline benchmark (speed targets live in benchmarks, not tests)."""

from __future__ import annotations

import time
from typing import Iterable

import numpy as np

from bugdet.segment.automatic import AutomaticMaskGenerator
from bugdet.segment.config import SegmentConfig
from bugdet.segment.errors import EmptyFrameError, NoMaskError
from bugdet.segment.factory import build_predictor


def measure_segmentation(frames: Iterable[np.ndarray], cfg: SegmentConfig | None = None, backend: str | None = None) -> dict[str, float]:
    """Run automatic mode over RGB ``frames`` and time it (the predictor is built before timing).

    Returns frames, masks, seconds, frames_per_s, masks_per_s and, from one 3-point prompt per
    frame on the already-set image, prompt_ms (what an interactive click costs).
    """
    cfg = cfg or SegmentConfig()
    predictor = build_predictor(cfg, backend)
    generator = AutomaticMaskGenerator(predictor, cfg)
    n_frames = n_masks = 0
    auto_seconds = prompt_seconds = 0.0
    prompts = 0
    for rgb in frames:
        start = time.perf_counter()
        try:
            n_masks += len(generator.generate(rgb))
        except (EmptyFrameError, NoMaskError):
            pass
        auto_seconds += time.perf_counter() - start
        n_frames += 1
        if predictor.has_image:
            h, w = rgb.shape[:2]
            start = time.perf_counter()
            try:
                predictor.predict(points=[(w / 2, h / 2), (w / 4, h / 4)], labels=[1, 0])
                prompts += 1
            except NoMaskError:
                pass
            prompt_seconds += time.perf_counter() - start
    return {
        "backend": predictor.name,
        "frames": n_frames,
        "masks": n_masks,
        "seconds": auto_seconds,
        "frames_per_s": n_frames / auto_seconds if auto_seconds else 0.0,
        "masks_per_s": n_masks / auto_seconds if auto_seconds else 0.0,
        "prompt_ms": 1000 * prompt_seconds / prompts if prompts else 0.0,
    }


def measure_masks_per_s(frames: Iterable[np.ndarray], cfg: SegmentConfig | None = None, backend: str | None = None) -> float:
    """Masks per second of automatic mode on ``frames`` (default backend unless told otherwise)."""
    return float(measure_segmentation(frames, cfg, backend)["masks_per_s"])
