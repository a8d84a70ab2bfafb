"""The filtering stage on real playtest frames: record -> ingest -> segment -> embed -> refine -> cluster.

Embeddings come from :class:`ColourHistogramTestEmbedder` (colour histograms, a test double of the
CLIP interface), so "reject: grass, tree" means "reject green", which on the park scene should hit
ground and tree masks (the engine backend labels its masks from the object-ID legend) and leave
walls, fences, rocks and the weapon alone.
"""

from __future__ import annotations

from collections import Counter

from bugdet.cluster.bank import load_bank_entries
from bugdet.cluster.pipeline import run_clustering
from bugdet.cluster.summary import write_summary
from bugdet.embed.histogram import ColourHistogramTestEmbedder
from bugdet.embed.pipeline import embed_masks
from bugdet.ingest.ingester import ingest
from bugdet.playtest.recorder import record
from bugdet.playtest.session import PlaytestSpec
from bugdet.project import Project
from bugdet.refine.decisions import mask_status
from bugdet.refine.rules import add_prompt_rule
from bugdet.segment.run import segment_project

GREEN_THINGS = {"ground", "grass", "tree", "bush", "hedge", "leaves"}


def test_filtering_on_recorded_playtest_frames(tmp_path):
    record(PlaytestSpec(scene="park", seed=3, frames=6, width=160, height=120), tmp_path / "session")
    project = Project.init(tmp_path / "p")
    ingest(project, [tmp_path / "session"])
    assert segment_project(project).masks_added > 0
    embedder = ColourHistogramTestEmbedder()
    report = embed_masks(project, embedder)
    assert report.embedded == report.total > 50

    outcome = add_prompt_rule(project, embedder, "reject", "grass, tree", threshold=0.5)
    assert 0 < outcome.matched < outcome.evaluated
    status = mask_status(project)
    conn = project.connect()
    try:
        engine = [(r["id"], (r["label"] or "")) for r in conn.execute("SELECT id, label FROM masks WHERE backend = 'engine'")]
    finally:
        conn.close()
    rejected = Counter(label.split(":")[0] for mask_id, label in engine if status.get(mask_id) == "reject")
    assert rejected, "no engine-labelled mask was rejected"
    green = sum(n for label, n in rejected.items() if label in GREEN_THINGS)
    assert green / sum(rejected.values()) >= 0.9, rejected

    result = run_clustering(project, model_key=embedder.key)
    entries = load_bank_entries(project)
    assert entries and len(entries) == sum(result.kept)
    assert all(status.get(e.mask.id) != "reject" for e in entries)
    assert result.rejected == outcome.matched
    assert write_summary(project, result.run.id).html.is_file()
