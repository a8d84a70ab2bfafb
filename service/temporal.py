"""A temporal window over consecutive frames: flag a bug type when at least ``k`` of the last ``n``
frames were over its threshold.

Why: a visual bug (a missing texture, a hole in the geometry, a black frame) stays on screen for
several consecutive frames, while most single-frame false alarms are isolated blips (a muzzle
flash, a dark corner for one frame). Asking for ``k`` hits among the last ``n`` frames removes the
blips and keeps the bugs. The price is detection latency: a bug that starts at frame ``t`` is
flagged from frame ``t + k - 1`` on (at most ``n - 1`` frames late), and a flag may stay up for up
to ``n - k`` frames after the scores drop (the window still holds ``k`` hits). ``n = k = 1`` is
plain per-frame thresholding, exactly.

The window counts the current frame and the ``n - 1`` frames before it in the same stream and
session, in the order the frames were produced; frames without a score (a frame that could not
be processed) do not enter it. :class:`TemporalWindow` is the streaming form (one per stream,
model and session, fed one frame at a time). The same rule over recorded scores, for benchmarks,
is :func:`bugdet.detect.episodes.windowed_scores` (a frame's windowed score is over a threshold
exactly when this window flags it there; the tests hold the two to that).

This module imports only the standard library, so both the service and bugdet use it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

__all__ = ["TemporalWindow", "check_window"]


def check_window(frames: int, min_hits: int) -> None:
    """Raise ValueError unless ``1 <= min_hits <= frames``."""
    if int(frames) != frames or int(min_hits) != min_hits:
        raise ValueError(f"window sizes must be whole numbers (got {frames} frames, {min_hits} hits)")
    if frames < 1:
        raise ValueError(f"the window needs at least 1 frame (got {frames})")
    if not 1 <= min_hits <= frames:
        raise ValueError(f"the window's minimum hits must be between 1 and its {frames} frames (got {min_hits})")


class TemporalWindow:
    """``k`` of the last ``n`` frames, per bug type, for ONE stream of frames (one session, one
    model). Not thread-safe: feed it from one thread, in frame order.

    ``update`` takes one frame's per-type decisions (score >= threshold) and returns the windowed
    decisions: True where at least ``min_hits`` of the last ``frames`` decisions of that type (this
    one included) were True. A bug type missing from a frame leaves its window unchanged.
    """

    def __init__(self, frames: int = 1, min_hits: int = 1) -> None:
        check_window(frames, min_hits)
        self.frames, self.min_hits = int(frames), int(min_hits)
        self._history: dict[str, deque[bool]] = {}
        self._hits: dict[str, int] = {}

    def update(self, hits: Mapping[str, bool]) -> dict[str, bool]:
        """Push one frame's decisions; the windowed decision per bug type."""
        out: dict[str, bool] = {}
        for bug, hit in hits.items():
            hit = bool(hit)
            history = self._history.get(bug)
            if history is None:
                history = self._history[bug] = deque(maxlen=self.frames)
                self._hits[bug] = 0
            if len(history) == self.frames:
                self._hits[bug] -= history[0]  # the oldest decision leaves the window
            history.append(hit)
            self._hits[bug] += hit
            out[bug] = self._hits[bug] >= self.min_hits
        return out

    def update_scores(self, scores: Mapping[str, float], thresholds: Mapping[str, float]) -> dict[str, bool]:
        """:meth:`update` with the decisions ``score >= thresholds[bug]``."""
        return self.update({bug: float(score) >= thresholds[bug] for bug, score in scores.items()})

