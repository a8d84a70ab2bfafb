"""``bugdet embed`` on Ray: the in-process path's crops and embedder, run by a pool of actors.

:func:`bugdet.embed.pipeline._embed_missing` decides *what* to embed (items without a vector under
the model's key) and how an item becomes an image (its ``crops`` function); with ``scale.backend:
ray`` it hands both here. Each actor builds the embedder once, cuts the crops of its chunk of work
(one chunk = whole frames' masks, so a frame image is decoded once) and embeds them; the driver
writes the returned vectors with the same :func:`~bugdet.embed.store.write_shard` in the same
flush-every-``FLUSH_ROWS`` rhythm, so stored results and resumability are those of the in-process path.

Actors read frames and masks from the project directory themselves: on a multi-node cluster the
project must be on storage every node mounts at the same path.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from bugdet.embed.base import Embedder
from bugdet.errors import BugdetError
from bugdet.progress import Progress
from bugdet.project import Project
from bugdet.scale.ray_runtime import PayloadActor, map_on_actors

CropFunction = Callable[[list[Any]], Iterable[tuple[int, np.ndarray]]]


class EmbedActor(PayloadActor):
    """Holds one embedder; a work item is a list of masks (or frames), the result their ids and vectors."""

    def __init__(self, make_embedder: Callable[[], Embedder], crops: CropFunction, driver_cwd: str | None = None,
                 threads: int = 1) -> None:
        super().__init__(make_embedder, driver_cwd, threads)
        self.crops = crops

    def process(self, chunk: list[Any]) -> tuple[np.ndarray, np.ndarray]:
        pairs = list(self.crops(chunk))
        ids = np.array([item_id for item_id, _ in pairs], np.int64)
        return ids, self.model.embed_images([image for _, image in pairs])


def chunk_by_frame(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    """Chunks of about ``size`` items that never split one frame's masks (frames: one item each)."""
    def frame_of(item: Any) -> int:
        return getattr(item, "frame_id", item.id)

    chunk: list[Any] = []
    for item in sorted(items, key=lambda it: (frame_of(it), it.id)):
        if len(chunk) >= size and frame_of(item) != frame_of(chunk[-1]):
            yield chunk
            chunk = []
        chunk.append(item)
    if chunk:
        yield chunk


def embedder_factory(project: Project, embedder: Embedder, threads: int) -> Callable[[], Embedder]:
    """How each actor gets its embedder: the configured model is rebuilt from the project config
    (weights come from the same tag/file/seed, so the key matches); any other embedder (a test
    double, a custom model) is shipped to the actors as it is, when it can be pickled."""
    from bugdet.embed.models import resolve_model_spec
    from bugdet.embed.pipeline import build_embedder

    cfg = project.config.filter.embed
    if resolve_model_spec(cfg).key == embedder.key:
        actor_cfg = cfg.model_copy(update={"threads": cfg.threads or threads})
        return functools.partial(build_embedder, project, actor_cfg)
    import cloudpickle

    try:
        shipped = cloudpickle.dumps(embedder)
    except Exception as exc:  # any pickling failure means the same thing to the user
        raise BugdetError(
            f"scale.backend ray: embedder {embedder.label} is not the configured filter.embed model and cannot be "
            f"sent to Ray actors ({type(exc).__name__}); configure it in filter.embed or use scale.backend inprocess"
        ) from None
    return functools.partial(cloudpickle.loads, shipped)


def embed_on_ray(project: Project, embedder: Embedder, kind: str, todo: list[Any], crops: CropFunction,
                 store_dtype: str, progress: Progress) -> int:
    """Embed ``todo`` (masks or frames) on Ray actors and store the vectors; returns rows written."""
    from bugdet.embed.pipeline import FLUSH_ROWS
    from bugdet.embed.store import write_shard

    cfg = project.config.scale
    threads = max(1, int(cfg.cpus_per_actor))
    work = chunk_by_frame(todo, cfg.items_per_batch)
    actor_kwargs = {"make_embedder": embedder_factory(project, embedder, threads), "crops": crops, "threads": threads}
    conn = project.connect()
    written = 0
    ids: list[np.ndarray] = []
    vectors: list[np.ndarray] = []

    def flush() -> None:
        nonlocal written
        if ids:
            rows = np.concatenate(ids)
            write_shard(project.root, conn, embedder.key, kind, rows.tolist(), np.concatenate(vectors), store_dtype)
            written += len(rows)
            ids.clear()
            vectors.clear()

    try:
        for chunk_ids, chunk_vectors in map_on_actors(cfg, work, EmbedActor, actor_kwargs, model_uses_gpu=True):
            ids.append(chunk_ids)
            vectors.append(chunk_vectors)
            progress.advance(len(chunk_ids))
            if sum(len(i) for i in ids) >= FLUSH_ROWS:
                flush()
        flush()
    finally:
        conn.close()
    return written
