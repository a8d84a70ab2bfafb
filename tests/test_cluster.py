"""Autonomous filtering: FAISS k-means, choice of k, HAC merge, balancing, dedupe, bank, summary."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bugdet.cluster.balance import balance_caps
from bugdet.cluster.bank import bank_path, load_bank_entries, load_mask_bank
from bugdet.cluster.dedupe import near_duplicates
from bugdet.cluster.hac import merge_centroids, relabel_by_size
from bugdet.cluster.kmeans import choose_k, faiss_kmeans
from bugdet.cluster.pipeline import run_clustering
from bugdet.cluster.summary import write_summary
from bugdet.embed.histogram import ColourHistogramTestEmbedder
from bugdet.embed.pipeline import embed_masks
from bugdet.errors import InputError
from bugdet.refine.rules import add_prompt_rule
from filter_toydata import add_frames, new_project

KEY = ColourHistogramTestEmbedder.key


def blobs(k: int, per: int, d: int = 32, noise: float = 0.05, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d))
    labels = np.repeat(np.arange(k), per)
    x = centres[labels] + noise * rng.normal(size=(k * per, d))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), labels


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    from sklearn.metrics import adjusted_rand_score

    return adjusted_rand_score(a, b) == 1.0


def test_faiss_kmeans_recovers_known_clusters_using_every_point():
    # 300 points per centroid is beyond FAISS's default cap of 256: it would train on a subsample.
    x, truth = blobs(6, 300)
    result = faiss_kmeans(x, 6, niter=20, seed=3)
    assert same_partition(result.labels, truth)
    for c in range(6):  # centroids are the means of *all* their points, so no subsample was used
        assert np.allclose(result.centroids[c], x[result.labels == c].mean(0), atol=1e-4)
    spherical = faiss_kmeans(x, 6, seed=1, spherical=True)
    assert same_partition(spherical.labels, truth)
    assert np.allclose(np.linalg.norm(spherical.centroids, axis=1), 1.0, atol=1e-4)


def test_choose_k_finds_the_number_of_clusters():
    x, _ = blobs(5, 60, seed=2)
    k, scores = choose_k(x, k_min=2, k_max=12, sample=1000)
    assert k == 5
    assert scores[5] == max(scores.values())


def test_k_larger_than_points_is_a_clear_error():
    x, _ = blobs(2, 3)
    with pytest.raises(InputError, match="cannot make k=10 clusters from 6 points"):
        faiss_kmeans(x, 10)


def test_hac_merges_near_centroids():
    base = np.eye(4, 16, dtype=np.float32)
    near = base + 0.05 * np.eye(4, 16, k=4, dtype=np.float32)  # each a twin of one base centroid
    centroids = np.concatenate([base, near])
    merged = merge_centroids(centroids, distance_threshold=0.1)
    assert len(np.unique(merged)) == 4
    assert all(merged[i] == merged[i + 4] for i in range(4))
    assert len(np.unique(merge_centroids(centroids, distance_threshold=0.001))) == 8
    assert relabel_by_size(np.array([5, 5, 5, 2, 9, 9])).tolist() == [0, 0, 0, 2, 1, 1]


def test_balancing_caps_every_cluster_and_equalises_weight():
    labels = np.repeat([0, 1, 2], [50, 10, 5])
    kept, weights, cap = balance_caps(labels, cap=10, seed=0)
    assert cap == 10
    assert np.bincount(labels[kept]).tolist() == [10, 10, 5]
    assert np.isclose(weights.sum(), 1.0)
    assert np.allclose([weights[labels == c].sum() for c in range(3)], 1 / 3)
    assert (weights[~kept] == 0).all()
    _, _, median_cap = balance_caps(labels)
    assert median_cap == 10


def test_range_search_removes_exact_and_near_duplicates():
    rng = np.random.default_rng(0)
    distinct = rng.normal(size=(5, 64)).astype(np.float32)
    distinct /= np.linalg.norm(distinct, axis=1, keepdims=True)
    near = distinct[1] + 1e-3 * rng.normal(size=64).astype(np.float32)
    x = np.vstack([distinct, distinct[0], near / np.linalg.norm(near)])  # rows 5, 6 duplicate rows 0, 1
    duplicate_of = near_duplicates(x, 0.99)
    assert duplicate_of.tolist() == [-1, -1, -1, -1, -1, 0, 1]
    # priority decides which copy survives
    assert near_duplicates(x, 0.99, order=np.array([5, 6, 0, 1, 2, 3, 4])).tolist() == [5, 6, -1, -1, -1, -1, -1]
    assert (near_duplicates(x, 0.99999999) >= 0).sum() == 1  # only the exact copy at a strict threshold


@pytest.fixture()
def toy_project(tmp_path):
    project = new_project(tmp_path / "p", **{"filter.cluster.dedupe_similarity": "null"})
    frames = [[("red", "circle"), ("green", "rect")]] * 12 + [[("blue", "circle"), ("green", "rect")]] * 4 + \
             [[("yellow", "circle"), ("magenta", "rect")]] * 3
    add_frames(project, frames)
    embed_masks(project, ColourHistogramTestEmbedder())
    return project


def _colours(project) -> dict[int, str]:
    conn = project.connect()
    try:
        return {r["id"]: r["label"] for r in conn.execute("SELECT id, label FROM masks")}
    finally:
        conn.close()


def test_pipeline_rejects_first_clusters_balances_and_writes_the_bank(toy_project):
    project = toy_project
    add_prompt_rule(project, ColourHistogramTestEmbedder(), "reject", "sun", threshold=0.5)  # yellow out
    result = run_clustering(project, model_key=KEY,
                            cfg=project.config.filter.cluster.model_copy(update={"k": 4, "cap_per_cluster": 5}))
    colours = _colours(project)
    assert result.rejected == 3 and result.embedded == 38
    assert result.k == 4 and sorted(result.sizes, reverse=True) == [16, 12, 4, 3]
    assert result.kept == [min(s, 5) for s in result.sizes]

    entries = load_bank_entries(project)
    assert len(entries) == sum(result.kept) == 17
    by_cluster: dict[int, set[str]] = {}
    for e in entries:
        by_cluster.setdefault(e.cluster, set()).add(colours[e.mask.id])
    assert all(len(c) == 1 for c in by_cluster.values())  # every cluster is one colour
    assert {c for s in by_cluster.values() for c in s} == {"red", "green", "blue", "magenta"}
    assert np.isclose(sum(e.weight for e in entries), 1.0)

    records = load_mask_bank(project)
    assert [r.id for r in records] == [e.mask.id for e in entries]
    assert records[0].decode().any() and "bank_cluster" in records[0].meta
    document = json.loads(bank_path(project).read_text())
    assert document["run_id"] == result.run.id and document["model_key"] == KEY
    assert len(document["masks"]) == 17 and len(document["clusters"]) == 4


def test_auto_k_and_dedupe_in_the_pipeline(toy_project):
    project = toy_project
    cfg = project.config.filter.cluster
    auto = run_clustering(project, model_key=KEY, cfg=cfg)
    assert auto.k == 5 and auto.k_scores[5] == max(auto.k_scores.values())  # five colours
    # the histogram embedder maps every shape of a colour to the same vector: one survivor per colour
    deduped = run_clustering(project, model_key=KEY, cfg=cfg.model_copy(update={"dedupe_similarity": 0.999, "k": 2}))
    assert deduped.duplicates == 38 - 5
    conn = project.connect()
    try:
        states = dict(conn.execute("SELECT state, COUNT(*) FROM cluster_members WHERE run_id = ? GROUP BY state",
                                   (deduped.run.id,)).fetchall())
    finally:
        conn.close()
    assert states["duplicate"] == 33 and states.get("kept", 0) + states.get("capped", 0) == 5


def test_summary_writes_contact_sheet_map_and_self_contained_html(toy_project):
    import cv2

    project = toy_project
    result = run_clustering(project, model_key=KEY, cfg=project.config.filter.cluster.model_copy(update={"k": 3}))
    paths = write_summary(project, result.run.id)
    sheet = cv2.imread(str(paths.contact_sheet))
    assert sheet is not None and sheet.shape[0] >= 3 * 64
    assert cv2.imread(str(paths.embedding_map)) is not None
    page = paths.html.read_text()
    assert page.count("data:image/png;base64,") == 2
    assert "http://" not in page and "https://" not in page and "<script" not in page


def test_deleted_and_role_masks_stay_out_of_clusters_and_bank(toy_project):
    from bugdet.segment.masks import MaskRecord, insert_masks
    from bugdet.store.database import transaction

    project = toy_project
    conn = project.connect()
    try:
        first = conn.execute("SELECT id, frame_id, rle FROM masks ORDER BY id LIMIT 1").fetchone()
        with transaction(conn):
            conn.execute("DELETE FROM masks WHERE id = ?", (first["id"],))  # e.g. a replaced prompt mask
            weapon = MaskRecord.from_mask(first["frame_id"], "prompt", np.ones((72, 96), bool), 1.0,
                                          label="weapon", meta={"role": "weapon"})
            insert_masks(conn, [weapon])
    finally:
        conn.close()
    assert embed_masks(project, ColourHistogramTestEmbedder()).embedded == 0  # the role mask is not content
    result = run_clustering(project, model_key=KEY, cfg=project.config.filter.cluster.model_copy(update={"k": 3}))
    assert result.embedded == 37
    bank_ids = {r.id for r in load_mask_bank(project)}
    assert first["id"] not in bank_ids and weapon.id not in bank_ids


def test_clustering_bad_inputs(tmp_path, toy_project):
    empty = new_project(tmp_path / "empty")
    with pytest.raises(InputError, match="no embedded masks"):
        run_clustering(empty, model_key=KEY)
    with pytest.raises(InputError, match="no embeddings for the configured model"):
        run_clustering(empty)
    with pytest.raises(InputError, match="k=100 but only 38"):
        run_clustering(toy_project, model_key=KEY, cfg=toy_project.config.filter.cluster.model_copy(update={"k": 100}))
    with pytest.raises(InputError, match="no mask bank yet"):
        load_mask_bank(empty)
