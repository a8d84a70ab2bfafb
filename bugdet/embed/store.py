"""Embedding storage: float16/float32 ``.npy`` shards plus a table mapping item -> (shard, row).

Each embedding run appends one shard per kind (``mask`` crops, whole ``frame`` s) under
``embeddings/<model key>/``; the ``embeddings`` table says where each item's row lives. Shards are
written (atomically) before their rows are committed, so a row never points into a missing file,
and an interrupted run leaves at most an orphan shard that nothing references. Items are keyed by
the model's identity, so switching models never mixes spaces, and re-running embeds only what
has no row yet.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from bugdet.errors import BugdetError
from bugdet.store.database import ensure_schema, transaction

STAGE = "embeddings"

SCHEMA = [
    """
    CREATE TABLE embedding_models (
        key TEXT PRIMARY KEY,             -- model + weights identity (ModelSpec.key)
        label TEXT NOT NULL,              -- human-readable, says 'unpretrained' for random init
        pretrained INTEGER NOT NULL,      -- 0: random-init weights, outputs are not semantic
        dim INTEGER NOT NULL,
        meta TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL
    );
    CREATE TABLE embedding_shards (
        id INTEGER PRIMARY KEY,
        model_key TEXT NOT NULL REFERENCES embedding_models(key),
        kind TEXT NOT NULL,               -- mask / frame
        path TEXT NOT NULL,               -- relative to the project directory
        rows INTEGER NOT NULL,
        dtype TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE embeddings (
        model_key TEXT NOT NULL,
        kind TEXT NOT NULL,
        item_id INTEGER NOT NULL,         -- masks.id or frames.id
        shard_id INTEGER NOT NULL REFERENCES embedding_shards(id),
        row INTEGER NOT NULL,
        PRIMARY KEY (model_key, kind, item_id)
    );
    """,
]


@dataclass
class ModelInfo:
    key: str
    label: str
    pretrained: bool
    dim: int
    meta: dict


def ensure_embeddings_schema(conn: sqlite3.Connection) -> None:
    ensure_schema(conn, "embeddings", SCHEMA)


def register_model(conn: sqlite3.Connection, key: str, label: str, pretrained: bool, dim: int, meta: dict | None = None) -> None:
    ensure_embeddings_schema(conn)
    with transaction(conn):
        conn.execute(
            "INSERT INTO embedding_models(key, label, pretrained, dim, meta, created_at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET label = excluded.label, pretrained = excluded.pretrained, dim = excluded.dim",
            (key, label, int(pretrained), dim, json.dumps(meta or {}, sort_keys=True), time.time()),
        )


def get_model(conn: sqlite3.Connection, key: str) -> ModelInfo | None:
    ensure_embeddings_schema(conn)
    row = conn.execute("SELECT * FROM embedding_models WHERE key = ?", (key,)).fetchone()
    if row is None:
        return None
    return ModelInfo(row["key"], row["label"], bool(row["pretrained"]), row["dim"], json.loads(row["meta"]))


def list_models(conn: sqlite3.Connection) -> list[ModelInfo]:
    ensure_embeddings_schema(conn)
    rows = conn.execute("SELECT key FROM embedding_models ORDER BY created_at").fetchall()
    return [m for m in (get_model(conn, r["key"]) for r in rows) if m is not None]


def embedded_ids(conn: sqlite3.Connection, model_key: str, kind: str) -> set[int]:
    ensure_embeddings_schema(conn)
    rows = conn.execute("SELECT item_id FROM embeddings WHERE model_key = ? AND kind = ?", (model_key, kind))
    return {r[0] for r in rows}


def write_shard(root: Path, conn: sqlite3.Connection, model_key: str, kind: str, item_ids: Sequence[int],
                vectors: np.ndarray, dtype: str = "float16") -> int:
    """Store ``vectors`` (row i belongs to ``item_ids[i]``) as one new shard; returns the shard id."""
    if len(item_ids) != len(vectors):
        raise ValueError("item_ids and vectors differ in length")
    if not len(item_ids):
        return -1
    ensure_embeddings_schema(conn)
    directory = Path(root) / STAGE / model_key
    directory.mkdir(parents=True, exist_ok=True)
    stamp = f"{time.time_ns()}-{os.getpid()}"
    rel = Path(STAGE) / model_key / f"{kind}-{stamp}.npy"
    tmp = Path(root) / rel.with_name(f".{rel.name}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, np.asarray(vectors, dtype=dtype))
    os.replace(tmp, Path(root) / rel)
    with transaction(conn):
        cur = conn.execute(
            "INSERT INTO embedding_shards(model_key, kind, path, rows, dtype, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (model_key, kind, rel.as_posix(), len(item_ids), dtype, time.time()),
        )
        shard_id = cur.lastrowid
        conn.executemany(
            "INSERT OR REPLACE INTO embeddings(model_key, kind, item_id, shard_id, row) VALUES (?, ?, ?, ?, ?)",
            [(model_key, kind, int(i), shard_id, r) for r, i in enumerate(item_ids)],
        )
    return shard_id


def load_embeddings(root: Path, conn: sqlite3.Connection, model_key: str, kind: str,
                    item_ids: Iterable[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(ids, float32 vectors) for every stored item of ``kind`` (or just ``item_ids``), ordered by id.

    Ids in ``item_ids`` without an embedding are left out; callers compare lengths when that matters.
    """
    ensure_embeddings_schema(conn)
    rows = conn.execute(
        "SELECT e.item_id, e.row, s.path, s.id AS shard FROM embeddings e JOIN embedding_shards s ON s.id = e.shard_id "
        "WHERE e.model_key = ? AND e.kind = ? ORDER BY e.item_id",
        (model_key, kind),
    ).fetchall()
    if item_ids is not None:
        wanted = set(int(i) for i in item_ids)
        rows = [r for r in rows if r["item_id"] in wanted]
    dim_row = conn.execute("SELECT dim FROM embedding_models WHERE key = ?", (model_key,)).fetchone()
    dim = dim_row["dim"] if dim_row else 0
    if not rows:
        return np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
    shards: dict[int, np.ndarray] = {}
    out = np.empty((len(rows), dim), np.float32)
    for i, r in enumerate(rows):
        shard = shards.get(r["shard"])
        if shard is None:
            path = Path(root) / r["path"]
            try:
                shard = shards[r["shard"]] = np.load(path, mmap_mode="r")
            except OSError:
                raise BugdetError(f"{path}: embedding shard missing or unreadable (re-run `bugdet embed`)") from None
        out[i] = shard[r["row"]]
    return np.fromiter((r["item_id"] for r in rows), np.int64, len(rows)), out
