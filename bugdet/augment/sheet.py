"""The sample sheet: a PNG for people to check an objective at a glance.

Each pair is a column, the positive above its negative, the positive's bug mask outlined in red,
so a reviewer sees immediately whether the only difference is the bug.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from bugdet.augment.base import Sample

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_BG = (24, 24, 24)


def _thumb(sample: Sample, width: int, caption: str, outline: bool) -> np.ndarray:
    h, w = sample.image.shape[:2]
    height = max(1, round(h * width / w))
    img = cv2.resize(sample.image, (width, height), interpolation=cv2.INTER_AREA)
    if outline and sample.mask.any():
        small = cv2.resize(sample.mask.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(small, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(img, contours, -1, (255, 0, 0), 1)
    bar = np.full((16, width, 3), _BG, dtype=np.uint8)
    colour = (255, 90, 90) if sample.label else (120, 220, 120)
    cv2.putText(bar, caption, (3, 12), _FONT, 0.38, colour, 1, cv2.LINE_AA)
    return np.vstack([bar, img])


def render_sheet(pairs: Sequence[tuple[Sample, Sample]], columns: int = 6, thumb_width: int = 200,
                 indices: Sequence[int] | None = None) -> np.ndarray:
    """Pairs laid out ``columns`` per band: positives (bug, mask outlined) above negatives."""
    if not pairs:
        raise ValueError("no pairs to draw")
    indices = list(indices) if indices is not None else list(range(len(pairs)))
    cells = []
    for k, (pos, neg) in zip(indices, pairs):
        top = _thumb(pos, thumb_width, f"#{k} {pos.bug_type}: BUG", outline=True)
        bottom = _thumb(neg, thumb_width, f"#{k} same content: OK", outline=False)
        cells.append(np.vstack([top, bottom]))
    cell_h = max(c.shape[0] for c in cells)
    gap = 4
    bands = []
    for start in range(0, len(cells), columns):
        row = cells[start:start + columns]
        row += [np.full((cell_h, thumb_width, 3), _BG, np.uint8)] * (columns - len(row)) if len(cells) > columns else []
        padded = [np.vstack([c, np.full((cell_h - c.shape[0], thumb_width, 3), _BG, np.uint8)]) for c in row]
        spacer = np.full((cell_h, gap, 3), _BG, np.uint8)
        parts = []
        for c in padded:
            parts += [c, spacer]
        bands.append(np.hstack(parts[:-1]))
        bands.append(np.full((gap * 2, bands[-1].shape[1], 3), _BG, np.uint8))
    return np.vstack(bands[:-1])
