"""Which frames of a capture to keep: by stride or by time, then near-duplicate skipping."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bugdet.imageio import dhash64, hamming64
from bugdet.ingest.config import IngestConfig


@dataclass
class FrameSampler:
    """Stateful per capture: create one for each source."""

    config: IngestConfig
    kept: int = 0
    near_duplicates: int = 0
    _next_time: float | None = None
    _last_hash: int | None = field(default=None, repr=False)

    def by_schedule(self, index: int, timestamp: float) -> bool:
        """Stride or time sampling, decided before the frame is decoded further."""
        if self.config.max_frames is not None and self.kept >= self.config.max_frames:
            return False
        if self.config.every_seconds is not None:
            if self._next_time is not None and timestamp + 1e-9 < self._next_time:
                return False
            self._next_time = timestamp + self.config.every_seconds
            return True
        return index % self.config.stride == 0

    def is_near_duplicate(self, rgb: np.ndarray) -> bool:
        if not self.config.near_duplicate.enabled:
            return False
        h = dhash64(rgb)
        if self._last_hash is not None and hamming64(h, self._last_hash) <= self.config.near_duplicate.max_hamming:
            self.near_duplicates += 1
            return True
        self._last_hash = h
        return False

    def done(self) -> bool:
        return self.config.max_frames is not None and self.kept >= self.config.max_frames
