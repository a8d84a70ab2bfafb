"""Near-duplicate removal with a FAISS range search.

Consecutive gameplay frames produce the same tree many times over; duplicates inflate their
cluster and add nothing to the bank. Every pair of unit vectors with cosine >= ``min_similarity``
is found with one exact inner-product range search, then duplicates are removed greedily in
priority order: the first (e.g. best-scored) mask of a group stays, every mask within range of a
kept mask goes. Below ``scale.index.flat_below`` masks the search is exact (flat index, O(n²·d)),
seconds for tens of thousands of masks and independent of index training; above it an IVF index
with full vectors keeps the threshold exact and trades a little recall for near-linear cost
(:mod:`bugdet.scale.ann`).
"""

from __future__ import annotations

import numpy as np

from bugdet.scale.ann import range_neighbours
from bugdet.scale.config import IndexConfig


def near_duplicates(vectors: np.ndarray, min_similarity: float, order: np.ndarray | None = None,
                    batch: int = 4096, index_cfg: IndexConfig | None = None) -> np.ndarray:
    """For each row, the row it duplicates (-1 when it is kept).

    ``order`` is the priority (row indices, first = most worth keeping); default: row order.
    ``index_cfg`` chooses exact or IVF search by size (default: ``scale.index`` defaults).
    """
    x = np.ascontiguousarray(vectors, np.float32)
    n = len(x)
    duplicate_of = np.full(n, -1, np.int64)
    if n < 2:
        return duplicate_of
    neighbours = range_neighbours(x, min_similarity, index_cfg or IndexConfig(), batch)
    removed = np.zeros(n, bool)
    for i in (order if order is not None else np.arange(n)):
        if removed[i]:
            continue
        for j in neighbours[i]:
            if j != i and not removed[j]:
                removed[j] = True
                duplicate_of[j] = i
    return duplicate_of
