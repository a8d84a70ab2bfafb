"""The embedding map: every clustered mask as a point in 2-D, coloured by cluster on the page.

Coordinates come from the cluster summary's :func:`~bugdet.cluster.summary.map_coordinates` on the
same seeded sample (:func:`~bugdet.cluster.summary.map_sample`, ``filter.cluster.seed``), so the
page and the summary PNG agree; computed once per run and cached; statuses are read fresh.
"""

from __future__ import annotations

import numpy as np
from starlette.routing import Route

from bugdet.cluster.runs import run_members
from bugdet.cluster.summary import map_coordinates, map_sample
from bugdet.embed.store import load_embeddings
from bugdet.refine.decisions import mask_status
from bugdet.review.api.clusters import _run
from bugdet.review.api.common import Args, endpoint
from bugdet.review.state import ReviewState


def _coordinates(state: ReviewState, run_id: int, model_key: str) -> tuple[np.ndarray, np.ndarray]:
    """(mask ids, Nx2 coordinates in 0..1) of the run's members the summary map also shows."""
    seed = state.project.config.filter.cluster.seed
    with state.db() as conn:
        members = [m.mask_id for m in run_members(conn, run_id)]
        ids, vectors = load_embeddings(state.project.root, conn, model_key, "mask", members)
    keep = map_sample(len(ids), seed)
    return ids[keep], map_coordinates(vectors[keep], seed)


def embedding_map(state: ReviewState, args: Args) -> dict:
    with state.db() as conn:
        run = _run(conn, args)
        clusters = {m.mask_id: m.cluster for m in run_members(conn, run.id)}
    (ids, xy), _ = state.maps.get_or_make(run.id, lambda: _coordinates(state, run.id, run.model_key))
    with state.db() as conn:
        status = mask_status(conn, ids.tolist())
    points = [{"mask_id": int(i), "x": round(float(x), 4), "y": round(float(y), 4), "cluster": clusters[int(i)],
               "status": status.get(int(i))} for i, (x, y) in zip(ids, xy)]
    return {"run": run.id, "k": run.k, "projection": "PCA of mask embeddings", "points": points,
            "sampled": len(clusters) > len(points)}


routes = [Route("/api/map", endpoint(embedding_map))]
