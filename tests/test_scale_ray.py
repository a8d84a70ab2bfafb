"""Ray and in-process give the same masks, embeddings and clusters on a real playtest project.

One local Ray cluster (2 CPUs) serves the whole module. Two projects ingest the same recorded
park session; one runs every stage in-process, the other with ``scale.backend: ray``. Embeddings
come from an UNPRETRAINED open_clip ViT-S-32 (random init, seeded): equality of the two paths is
what is tested, not what the vectors mean.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from bugdet.cluster.pipeline import run_clustering
from bugdet.cluster.runs import run_members
from bugdet.embed.histogram import ColourHistogramTestEmbedder
from bugdet.embed.pipeline import build_embedder
from bugdet.embed.store import load_embeddings
from bugdet.errors import BugdetError, InputError
from bugdet.ingest.ingester import ingest
from bugdet.playtest.recorder import record
from bugdet.playtest.session import PlaytestSpec
from bugdet.project import Project
from bugdet.scale.dispatch import embed_frames, embed_masks, segment_project
from bugdet.scale.ray_embed import chunk_by_frame, embedder_factory
from bugdet.segment.masks import iter_masks

EMBED = ["filter.embed.model=ViT-S-32", "filter.embed.pretrained=none", "filter.embed.backend=torch",
         "filter.cluster.k=6", "segment.max_masks_per_frame=8", "segment.commit_every=2"]


@pytest.fixture(scope="module")
def ray_cluster():
    import cloudpickle
    import ray

    # The test doubles below live in this test module, which Ray workers cannot import: send them by value.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=256 * 2**20, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def projects(tmp_path_factory, ray_cluster) -> tuple[Project, Project]:
    """(in-process, ray) projects over the same 3-frame park session, segmented and embedded each way."""
    root: Path = tmp_path_factory.mktemp("scale")
    record(PlaytestSpec(scene="park", seed=3, frames=3, width=160, height=120), root / "session")
    local = Project.open(root / "inprocess", EMBED, create=True)
    remote = Project.open(root / "ray", EMBED + ["scale.backend=ray", "scale.items_per_batch=40"], create=True)
    for project in (local, remote):
        ingest(project, [root / "session"])
    return local, remote


def _masks(project: Project) -> list[tuple]:
    conn = project.connect()
    try:
        return [(m.id, m.frame_id, m.backend, m.bbox, m.area, m.label, m.decode().tobytes()) for m in iter_masks(conn)]
    finally:
        conn.close()


def _vectors(project: Project, key: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    conn = project.connect()
    try:
        ids, vectors = load_embeddings(project.root, conn, key, kind)
    finally:
        conn.close()
    order = np.argsort(ids)
    return ids[order], vectors[order].astype(np.float32)


def test_segment_embed_and_cluster_match_inprocess(projects):
    local, remote = projects
    a, b = segment_project(local), segment_project(remote)
    assert a.masks_added == b.masks_added > 20 and a.engine_masks_added == b.engine_masks_added > 0
    assert a.statuses == b.statuses and b.frames_segmented == 3
    assert _masks(local) == _masks(remote)
    assert segment_project(remote).frames_segmented == 0  # resumable: nothing left to do

    embedder = build_embedder(local)
    first = embed_masks(local, embedder)
    second = embed_masks(remote, embedder)
    assert first.embedded == second.embedded == first.total > 20
    ids_a, vec_a = _vectors(local, embedder.key, "mask")
    ids_b, vec_b = _vectors(remote, embedder.key, "mask")
    assert (ids_a == ids_b).all()
    assert np.allclose(vec_a, vec_b, atol=2e-3)
    assert embed_masks(remote, embedder).embedded == 0

    ca, cb = run_clustering(local), run_clustering(remote)
    assert ca.k == cb.k and ca.sizes == cb.sizes and ca.duplicates == cb.duplicates
    assert _members(local, ca.run.id) == _members(remote, cb.run.id)


def _members(project: Project, run_id: int) -> list[tuple[int, int, str]]:
    conn = project.connect()
    try:
        return sorted((m.mask_id, m.cluster, m.state) for m in run_members(conn, run_id))
    finally:
        conn.close()


def test_frames_with_a_shipped_embedder_match_inprocess(projects):
    """An embedder that is not the configured model (here the colour-histogram test double) is
    pickled to the actors as it is; whole-frame embedding goes through the same path."""
    local, remote = projects
    embedder = ColourHistogramTestEmbedder()
    assert embed_frames(local, embedder).embedded == embed_frames(remote, embedder).embedded == 3
    ids_a, vec_a = _vectors(local, embedder.key, "frame")
    ids_b, vec_b = _vectors(remote, embedder.key, "frame")
    assert (ids_a == ids_b).all() and np.allclose(vec_a, vec_b, atol=1e-3)


def test_unpicklable_embedder_is_a_one_line_error(projects):
    _, remote = projects

    class Unshippable(ColourHistogramTestEmbedder):
        def __init__(self) -> None:
            super().__init__()
            self.lock = __import__("threading").Lock()
            self.key = "unshippable"

    with pytest.raises(BugdetError, match="cannot be sent to Ray actors"):
        embedder_factory(remote, Unshippable(), threads=1)


def test_chunks_keep_each_frames_masks_together():
    class Item:
        def __init__(self, item_id: int, frame_id: int) -> None:
            self.id, self.frame_id = item_id, frame_id

    items = [Item(i, i // 5) for i in range(23)][::-1]
    chunks = list(chunk_by_frame(items, size=7))
    assert [len(c) for c in chunks] == [10, 10, 3]
    assert all(len({it.frame_id for it in c}) == len(c) // 5 + (len(c) % 5 > 0) for c in chunks)
    assert sorted(it.id for c in chunks for it in c) == list(range(23))


class FailingEmbedder(ColourHistogramTestEmbedder):
    """Raises the user error a bad crop would raise, from inside the actor."""

    key = "failing-test-double"

    def _embed_image_batch(self, images):
        raise InputError("crop 7 is unreadable")


def test_user_errors_from_actors_reach_the_caller_as_themselves(projects):
    _, remote = projects
    with pytest.raises(InputError, match="^crop 7 is unreadable$"):
        embed_frames(remote, FailingEmbedder())


def test_model_errors_on_actors_reach_the_caller(tmp_path, projects):
    """A segmenter that cannot be built on the actors (SAM without a checkpoint) fails the run
    with the same one-line error as in-process."""
    _, remote = projects
    broken = Project.open(remote.root, EMBED + ["scale.backend=ray", "segment.backend=sam"])
    local = Project.open(remote.root, EMBED + ["segment.backend=sam"])
    with pytest.raises(BugdetError) as in_process:
        segment_project(local, limit=1)
    with pytest.raises(BugdetError) as on_ray:
        segment_project(broken, limit=1)
    assert type(on_ray.value) is type(in_process.value) and str(on_ray.value) == str(in_process.value)
