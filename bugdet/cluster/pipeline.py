"""The autonomous filtering run: rejected masks out, duplicates out, cluster, merge, balance, bank.

Order matters and is deliberate: text-prompt and manual rejections apply *before* clustering (a
rejected sky should not pull a centroid), duplicates are removed before k-means (fifty copies of
one tree would otherwise earn it its own cluster), and balancing is applied last, per final
cluster. Everything the run decided is stored (:mod:`bugdet.cluster.runs`) and the bank written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from bugdet.cluster.balance import balance_caps
from bugdet.cluster.bank import write_bank
from bugdet.cluster.config import ClusterConfig
from bugdet.cluster.dedupe import near_duplicates
from bugdet.cluster.hac import cluster_centroids, merge_centroids, relabel_by_size
from bugdet.cluster.kmeans import choose_k, faiss_kmeans
from bugdet.cluster.runs import ClusterRun, Member, save_run
from bugdet.embed.store import get_model, list_models, load_embeddings
from bugdet.errors import InputError
from bugdet.progress import NullProgress, Progress
from bugdet.project import Project
from bugdet.refine.decisions import mask_status
from bugdet.segment.masks import ensure_masks_schema


@dataclass
class ClusteringResult:
    run: ClusterRun
    model_label: str
    pretrained: bool
    embedded: int                 # masks with embeddings
    rejected: int                 # removed by decisions before clustering
    duplicates: int               # removed by the range search
    k_fine: int
    k: int
    k_scores: dict[int, float] = field(default_factory=dict)
    sizes: list[int] = field(default_factory=list)     # per final cluster, after dedupe
    kept: list[int] = field(default_factory=list)      # per final cluster, in the bank
    cap: int = 0
    k_auto: bool = False

    def describe(self) -> str:
        warn = "" if self.pretrained else " [UNPRETRAINED embeddings: clusters reflect a random-init model]"
        how = "auto (silhouette)" if self.k_auto else "configured"
        return (f"run {self.run.id}: {self.embedded} embedded masks, {self.rejected} rejected by decisions, "
                f"{self.duplicates} near duplicates; k-means k={self.k_fine} ({how}) -> {self.k} clusters; "
                f"bank keeps {sum(self.kept)} masks (cap {self.cap}/cluster) with {self.model_label}{warn}")


def resolve_model_key(project: Project, model_key: str | None) -> str:
    """The embedding space to cluster: given, else the configured model's."""
    if model_key:
        return model_key
    from bugdet.embed.models import resolve_model_spec

    key = resolve_model_spec(project.config.filter.embed).key
    conn = project.connect()
    try:
        if get_model(conn, key) is None:
            others = [m.key for m in list_models(conn)]
            hint = f" (embeddings exist for: {', '.join(others)}; pass --model-key)" if others else " (run `bugdet embed` first)"
            raise InputError(f"no embeddings for the configured model {key}{hint}")
    finally:
        conn.close()
    return key


@dataclass
class _Points:
    """The masks that enter a clustering run."""

    ids: np.ndarray
    vectors: np.ndarray
    scores: np.ndarray        # segmentation quality, for choosing which duplicate survives
    embedded: int
    rejected: int


def _load_points(project: Project, key: str) -> _Points:
    conn = project.connect()
    try:
        ensure_masks_schema(conn)
        ids, vectors = load_embeddings(project.root, conn, key, "mask")
        status = mask_status(conn, ids.tolist())
        content = {r["id"]: r["score"] for r in conn.execute("SELECT id, score, meta FROM masks")
                   if not json.loads(r["meta"] or "{}").get("role")}
    finally:
        conn.close()
    # Masks deleted since they were embedded, and role masks (a tester's weapon mask: an annotation
    # for compositing, not scene content) never enter the clustering or the bank.
    present = np.array([int(i) in content for i in ids], bool)
    ids, vectors = ids[present], vectors[present]
    if len(ids) == 0:
        raise InputError("no embedded masks to cluster (run `bugdet segment` and `bugdet embed` first)")
    accepted = np.array([status.get(int(i)) != "reject" for i in ids])
    if not accepted.any():
        raise InputError(f"all {len(ids)} embedded masks are rejected by decisions; nothing to cluster")
    scores = np.array([content[int(i)] for i in ids], np.float64)
    return _Points(ids[accepted], vectors[accepted], scores[accepted], len(ids), int((~accepted).sum()))


@dataclass
class _Partition:
    k_fine: int
    k_scores: dict[int, float]
    fine_labels: np.ndarray
    labels: np.ndarray        # final clusters, 0 = largest
    centroids: np.ndarray     # of the final clusters
    inertia: float


def _partition(x: np.ndarray, cfg: ClusterConfig, progress: Progress) -> _Partition:
    """k (given or by silhouette) -> spherical FAISS k-means -> optional HAC merge of centroids."""
    if cfg.k is None:
        progress.start("choosing k (silhouette)", 1)
        k_fine, k_scores = choose_k(x, cfg.k_min, cfg.k_max, cfg.k_sample, cfg.seed)
        progress.advance()
    else:
        if cfg.k > len(x):
            raise InputError(f"filter.cluster.k={cfg.k} but only {len(x)} distinct masks remain to cluster")
        k_fine, k_scores = cfg.k, {}
    progress.start(f"k-means (k={k_fine}, {len(x)} points)", 1)
    km = faiss_kmeans(x, k_fine, niter=cfg.niter, seed=cfg.seed, spherical=True)
    progress.advance()
    merged = merge_centroids(km.centroids, cfg.hac_distance) if cfg.hac_distance else np.arange(k_fine)
    labels = relabel_by_size(merged[km.labels])
    k = int(labels.max()) + 1
    return _Partition(k_fine, k_scores, km.labels, labels, cluster_centroids(x, labels, k), km.inertia)


def _members(points: _Points, duplicate_of: np.ndarray, part: _Partition, kept: np.ndarray,
             weights: np.ndarray) -> list[Member]:
    """One row per mask; duplicates join their original's cluster, so cluster verdicts cover them too."""
    unique = duplicate_of < 0
    row_in_x = {int(r): j for j, r in enumerate(np.flatnonzero(unique))}
    members: list[Member] = []
    for row, mask_id in enumerate(points.ids):
        j = row_in_x[row] if unique[row] else row_in_x[int(duplicate_of[row])]
        cluster = int(part.labels[j])
        similarity = float(part.centroids[cluster] @ points.vectors[row])
        if unique[row]:
            state, weight = ("kept" if kept[j] else "capped"), float(weights[j])
        else:
            state, weight = "duplicate", 0.0
        members.append(Member(int(mask_id), cluster, int(part.fine_labels[j]), similarity, state, weight))
    return members


def run_clustering(project: Project, model_key: str | None = None, cfg: ClusterConfig | None = None,
                   progress: Progress | None = None) -> ClusteringResult:
    """Cluster every embedded, non-rejected mask and write the bank."""
    progress = progress or NullProgress()
    cfg = cfg or project.config.filter.cluster
    key = resolve_model_key(project, model_key)
    if project.config.filter.refine.replay_on_cluster:
        from bugdet.refine.rules import replay_decisions

        replay_decisions(project)
    points = _load_points(project, key)

    progress.start("near-duplicate search", 1)
    if cfg.dedupe_similarity is not None:
        priority = np.lexsort((points.ids, -points.scores))  # best segmentation score first, then oldest
        duplicate_of = near_duplicates(points.vectors, cfg.dedupe_similarity, order=priority,
                                       index_cfg=project.config.scale.index)
    else:
        duplicate_of = np.full(len(points.ids), -1)
    progress.advance()

    part = _partition(points.vectors[duplicate_of < 0], cfg, progress)
    kept, weights, cap = balance_caps(part.labels, cfg.cap_per_cluster, cfg.seed)
    members = _members(points, duplicate_of, part, kept, weights)
    params = {"k_config": cfg.k, "k_fine": part.k_fine, "k_scores": part.k_scores, "niter": cfg.niter,
              "seed": cfg.seed, "hac_distance": cfg.hac_distance, "cap": cap,
              "dedupe_similarity": cfg.dedupe_similarity, "spherical": True, "inertia": part.inertia,
              "rejected": points.rejected}
    conn = project.connect()
    try:
        info = get_model(conn, key)
        run = save_run(project.root, conn, key, part.k_fine, params, part.centroids, members)
        frame_of = {r["id"]: r["frame_id"] for r in conn.execute("SELECT id, frame_id FROM masks")}
    finally:
        conn.close()

    k = len(part.centroids)
    sizes = np.bincount(part.labels, minlength=k).tolist()
    kept_per = np.bincount(part.labels[kept], minlength=k).tolist()
    label = info.label if info else key
    pretrained = info.pretrained if info else True
    write_bank(project, {
        "run_id": run.id, "model_key": key, "model_label": label, "pretrained": pretrained,
        "clusters": [{"cluster": c, "size": sizes[c], "kept": kept_per[c]} for c in range(k)],
        "masks": [{"mask_id": m.mask_id, "frame_id": frame_of.get(m.mask_id), "cluster": m.cluster,
                   "weight": m.weight} for m in members if m.state == "kept"],
    })
    return ClusteringResult(run, label, pretrained, points.embedded, points.rejected, int((duplicate_of >= 0).sum()),
                            part.k_fine, k, part.k_scores, sizes, kept_per, cap, k_auto=cfg.k is None)
