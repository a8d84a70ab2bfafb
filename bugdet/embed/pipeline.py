"""Embed what has not been embedded yet: mask crops (for filtering) and whole frames (for weak labels).

Masks are read frame by frame (each frame image is decoded once for all its masks), cropped with
:func:`~bugdet.segment.masks.mask_crop`, embedded in batches and flushed to a shard every
``flush_rows`` rows, so an interrupted run keeps what it finished and a re-run picks up the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from bugdet.embed.base import Embedder
from bugdet.embed.config import EmbedConfig
from bugdet.embed.store import embedded_ids, register_model, write_shard
from bugdet.errors import BugdetError, ConfigError
from bugdet.imageio import read_rgb
from bugdet.progress import NullProgress, Progress
from bugdet.project import Project
from bugdet.segment.masks import MaskRecord, iter_masks, mask_crop
from bugdet.store.frames import get_frame, iter_frames, sample_evenly

FLUSH_ROWS = 2048
ONNX_CACHE = "embeddings/onnx"


@dataclass
class EmbedReport:
    kind: str
    model_key: str
    model_label: str
    pretrained: bool
    embedded: int          # new rows written by this run
    already: int           # items that had embeddings before this run
    total: int             # items of this kind in the project

    def describe(self) -> str:
        warning = "" if self.pretrained else " [UNPRETRAINED: embeddings carry no semantics]"
        return (f"{self.kind}s: embedded {self.embedded} new, {self.already} already done, {self.total} total "
                f"with {self.model_label}{warning}")


def build_embedder(project: Project, cfg: EmbedConfig | None = None) -> Embedder:
    """The configured CLIP embedder (torch or ONNX backend) on the configured device."""
    from bugdet.device import onnx_providers, resolve_torch_device
    from bugdet.embed.models import resolve_model_spec

    cfg = cfg or project.config.filter.embed
    spec = resolve_model_spec(cfg)
    if cfg.backend == "torch":
        from bugdet.embed.clip_torch import TorchClipEmbedder

        return TorchClipEmbedder(spec, resolve_torch_device(project.config.device), cfg.batch_size, cfg.threads)
    from bugdet.embed.clip_onnx import OnnxClipEmbedder

    return OnnxClipEmbedder(spec, project.root / ONNX_CACHE, onnx_providers(project.config.device),
                            cfg.batch_size, cfg.threads)


def _crops_by_frame(project: Project, masks: list[MaskRecord]) -> Iterator[tuple[MaskRecord, np.ndarray]]:
    conn = project.connect()
    try:
        current_frame, rgb = None, None
        for m in sorted(masks, key=lambda r: (r.frame_id, r.id)):
            if m.frame_id != current_frame:
                frame = get_frame(conn, m.frame_id)
                if frame is None:
                    raise BugdetError(f"mask {m.id} refers to missing frame {m.frame_id}")
                rgb, current_frame = read_rgb(project.root / frame.path), m.frame_id
            mask = m.decode()
            if mask.shape != rgb.shape[:2]:
                raise BugdetError(f"mask {m.id} is {mask.shape[::-1]} but frame {m.frame_id} is {rgb.shape[1::-1]}")
            yield m, mask_crop(rgb, mask)
    finally:
        conn.close()


def _embed_stream(project: Project, embedder: Embedder, kind: str, items: Iterator[tuple[int, np.ndarray]],
                  store_dtype: str, progress: Progress) -> int:
    conn = project.connect()
    written = 0
    ids: list[int] = []
    vectors: list[np.ndarray] = []
    batch_ids: list[int] = []
    batch_images: list[np.ndarray] = []

    def run_batch() -> None:
        if batch_images:
            vectors.append(embedder.embed_images(batch_images))
            ids.extend(batch_ids)
            progress.advance(len(batch_images))
            batch_ids.clear()
            batch_images.clear()

    def flush() -> None:
        nonlocal written
        if ids:
            write_shard(project.root, conn, embedder.key, kind, ids, np.concatenate(vectors), store_dtype)
            written += len(ids)
            ids.clear()
            vectors.clear()

    try:
        for item_id, image in items:
            batch_ids.append(item_id)
            batch_images.append(image)
            if len(batch_images) >= embedder.batch_size:
                run_batch()
                if len(ids) >= FLUSH_ROWS:
                    flush()
        run_batch()
        flush()
    finally:
        conn.close()
    return written


#: Embeds elsewhere (e.g. on Ray actors) and writes through this module's store functions:
#: ``(project, embedder, kind, todo, crops, store dtype, progress) -> rows written``.
RemoteEmbedder = Callable[[Project, Embedder, str, list, Callable, str, Progress], int]


def _embed_missing(project: Project, embedder: Embedder, kind: str, list_items, crops, progress: Progress | None,
                   store_dtype: str | None, remote: RemoteEmbedder | None) -> EmbedReport:
    """Embed the ``kind`` items (masks or frames) that have no embedding under ``embedder.key``.

    ``list_items(conn)`` lists the candidates (objects with ``.id``); ``crops(todo)`` yields
    ``(id, rgb)`` for those still to embed. ``remote`` runs the model elsewhere: this stage does
    not import the backends built on it; :mod:`bugdet.scale.dispatch` passes the configured one."""
    if remote is None and project.config.scale.backend != "inprocess":
        raise ConfigError(f"scale.backend is {project.config.scale.backend}: embed through "
                          "bugdet.scale.dispatch (as the bugdet command does)")
    progress = progress or NullProgress()
    store_dtype = store_dtype or project.config.filter.embed.store_dtype
    conn = project.connect()
    try:
        register_model(conn, embedder.key, embedder.label, embedder.pretrained, embedder.dim)
        done = embedded_ids(conn, embedder.key, kind)
        items = list_items(conn)
    finally:
        conn.close()
    todo = [item for item in items if item.id not in done]
    progress.start(f"embedding {len(todo)} {kind}s", len(todo))
    if remote is not None:
        written = remote(project, embedder, kind, todo, crops, store_dtype, progress)
    else:
        written = _embed_stream(project, embedder, kind, crops(todo), store_dtype, progress)
    return EmbedReport(kind, embedder.key, embedder.label, embedder.pretrained, written, len(done), len(items))


def embed_masks(project: Project, embedder: Embedder, progress: Progress | None = None,
                store_dtype: str | None = None, sample: int | None = None,
                remote: RemoteEmbedder | None = None) -> EmbedReport:
    """Embed every mask that has no embedding under ``embedder.key`` yet; with ``sample``, only
    the masks of ``sample`` frames spread evenly over captures and time (see ``sample_evenly``)."""
    def masks(conn) -> list[MaskRecord]:
        # Role masks (e.g. a tester's weapon mask) annotate frames for compositing; they are not
        # content to filter. Empty masks have nothing to embed.
        found = [m for m in iter_masks(conn) if not m.meta.get("role") and m.area > 0]
        if sample is not None:
            with_masks = {m.frame_id for m in found}
            keep = {f.id for f in sample_evenly([f for f in iter_frames(conn) if f.id in with_masks], sample)}
            found = [m for m in found if m.frame_id in keep]
        return found

    def crops(todo: list[MaskRecord]) -> Iterator[tuple[int, np.ndarray]]:
        return ((m.id, crop) for m, crop in _crops_by_frame(project, todo))

    return _embed_missing(project, embedder, "mask", masks, crops, progress, store_dtype, remote)


def embed_frames(project: Project, embedder: Embedder, progress: Progress | None = None,
                 store_dtype: str | None = None, sample: int | None = None,
                 remote: RemoteEmbedder | None = None) -> EmbedReport:
    """Embed every whole frame that has no embedding yet (the weak-label stage's frame vectors);
    with ``sample``, ``sample`` frames spread evenly over captures and time."""
    def crops(todo: list) -> Iterator[tuple[int, np.ndarray]]:
        return ((f.id, read_rgb(project.root / f.path)) for f in todo)

    def frames(conn) -> list:
        rows = list(iter_frames(conn))
        return rows if sample is None else sample_evenly(rows, sample)

    return _embed_missing(project, embedder, "frame", frames, crops, progress, store_dtype, remote)
