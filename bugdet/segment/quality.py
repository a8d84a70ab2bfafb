"""Mask quality scores and mask non-maximum suppression, shared by all backends.

IoU between many full-resolution masks is computed exactly as a sparse matrix product: the cost
grows with how many masks cover each pixel, not with masks x masks x pixels, so de-duplicating a
few hundred grid candidates on a 320x240 frame takes milliseconds.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
from scipy import sparse


def iou_matrix(masks: Sequence[np.ndarray]) -> np.ndarray:
    """Pairwise IoU (float, NxN) of same-shaped boolean masks."""
    if len(masks) == 0:
        return np.zeros((0, 0), dtype=np.float64)
    pixels = [np.flatnonzero(np.asarray(m, dtype=bool)) for m in masks]
    indptr = np.concatenate(([0], np.cumsum([len(p) for p in pixels])))
    indices = np.concatenate(pixels).astype(np.int32)
    flat = sparse.csr_matrix(
        (np.ones(len(indices), dtype=np.float32), indices, indptr), shape=(len(masks), int(np.asarray(masks[0]).size))
    )
    inter = (flat @ flat.T).toarray().astype(np.float64)
    areas = np.diag(inter).copy()
    union = areas[:, None] + areas[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return iou


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b) / union) if union else 0.0


def nms(masks: Sequence[np.ndarray], scores: Sequence[float], iou_threshold: float) -> list[int]:
    """Indices of the masks kept by greedy mask NMS, best score first.

    A mask is dropped when it overlaps an already kept, better-scoring mask with IoU >= the
    threshold; nested masks with low IoU (a part inside its whole) both survive, as in SAM.
    """
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    iou = iou_matrix([masks[i] for i in order])
    kept_positions: list[int] = []
    for pos in range(len(order)):
        if all(iou[pos, k] < iou_threshold for k in kept_positions):
            kept_positions.append(pos)
    return [int(order[p]) for p in kept_positions]


def gradient_magnitude(rgb_or_lab: np.ndarray) -> np.ndarray:
    """Per-pixel colour gradient magnitude (max over channels of the Sobel norm), float32."""
    strongest = None
    for channel in cv2.split(rgb_or_lab):
        gx = cv2.Sobel(channel, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(channel, cv2.CV_32F, 0, 1, ksize=3)
        magnitude = cv2.magnitude(gx, gy)
        strongest = magnitude if strongest is None else cv2.max(strongest, magnitude)
    return strongest / 8.0


def boundary_pixels(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it, excluding the image border."""
    m = mask.astype(np.uint8)
    eroded = cv2.erode(m, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    edge = (m > 0) & (eroded == 0)
    return edge


def edge_strength(mask: np.ndarray, gradient: np.ndarray, scale: float) -> float:
    """How sharply the mask's outline follows image edges, in [0, 1].

    The mean colour gradient on the outline (the image border does not count, so an object cut
    by the frame edge is not penalised) mapped through ``1 - exp(-g / scale)``. A region that
    leaked across flat colour has a weak outline and scores low.
    """
    edge = boundary_pixels(mask)
    if not edge.any():
        return 1.0  # the mask's outline is the image border (or the mask is empty)
    mean = float(gradient[edge].mean())
    return float(1.0 - np.exp(-mean / scale))


def stability(inner_area: int, outer_area: int) -> float:
    """IoU of two nested masks (the same region at a stricter and a looser threshold).

    SAM's stability score: a real object keeps its extent when the threshold moves.
    """
    return float(inner_area / outer_area) if outer_area else 0.0


def colour_codes(lab: np.ndarray, bins: int = 8) -> np.ndarray:
    """Each pixel's joint colour bin (``bins`` per Lab channel), int32: the alphabet of :func:`ring_contrast`."""
    q = (lab.astype(np.int32) * bins) // 256
    return (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]


def ring_contrast(mask: np.ndarray, codes: np.ndarray, n_codes: int, width: int) -> float:
    """How unlike its surroundings a region looks, in [0, 1]: 1 - histogram intersection of the
    joint colour histogram of ``mask`` and that of the band ``width`` pixels wide around it.

    An object that stops at its real outline differs from what lies just outside it; a part of
    an object continues outside its outline (low contrast), and so does a region that leaked.
    A mask with nothing around it (the whole frame) has no contrast to show: 0.
    """
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return 0.0
    h, w = mask.shape
    y0, y1 = max(0, ys.min() - width), min(h, ys.max() + width + 1)
    x0, x1 = max(0, xs.min() - width), min(w, xs.max() + width + 1)
    inside = mask[y0:y1, x0:x1]
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    band = (cv2.dilate(inside.astype(np.uint8), kernel) > 0) & ~inside
    if not band.any():
        return 0.0
    crop = codes[y0:y1, x0:x1]
    h_in = np.bincount(crop[inside], minlength=n_codes) / float(np.count_nonzero(inside))
    h_out = np.bincount(crop[band], minlength=n_codes) / float(np.count_nonzero(band))
    return float(1.0 - np.minimum(h_in, h_out).sum())


def size_prior(area: int, image_area: int) -> float:
    """1 - the share of the frame a mask covers: a frame-filling mask is almost never the object a
    tester clicked, so a region's quality shrinks to 0 as it approaches the whole frame."""
    return float(max(0.0, 1.0 - area / image_area)) if image_area else 0.0
