"""FAISS k-means on every point, on GPU when faiss-gpu and CUDA exist, and the choice of k.

FAISS subsamples its training set to ``max_points_per_centroid * k`` points (256 * k by default)
and warns; here the cap is raised to cover every point, so the clustering of 100k masks really
uses 100k masks and its result does not depend on a hidden subsample. Clustering of mask
embeddings is spherical (centroids re-normalised each iteration): the vectors are unit length and
compared by cosine, and a spherical centroid is the cosine-optimal prototype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bugdet.errors import InputError


@dataclass
class KMeansResult:
    centroids: np.ndarray   # (k, d) float32
    labels: np.ndarray      # (n,) int64
    inertia: float          # sum of squared distances to the assigned centroid
    iterations: int


def kmeans_plus_plus(x: np.ndarray, k: int, seed: int = 0, sample: int = 20000) -> np.ndarray:
    """Greedy k-means++ seeding (D² sampling) on a random sample of at most ``sample`` points.

    FAISS seeds with k uniformly random points, which with one run often puts two centroids in one
    true cluster and none in another. Plain D² sampling still does that now and then (each pick has
    a few percent chance of landing in an already covered cluster); the greedy variant (as in
    scikit-learn) draws ``2 + log k`` candidates per step and keeps the one that lowers the
    potential most, which makes a miss very unlikely.
    """
    rng = np.random.default_rng(seed)
    xs = x[rng.choice(len(x), size=sample, replace=False)] if len(x) > sample else x
    xs = np.asarray(xs, np.float32)
    sq = (xs * xs).sum(1)
    trials = 2 + int(np.log(max(k, 1)))

    def dist2(i: np.ndarray) -> np.ndarray:
        return np.maximum(sq[None, :] + sq[i][:, None] - 2 * (xs[i] @ xs.T), 0)

    centres = [int(rng.integers(len(xs)))]
    d2 = dist2(np.array(centres))[0]
    for _ in range(1, k):
        total = float(d2.sum())
        if total <= 0:
            centres.append(int(rng.integers(len(xs))))
            continue
        candidates = rng.choice(len(xs), size=trials, p=d2 / total)
        options = np.minimum(d2[None, :], dist2(candidates))
        best = int(options.sum(1).argmin())
        centres.append(int(candidates[best]))
        d2 = options[best]
    return xs[centres].copy()


def faiss_kmeans(x: np.ndarray, k: int, *, niter: int = 25, seed: int = 0, spherical: bool = False,
                 init: str = "k-means++", init_centroids: np.ndarray | None = None, use_gpu: bool | None = None,
                 threads: int = 0) -> KMeansResult:
    """Lloyd k-means with FAISS over all of ``x`` (float32 (n, d)).

    ``use_gpu`` None means "when faiss can see a GPU". ``init_centroids`` fixes the start (the
    benchmark gives sklearn the same one); otherwise ``init`` is ``k-means++`` (D² seeding, see
    :func:`kmeans_plus_plus`) or ``random`` (FAISS's own: k random points).
    """
    import faiss

    from bugdet.device import faiss_gpu_count

    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    if k > n:
        raise InputError(f"cannot make k={k} clusters from {n} points (k must be <= the number of points)")
    if threads:
        faiss.omp_set_num_threads(threads)
    gpu = faiss_gpu_count() > 0 if use_gpu is None else use_gpu
    km = faiss.Kmeans(d, k, niter=niter, seed=seed, spherical=spherical, gpu=gpu, verbose=False,
                      max_points_per_centroid=int(math.ceil(n / k)) + 1, min_points_per_centroid=1)
    if init_centroids is None and init == "k-means++":
        init_centroids = kmeans_plus_plus(x, k, seed)
    if init_centroids is not None:
        km.train(x, init_centroids=np.ascontiguousarray(init_centroids, np.float32))
    else:
        km.train(x)
    distances, labels = km.index.search(x, 1)
    return KMeansResult(centroids=km.centroids.copy(), labels=labels[:, 0].astype(np.int64),
                        inertia=float(distances.sum()), iterations=niter)


def candidate_ks(n: int, k_min: int, k_max: int, steps: int = 12) -> list[int]:
    """Roughly geometric grid of k values to try, within [k_min, min(k_max, n - 1)]."""
    hi = min(k_max, n - 1)
    lo = min(max(2, k_min), hi)
    if hi < 2:
        return [1]
    grid = np.unique(np.round(np.geomspace(lo, hi, num=min(steps, hi - lo + 1))).astype(int))
    return [int(k) for k in grid]


def choose_k(x: np.ndarray, k_min: int = 2, k_max: int = 64, sample: int = 5000, seed: int = 0,
             niter: int = 20) -> tuple[int, dict[int, float]]:
    """Pick k by the mean silhouette (cosine) of k-means on a random sample.

    The silhouette compares each point's distance to its own cluster with the nearest other
    cluster, so it rewards compact, well separated clusters without the judgement call of reading
    an elbow off an inertia curve (inertia always falls with k). Its cost is quadratic in the
    number of points, hence the sample. Returns the best k and every k's score.
    """
    from sklearn.metrics import silhouette_score

    n = len(x)
    if n < 3:
        return 1, {}
    rng = np.random.default_rng(seed)
    xs = x[rng.choice(n, size=min(sample, n), replace=False)] if n > sample else x
    scores: dict[int, float] = {}

    def score(k: int) -> None:
        if k < 2 or k in scores or k >= len(xs):
            return
        labels = faiss_kmeans(xs, k, niter=niter, seed=seed, spherical=True).labels
        if len(np.unique(labels)) >= 2:
            scores[k] = float(silhouette_score(xs, labels, metric="cosine"))

    grid = candidate_ks(len(xs), k_min, k_max)
    for k in grid:  # coarse, geometric ...
        score(k)
    if not scores:
        return 1, scores
    best = max(scores, key=lambda k: (round(scores[k], 4), -k))
    i = grid.index(best)  # ... then every k between the best grid point's neighbours
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    for k in range(lo + 1, hi):
        score(k)
    best = max(scores, key=lambda k: (round(scores[k], 4), -k))
    return best, dict(sorted(scores.items()))
