"""Exact per-frame ground truth from object-ID passes, never from heuristics on the image.

Every active bug frame is rendered twice: as shown (bug on) and as it should be (bug reverted,
the *reference*). Both renders come with an object-ID map, and each bug's truth is a comparison
of the two: for FPPC, the weapon pixels of the reference that are not weapon pixels in the bug
render are exactly the pixels world geometry hides. Thresholds decide when a switched-on bug is
*visible* enough to count as a bug frame; below them the frame is rendered correctly instead,
so a clean frame never carries a faint unlabelled bug.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bugdet.playtest.world import WEAPON_ID


@dataclass
class Truth:
    present: bool = False
    severity: float = 0.0
    mask: np.ndarray | None = None  # bool H x W where the bug shows


@dataclass(frozen=True)
class Thresholds:
    fppc_hidden: float = 0.02  # fraction of the weapon hidden by world geometry
    camera_changed: float = 0.05  # fraction of the frame that differs from the correct view
    surface_fraction: float = 0.02  # fraction of the frame showing the bad texture
    texture_diff: int = 12  # 8-bit level difference that counts as a visibly changed pixel
    texture_changed: float = 0.25  # share of the surface's pixels that must visibly change
    subtle_mean_diff: float = 3.0  # low-res and stretched textures change fine detail: mean 8-bit change on the surface
    poster_fraction: float = 0.008  # fraction of the frame covered by the fighting poster
    poster_lost: float = 0.15  # fraction of the poster where the wall wins
    floating_fraction: float = 0.003  # fraction of the frame covered by the floating prop


def fppc(ids_bug: np.ndarray, ids_ref: np.ndarray, t: Thresholds) -> Truth:
    """Severity = hidden weapon pixels / all weapon pixels of the correct render; mask = hidden pixels."""
    full = ids_ref == WEAPON_ID
    hidden = full & (ids_bug != WEAPON_ID)
    total = int(full.sum())
    severity = float(hidden.sum()) / total if total else 0.0
    return Truth(severity >= t.fppc_hidden, severity, hidden)


def camera_clipping(ids_bug: np.ndarray, ids_ref: np.ndarray, eye_inside: bool, t: Thresholds) -> Truth:
    """Mask = pixels whose visible object differs from the correct (collision-resolved) view;
    severity = that share of the frame. Counts only when the eye really is in or at geometry."""
    changed = ids_bug != ids_ref
    changed &= (ids_bug != WEAPON_ID) & (ids_ref != WEAPON_ID)
    severity = float(changed.mean())
    return Truth(eye_inside and severity >= t.camera_changed, severity, changed)


def surface(ids: np.ndarray, oid: int, rgb_bug: np.ndarray, rgb_ref: np.ndarray, t: Thresholds, subtle: bool = False) -> Truth:
    """Texture bugs: mask = visible pixels of the affected object; severity = its share of the frame.

    A bad texture on a nearly uniform surface (a low-resolution copy of plain plaster) can look
    exactly like the right one; it only counts when the two renders differ visibly on the mask
    (``subtle``: low-resolution and stretched textures change fine detail everywhere a little, so
    their test is the mean change over the surface).
    """
    mask = ids == oid
    severity = float(mask.mean())
    if not mask.any():
        return Truth(False, severity, mask)
    diff = np.abs(rgb_bug.astype(np.int16) - rgb_ref.astype(np.int16)).max(axis=2)[mask]
    if subtle:
        visible = float(diff.mean()) >= t.subtle_mean_diff
    else:
        visible = float((diff > t.texture_diff).mean()) >= t.texture_changed
    return Truth(severity >= t.surface_fraction and visible, severity, mask)


def z_fighting(ids_bug: np.ndarray, ids_ref: np.ndarray, oid: int, t: Thresholds) -> Truth:
    """Mask = the poster's area in the correct render; severity = share of it where the wall wins."""
    region = ids_ref == oid
    area = int(region.sum())
    lost = float((region & (ids_bug != oid)).sum()) / area if area else 0.0
    present = region.mean() >= t.poster_fraction and lost >= t.poster_lost
    return Truth(bool(present), lost, region)


def floating(ids_bug: np.ndarray, ids_ref: np.ndarray, oid: int, lift: float, t: Thresholds) -> Truth:
    """Mask = where the prop is drawn or should be; severity = share of that area that changed."""
    shown, grounded = ids_bug == oid, ids_ref == oid
    mask = shown | grounded
    area = int(mask.sum())
    changed = float((mask & (ids_bug != ids_ref)).sum()) / area if area else 0.0
    return Truth(bool(shown.mean() >= t.floating_fraction and changed > 0.1 and lift > 0), changed, mask)


def black_frame(corrupted: np.ndarray) -> Truth:
    """Mask = corrupted pixels (all of them for a black frame); severity = their share."""
    severity = float(corrupted.mean())
    return Truth(severity > 0.0, severity, corrupted)
