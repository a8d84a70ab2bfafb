"""Bottom-up grouping of colour regions into object-sized candidates (selective-search style).

Flood fill finds regions of one colour; many game objects are several colours or a texture (a
tiled floor, a brick wall, a faceted low-poly canopy), which SAM's "whole object" output covers
and a colour region does not. This module over-segments the frame by marker watershed (markers =
flat areas), then repeatedly merges the most similar pair of adjacent regions, where similar
means alike colour distributions (histogram intersection), a weak shared boundary, and small
size (so small fragments are absorbed first, as in selective search). Every region formed along
the way is a candidate; its score says how well it stands out from its surroundings.
"""

from __future__ import annotations

import heapq

import cv2
import numpy as np

#: Histogram bins per Lab channel for region colour distributions.
BINS = 12
#: Gradient (see :func:`~bugdet.segment.quality.gradient_magnitude`) below which a pixel is "flat".
FLAT_GRADIENT = 2.0
#: Flat areas smaller than this many pixels do not seed a region of their own.
MIN_MARKER_PIXELS = 6


def base_regions(lab: np.ndarray, gradient: np.ndarray) -> np.ndarray:
    """Over-segmentation: one region per flat area, grown over the edges by watershed (labels 0..N-1)."""
    flat = (gradient < FLAT_GRADIENT).astype(np.uint8)
    count, markers, stats, _ = cv2.connectedComponentsWithStats(flat, connectivity=4)
    small = stats[:, cv2.CC_STAT_AREA] < MIN_MARKER_PIXELS
    small[0] = True
    markers[small[markers]] = 0
    if not markers.any():
        return np.zeros(gradient.shape, dtype=np.int32)
    markers = markers.astype(np.int32)
    cv2.watershed(cv2.cvtColor(lab, cv2.COLOR_Lab2BGR), markers)
    # Watershed lines (-1) join the neighbouring region with the largest label (any neighbour will do).
    lines = markers < 0
    if lines.any():
        grown = cv2.dilate(np.where(lines, 0, markers).astype(np.float32), np.ones((3, 3), np.uint8))
        markers[lines] = grown[lines].astype(np.int32)
    _, dense = np.unique(markers, return_inverse=True)
    return dense.reshape(markers.shape).astype(np.int32)


def _label_boxes(labels: np.ndarray, n: int) -> np.ndarray:
    """(x0, y0, x1, y1) of each label 0..n-1 (every label occurs), via one sort instead of ufunc.at."""
    flat = labels.ravel()
    order = np.argsort(flat, kind="stable")
    starts = np.searchsorted(flat[order], np.arange(n))
    ys, xs = np.divmod(order, labels.shape[1])
    return np.stack(
        [
            np.minimum.reduceat(xs, starts), np.minimum.reduceat(ys, starts),
            np.maximum.reduceat(xs, starts), np.maximum.reduceat(ys, starts),
        ],
        axis=1,
    ).astype(np.float64)


class RegionHierarchy:
    """Merge tree over :func:`base_regions`; node ids 0..N-1 are base regions, later ids merges."""

    def __init__(self, lab: np.ndarray, gradient: np.ndarray, edge_scale: float):
        self.base = base_regions(lab, gradient)
        n = int(self.base.max()) + 1
        self.n_base = n
        flat_labels = self.base.ravel()
        sizes = np.bincount(flat_labels, minlength=n).astype(np.float64)
        bins = np.minimum((lab.reshape(-1, 3).astype(np.int32) * BINS) // 256, BINS - 1)
        hist = np.zeros((n, 3 * BINS), dtype=np.float64)
        for channel in range(3):
            hist[:, channel * BINS : (channel + 1) * BINS] = np.bincount(
                flat_labels * BINS + bins[:, channel], minlength=n * BINS
            ).reshape(n, BINS)
        hist /= np.maximum(sizes, 1)[:, None] * 3
        boxes = _label_boxes(self.base, n)

        self.size: list[float] = sizes.tolist()
        self.hist: list[np.ndarray] = list(hist)
        self.box: list[np.ndarray] = list(boxes)
        self.parent: list[int] = [-1] * n
        self.merge_similarity: list[float] = [1.0] * n
        self.members: list[list[int]] = [[i] for i in range(n)]
        self.image_area = float(self.base.size)
        self.edge_scale = edge_scale
        adjacency = self._boundaries(gradient)
        #: Mean gradient along each region's outline (image border excluded), kept through merges
        #: so a candidate can be scored before its mask is built.
        self.outline: list[float] = [
            sum(bd[1] for bd in adjacency.get(i, {}).values()) / max(1.0, sum(bd[0] for bd in adjacency.get(i, {}).values()))
            for i in range(n)
        ]
        self._merge_all(adjacency)

    def _boundaries(self, gradient: np.ndarray) -> dict[int, dict[int, list[float]]]:
        """For each adjacent pair: [shared boundary length, summed gradient along it]."""
        n = self.n_base
        pairs, weights = [], []
        for a, b, ga, gb in (
            (self.base[:, :-1], self.base[:, 1:], gradient[:, :-1], gradient[:, 1:]),
            (self.base[:-1, :], self.base[1:, :], gradient[:-1, :], gradient[1:, :]),
        ):
            differ = a != b
            lo, hi = np.minimum(a[differ], b[differ]), np.maximum(a[differ], b[differ])
            pairs.append(lo.astype(np.int64) * n + hi)
            weights.append(np.maximum(ga[differ], gb[differ]))
        keys = np.concatenate(pairs)
        grads = np.concatenate(weights)
        unique, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        sums = np.bincount(inverse, weights=grads)
        adjacency: dict[int, dict[int, list[float]]] = {}
        for key, length, total in zip(unique.tolist(), counts.tolist(), sums.tolist()):
            a, b = divmod(key, n)
            adjacency.setdefault(a, {})[b] = [length, total]
            adjacency.setdefault(b, {})[a] = [length, total]
        return adjacency

    def _similarity(self, a: int, b: int, boundary: list[float]) -> float:
        colour = float(np.minimum(self.hist[a], self.hist[b]).sum())
        size = 1.0 - (self.size[a] + self.size[b]) / self.image_area
        box = np.concatenate([np.minimum(self.box[a][:2], self.box[b][:2]), np.maximum(self.box[a][2:], self.box[b][2:])])
        box_area = (box[2] - box[0] + 1) * (box[3] - box[1] + 1)
        fill = 1.0 - (box_area - self.size[a] - self.size[b]) / self.image_area
        weak_edge = float(np.exp(-(boundary[1] / max(boundary[0], 1.0)) / self.edge_scale))
        return colour + size + fill + weak_edge

    def _merge_all(self, adjacency: dict[int, dict[int, list[float]]]) -> None:
        heap = [(-self._similarity(a, b, bd), a, b) for a, nbrs in adjacency.items() for b, bd in nbrs.items() if a < b]
        heapq.heapify(heap)
        alive = set(range(self.n_base))
        while heap:
            neg, a, b = heapq.heappop(heap)
            if a not in alive or b not in alive:
                continue
            c = len(self.size)
            self.size.append(self.size[a] + self.size[b])
            self.hist.append((self.hist[a] * self.size[a] + self.hist[b] * self.size[b]) / self.size[c])
            self.box.append(np.concatenate([np.minimum(self.box[a][:2], self.box[b][:2]), np.maximum(self.box[a][2:], self.box[b][2:])]))
            self.parent.append(-1)
            self.parent[a] = self.parent[b] = c
            self.merge_similarity.append(float(np.minimum(self.hist[a], self.hist[b]).sum()))
            self.members.append(self.members[a] + self.members[b])
            alive -= {a, b}
            alive.add(c)
            merged: dict[int, list[float]] = {}
            for old in (a, b):
                for nbr, bd in adjacency.pop(old, {}).items():
                    if nbr in (a, b):
                        continue
                    adjacency[nbr].pop(old, None)
                    acc = merged.setdefault(nbr, [0.0, 0.0])
                    acc[0] += bd[0]
                    acc[1] += bd[1]
            adjacency[c] = merged
            length = sum(bd[0] for bd in merged.values())
            self.outline.append(sum(bd[1] for bd in merged.values()) / length if length else 0.0)
            for nbr, bd in merged.items():
                adjacency[nbr][c] = bd
                heapq.heappush(heap, (-self._similarity(c, nbr, bd), nbr, c))

    def score(self, node: int) -> float:
        """How object-like a region is, in [0, 1]: a sharp outline (edge strength) and unlike the
        region it merges with next (a region that merges into something alike is only a part)."""
        edge = 1.0 - float(np.exp(-self.outline[node] / self.edge_scale)) if self.outline[node] > 0 else 1.0
        return float(np.sqrt(edge * np.sqrt(self.distinctness(node))))

    def distinctness(self, node: int) -> float:
        """1 - colour similarity to the region ``node`` merges with next (1 for the root)."""
        parent = self.parent[node]
        return 1.0 - self.merge_similarity[parent] if parent >= 0 else 1.0

    def ancestors(self, node: int) -> list[int]:
        """``node`` and every region it was merged into, smallest first."""
        chain = [node]
        while self.parent[chain[-1]] >= 0:
            chain.append(self.parent[chain[-1]])
        return chain

    def mask(self, node: int) -> np.ndarray:
        lut = np.zeros(self.n_base, dtype=bool)
        lut[self.members[node]] = True
        return lut[self.base]
