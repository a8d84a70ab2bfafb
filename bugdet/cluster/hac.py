"""Optional agglomerative (HAC) merge of k-means centroids.

The paper clustered embeddings with hierarchical agglomerative clustering. HAC on every mask is
quadratic in memory; running it on the k-means centroids keeps the scalable FAISS step and gets
HAC's benefit where it matters: fine clusters of the same semantic (grass in sun, grass in shade)
merge when their centroids are closer than a cosine distance threshold (average linkage).
"""

from __future__ import annotations

import numpy as np


def merge_centroids(centroids: np.ndarray, distance_threshold: float) -> np.ndarray:
    """Map each fine cluster to a merged cluster id (0..m-1)."""
    if len(centroids) < 2:
        return np.zeros(len(centroids), np.int64)
    from sklearn.cluster import AgglomerativeClustering

    hac = AgglomerativeClustering(n_clusters=None, distance_threshold=float(distance_threshold),
                                  metric="cosine", linkage="average")
    return hac.fit_predict(np.asarray(centroids, np.float64)).astype(np.int64)


def relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters 0..m-1 from largest to smallest (stable on ties), so cluster 0 is the biggest."""
    clusters, counts = np.unique(labels, return_counts=True)
    order = clusters[np.lexsort((clusters, -counts))]
    mapping = {int(c): i for i, c in enumerate(order)}
    return np.array([mapping[int(c)] for c in labels], np.int64)


def cluster_centroids(vectors: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """L2-normalised mean of each cluster's vectors (the spherical centroid)."""
    out = np.zeros((k, vectors.shape[1]), np.float32)
    np.add.at(out, labels, vectors)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)
