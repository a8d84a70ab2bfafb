"""A contact sheet a person can look at: bug renders beside the correct render of the same moment.

Each row shows one frame: what the session shows (with the bug), the correct render (bug off),
and the ground-truth mask over the frame, labelled with the bug type and severity. A few clean
frames come first so the normal look of the level is on the same sheet.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from bugdet.errors import InputError
from bugdet.playtest.session import FrameResult, PlaytestSession, PlaytestSpec
from bugdet.progress import NullProgress, Progress


def _label(image: np.ndarray, text: str) -> np.ndarray:
    out = image.copy()
    scale = max(0.35, image.shape[0] / 480)
    cv2.rectangle(out, (0, 0), (out.shape[1], int(22 * scale) + 4), (0, 0, 0), -1)
    cv2.putText(out, text, (4, int(18 * scale)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def _overlay(rgb: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    out = (rgb.astype(np.float32) * 0.45).astype(np.uint8)
    if mask is not None:
        out[mask] = (0.5 * rgb[mask] + 0.5 * np.array([255, 40, 40])).astype(np.uint8)
    return out


def _row(frame: FrameResult) -> np.ndarray:
    present = [(name, t) for name, t in frame.truths.items() if t.present]
    if not present:
        title = f"frame {frame.index}: clean"
        weapon = _overlay(frame.rgb, frame.weapon_mask)
        return np.hstack([_label(frame.rgb, title), _label(frame.rgb, "(no bug: same render)"), _label(weapon, "weapon mask")])
    name, truth = present[0]
    correct = frame.correct_rgb if frame.correct_rgb is not None else frame.rgb
    return np.hstack([
        _label(frame.rgb, f"frame {frame.index}: {name} sev {truth.severity:.3f}"),
        _label(correct, "correct render"),
        _label(_overlay(frame.rgb, truth.mask), f"{name} ground truth"),
    ])


def make_contact_sheet(spec: PlaytestSpec, out_path: Path, per_bug: int = 1, clean: int = 2, progress: Progress | None = None) -> int:
    """Run ``spec`` and write a sheet with up to ``per_bug`` frames of each bug type; returns rows."""
    progress = progress or NullProgress()
    rows: list[np.ndarray] = []
    counts: dict[str, int] = {}
    clean_rows = 0
    progress.start("contact sheet", spec.frames)
    for frame in PlaytestSession(spec).frames():
        progress.advance()
        present = [name for name, t in frame.truths.items() if t.present]
        if not present:
            if clean_rows < clean and frame.index % 37 == 5:
                rows.append(_row(frame))
                clean_rows += 1
            continue
        if counts.get(present[0], 0) < per_bug:
            counts[present[0]] = counts.get(present[0], 0) + 1
            rows.append(_row(frame))
        if all(counts.get(b, 0) >= per_bug for b in spec.bugs) and clean_rows >= clean:
            break
    if not rows:
        raise InputError("no frames to show: raise --frames or --prevalence")
    sheet = np.vstack(rows)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out_path), sheet[..., ::-1]):
        raise InputError(f"{out_path}: cannot write the contact sheet")
    return len(rows)
