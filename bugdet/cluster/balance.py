"""Cluster-balanced resampling: cap each cluster so omnipresent semantics cannot swamp the bank.

In a park map most masks are trees, grass and trail; left alone, the augmentation stage would
paste trees nearly every time. Capping every cluster at ``cap`` masks (a seeded random sample
within the cluster, so the kept set still spans the cluster) and weighting masks so every cluster
carries the same total probability gives rare objects (a bench, a lamp post) an equal share.
"""

from __future__ import annotations

import numpy as np


def balance_caps(labels: np.ndarray, cap: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """Choose which points to keep.

    Returns ``(kept, weights, cap)``: a bool mask over points, sampling weights (kept points of a
    cluster share ``1 / n_clusters``; 0 for dropped points; they sum to 1) and the cap used
    (``None`` = the median cluster size, which leaves clusters of typical size alone and trims
    only the dominant ones).
    """
    labels = np.asarray(labels)
    clusters, sizes = np.unique(labels, return_counts=True)
    if cap is None:
        cap = int(max(1, np.median(sizes))) if len(sizes) else 1
    if cap < 1:
        raise ValueError("cap must be at least 1")
    rng = np.random.default_rng(seed)
    kept = np.zeros(len(labels), bool)
    weights = np.zeros(len(labels), np.float64)
    for c in clusters:
        members = np.flatnonzero(labels == c)
        chosen = members if len(members) <= cap else rng.choice(members, size=cap, replace=False)
        kept[chosen] = True
        weights[chosen] = 1.0 / (len(clusters) * len(chosen))
    return kept, weights, cap
