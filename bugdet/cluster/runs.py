"""Clustering runs: which mask went to which cluster, with which centroids, and what was kept.

A run is immutable once written: later decisions ("reject cluster 7 of run 3") refer to it, and
replaying such a decision on new masks assigns them to the run's nearest centroid, so centroids are
stored (``clusters/run-<id>/centroids.npy``, L2-normalised rows, one per final cluster).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bugdet.errors import InputError
from bugdet.store.database import ensure_schema, transaction

STAGE = "clusters"
MEMBER_STATES = ("kept", "capped", "duplicate")

SCHEMA = [
    """
    CREATE TABLE cluster_runs (
        id INTEGER PRIMARY KEY,
        model_key TEXT NOT NULL,          -- embedding space
        k INTEGER NOT NULL,               -- final clusters (after the optional HAC merge)
        k_fine INTEGER NOT NULL,          -- k-means clusters before merging
        n_points INTEGER NOT NULL,
        params TEXT NOT NULL,             -- JSON: everything that shaped the run
        centroids_path TEXT NOT NULL,     -- relative to the project directory
        created_at REAL NOT NULL
    );
    CREATE TABLE cluster_members (
        run_id INTEGER NOT NULL REFERENCES cluster_runs(id),
        mask_id INTEGER NOT NULL,
        cluster INTEGER NOT NULL,         -- final cluster
        fine_cluster INTEGER NOT NULL,    -- k-means cluster
        similarity REAL NOT NULL,         -- cosine to the final cluster's centroid
        state TEXT NOT NULL,              -- kept / capped (balancing) / duplicate (range search)
        weight REAL NOT NULL,             -- sampling weight in the bank (0 unless kept)
        PRIMARY KEY (run_id, mask_id)
    );
    CREATE INDEX cluster_members_cluster ON cluster_members(run_id, cluster);
    """,
]


@dataclass
class ClusterRun:
    id: int
    model_key: str
    k: int
    k_fine: int
    n_points: int
    params: dict[str, Any]
    centroids_path: str
    created_at: float


@dataclass
class Member:
    mask_id: int
    cluster: int
    fine_cluster: int
    similarity: float
    state: str
    weight: float


def ensure_cluster_schema(conn: sqlite3.Connection) -> None:
    ensure_schema(conn, "clusters", SCHEMA)


def save_run(root: Path, conn: sqlite3.Connection, model_key: str, k_fine: int, params: dict[str, Any],
             centroids: np.ndarray, members: Sequence[Member]) -> ClusterRun:
    """Persist a run: centroids file first, then the rows in one transaction."""
    ensure_cluster_schema(conn)
    with transaction(conn):
        cur = conn.execute(
            "INSERT INTO cluster_runs(model_key, k, k_fine, n_points, params, centroids_path, created_at) "
            "VALUES (?, ?, ?, ?, ?, '', ?)",
            (model_key, int(len(centroids)), int(k_fine), len(members), json.dumps(params, sort_keys=True), time.time()),
        )
        run_id = cur.lastrowid
        rel = Path(STAGE) / f"run-{run_id}" / "centroids.npy"
        path = Path(root) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".centroids.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, np.asarray(centroids, np.float32))
        os.replace(tmp, path)
        conn.execute("UPDATE cluster_runs SET centroids_path = ? WHERE id = ?", (rel.as_posix(), run_id))
        conn.executemany(
            "INSERT INTO cluster_members(run_id, mask_id, cluster, fine_cluster, similarity, state, weight) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(run_id, m.mask_id, m.cluster, m.fine_cluster, m.similarity, m.state, m.weight) for m in members],
        )
    return get_run(conn, run_id)


def get_run(conn: sqlite3.Connection, run_id: int | None = None) -> ClusterRun:
    """A run by id, or the latest run when ``run_id`` is None."""
    ensure_cluster_schema(conn)
    if run_id is None:
        row = conn.execute("SELECT * FROM cluster_runs ORDER BY id DESC LIMIT 1").fetchone()
        if row is None:
            raise InputError("no clustering run yet (run `bugdet cluster` first)")
    else:
        row = conn.execute("SELECT * FROM cluster_runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise InputError(f"no clustering run {run_id}")
    return ClusterRun(row["id"], row["model_key"], row["k"], row["k_fine"], row["n_points"], json.loads(row["params"]),
                      row["centroids_path"], row["created_at"])


def load_centroids(root: Path, run: ClusterRun) -> np.ndarray:
    path = Path(root) / run.centroids_path
    try:
        return np.load(path)
    except OSError:
        raise InputError(f"{path}: centroids of clustering run {run.id} missing") from None


def run_members(conn: sqlite3.Connection, run_id: int, cluster: int | None = None) -> list[Member]:
    ensure_cluster_schema(conn)
    sql = "SELECT * FROM cluster_members WHERE run_id = ?"
    params: list[Any] = [run_id]
    if cluster is not None:
        sql += " AND cluster = ?"
        params.append(cluster)
    return [Member(r["mask_id"], r["cluster"], r["fine_cluster"], r["similarity"], r["state"], r["weight"])
            for r in conn.execute(sql + " ORDER BY mask_id", params)]
