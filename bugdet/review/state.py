"""What the running app keeps between requests: the project, and caches of expensive work.

Requests are served from a thread pool, so every cache here is guarded by a lock. Nothing that
decides anything is cached: decisions are always read from and written to the database, each
request on its own connection, so two testers (or the CLI) writing at once see each other's work.

Cached: decoded frames; one promptable predictor per recently used frame (its ``set_image`` is
the per-frame work that makes later clicks on that frame answer in milliseconds); the text
embedder (loaded on the first text prompt); mask embeddings and 2-D map coordinates, reloaded
when the stored embeddings change.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

import numpy as np

from bugdet.errors import InputError
from bugdet.imageio import read_rgb
from bugdet.project import Project
from bugdet.store.frames import FrameRow, get_frame

K = TypeVar("K")
V = TypeVar("V")

FRAME_CACHE = 48
PREDICTOR_CACHE = 4


class NotFound(InputError):
    """A frame, mask, cluster, flag or history entry that does not exist (HTTP 404)."""


class LRU:
    """A small thread-safe least-recently-used cache."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_make(self, key: K, make: Callable[[], V]) -> tuple[V, bool]:
        """(value, was_cached); ``make`` runs outside the lock so slow loads do not block readers."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key], True
        value = make()
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return value, False


@dataclass
class FramePredictor:
    """A predictor bound to one frame; ``lock`` serialises prompts on it (predictors are stateful)."""

    predictor: Any
    lock: threading.Lock


class ReviewState:
    def __init__(self, project: Project, token: str | None = None):
        self.project = project
        self.token = token or None
        self.frames = LRU(FRAME_CACHE)
        self.predictors = LRU(PREDICTOR_CACHE)
        self._embedder: Any = None
        self._embedder_lock = threading.Lock()
        self._vectors_lock = threading.Lock()
        self._vectors: tuple[tuple, np.ndarray, np.ndarray] | None = None
        self.maps = LRU(8)

    # -- database ---------------------------------------------------------------------------------
    @contextmanager
    def db(self) -> Iterator[sqlite3.Connection]:
        conn = self.project.connect()
        try:
            yield conn
        finally:
            conn.close()

    # -- frames -----------------------------------------------------------------------------------
    def frame(self, frame_id: int) -> tuple[FrameRow, np.ndarray]:
        def load() -> tuple[FrameRow, np.ndarray]:
            with self.db() as conn:
                row = get_frame(conn, frame_id)
            if row is None:
                raise NotFound(f"no frame #{frame_id}")
            return row, read_rgb(self.project.root / row.path)

        value, _ = self.frames.get_or_make(frame_id, load)
        return value

    def predictor(self, frame_id: int) -> tuple[FramePredictor, bool]:
        """The frame's predictor with ``set_image`` done; ``True`` when that work was cached.

        On a frame with an engine ID map clicks select engine objects exactly
        (:mod:`bugdet.segment.id_prompts`); elsewhere the configured pixel backend answers.
        """
        from bugdet.segment.id_prompts import frame_predictor

        def make() -> FramePredictor:
            row, rgb = self.frame(frame_id)
            device = "cpu"
            if self.segment_backend() == "sam":
                from bugdet.device import resolve_torch_device

                device = resolve_torch_device(self.project.config.device)
            return FramePredictor(frame_predictor(self.project, row, rgb, device=device), threading.Lock())

        return self.predictors.get_or_make(frame_id, make)

    def segment_backend(self) -> str:
        """The configured promptable backend; ``engine`` only reads ID maps, so it prompts with OpenCV."""
        name = self.project.config.segment.backend
        return "opencv" if name == "engine" else name

    # -- embeddings -------------------------------------------------------------------------------
    def model_spec(self) -> Any:
        from bugdet.embed.models import resolve_model_spec

        return resolve_model_spec(self.project.config.filter.embed)

    def embedder(self) -> Any:
        """The configured CLIP embedder, loaded once (the first text prompt pays for it)."""
        with self._embedder_lock:
            if self._embedder is None:
                from bugdet.embed.pipeline import build_embedder

                self._embedder = build_embedder(self.project)
            return self._embedder

    def warm_up(self) -> None:
        """Load the text embedder in the background so the first text prompt answers quickly.

        A failure (e.g. pretrained weights not available offline) is left for that first prompt
        to report with its one-line message.
        """

        def load() -> None:
            try:
                self.embedder()
            except Exception:  # noqa: BLE001 - reported again, with its message, by the first text prompt
                pass

        threading.Thread(target=load, name="review-embedder-warmup", daemon=True).start()

    def mask_vectors(self, model_key: str) -> tuple[np.ndarray, np.ndarray]:
        """(mask ids, L2-normalised vectors) of every embedded mask, reloaded when embeddings change."""
        from bugdet.embed.store import ensure_embeddings_schema, load_embeddings

        with self.db() as conn:
            ensure_embeddings_schema(conn)
            stamp = (model_key, *conn.execute(
                "SELECT COUNT(*), MAX(shard_id) FROM embeddings WHERE model_key = ? AND kind = 'mask'", (model_key,)
            ).fetchone())
            with self._vectors_lock:
                if self._vectors is not None and self._vectors[0] == stamp:
                    return self._vectors[1], self._vectors[2]
            ids, vectors = load_embeddings(self.project.root, conn, model_key, "mask")
        with self._vectors_lock:
            self._vectors = (stamp, ids, vectors)
        return ids, vectors
