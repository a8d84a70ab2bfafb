"""The one place that chooses where segmentation and embedding run: in process, or on Ray.

The segment and embed stages take an optional ``remote`` runner and import nothing from
``bugdet.scale``; this module sits above both and passes the runner ``scale.backend`` names, so the
stages never import the Ray backends that import them. The ``bugdet`` command, the nightly job and
the demo call these functions; library code that only ever runs in process may call the stages
directly (they refuse a ``scale.backend`` they were not given a runner for, rather than silently
running in process).
"""

from __future__ import annotations

from typing import Any

from bugdet.embed.base import Embedder
from bugdet.embed.pipeline import EmbedReport, RemoteEmbedder
from bugdet.embed import pipeline as embed_pipeline
from bugdet.project import Project
from bugdet.segment import run as segment_run
from bugdet.segment.run import RemoteSegmenter, SegmentReport


def remote_segmenter(project: Project) -> RemoteSegmenter | None:
    """The runner for ``scale.backend``: Ray actors, or None for in process."""
    if project.config.scale.backend == "ray":
        from bugdet.scale.ray_segment import segment_on_ray  # imports ray: only when asked for

        return segment_on_ray
    return None


def remote_embedder(project: Project) -> RemoteEmbedder | None:
    """The runner for ``scale.backend``: Ray actors, or None for in process."""
    if project.config.scale.backend == "ray":
        from bugdet.scale.ray_embed import embed_on_ray  # imports ray: only when asked for

        return embed_on_ray
    return None


def segment_project(project: Project, **kwargs: Any) -> SegmentReport:
    """:func:`bugdet.segment.run.segment_project` on the configured backend."""
    return segment_run.segment_project(project, remote=remote_segmenter(project), **kwargs)


def embed_masks(project: Project, embedder: Embedder, **kwargs: Any) -> EmbedReport:
    """:func:`bugdet.embed.pipeline.embed_masks` on the configured backend."""
    return embed_pipeline.embed_masks(project, embedder, remote=remote_embedder(project), **kwargs)


def embed_frames(project: Project, embedder: Embedder, **kwargs: Any) -> EmbedReport:
    """:func:`bugdet.embed.pipeline.embed_frames` on the configured backend."""
    return embed_pipeline.embed_frames(project, embedder, remote=remote_embedder(project), **kwargs)
