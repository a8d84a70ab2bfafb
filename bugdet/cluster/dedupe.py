"""Near-duplicate removal with a FAISS range search.

Consecutive gameplay frames produce the same tree many times over; duplicates inflate their
cluster and add nothing to the bank. Every pair of unit vectors with cosine >= ``min_similarity``
is found with one exact inner-product range search, then duplicates are removed greedily in
priority order: the first (e.g. best-scored) mask of a group stays, every mask within range of a
kept mask goes. The search is exact (flat index, O(n²·d)), which is seconds for tens of thousands
of masks and keeps the result independent of index training.
"""

from __future__ import annotations

import numpy as np


def near_duplicates(vectors: np.ndarray, min_similarity: float, order: np.ndarray | None = None,
                    batch: int = 4096) -> np.ndarray:
    """For each row, the row it duplicates (-1 when it is kept).

    ``order`` is the priority (row indices, first = most worth keeping); default: row order.
    """
    import faiss

    x = np.ascontiguousarray(vectors, np.float32)
    n = len(x)
    duplicate_of = np.full(n, -1, np.int64)
    if n < 2:
        return duplicate_of
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    neighbours: list[np.ndarray] = []
    # range_search returns pairs with similarity > radius for inner-product indexes; nudge it so
    # the threshold is inclusive (exact duplicates sit at 1.0 up to float rounding).
    radius = float(min_similarity) - 1e-6
    for start in range(0, n, batch):
        lims, _, ids = index.range_search(x[start:start + batch], radius)
        neighbours.extend(ids[lims[i]:lims[i + 1]] for i in range(len(lims) - 1))
    removed = np.zeros(n, bool)
    for i in (order if order is not None else np.arange(n)):
        if removed[i]:
            continue
        for j in neighbours[i]:
            if j != i and not removed[j]:
                removed[j] = True
                duplicate_of[j] = i
    return duplicate_of
