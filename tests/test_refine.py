"""Interactive filtering: text-prompt keep/reject rules, cluster and mask verdicts, persistence, replay.

The embedder is :class:`ColourHistogramTestEmbedder`, a real implementation of the embedder
interface whose image features are colour histograms and whose text features are colour keywords,
so "reject: grass" must reject exactly the green shapes.
"""

from __future__ import annotations

import json

import pytest

from bugdet.embed.histogram import ColourHistogramTestEmbedder
from bugdet.embed.pipeline import embed_masks
from bugdet.errors import InputError
from bugdet.project import Project
from bugdet.refine.decisions import list_decisions, mask_status, record_decision, revoke_decision
from bugdet.refine.rules import add_prompt_rule, decide_cluster, decide_masks, replay_decisions
from filter_toydata import add_frames, new_project

FRAMES = [[("red", "circle"), ("green", "rect")], [("blue", "circle"), ("green", "rect")],
          [("yellow", "circle"), ("red", "rect")]]


@pytest.fixture()
def project(tmp_path):
    project = new_project(tmp_path / "p", **{"filter.cluster.dedupe_similarity": "null"})
    add_frames(project, FRAMES * 2)
    embed_masks(project, ColourHistogramTestEmbedder())
    return project


def _colours(project) -> dict[int, str]:
    conn = project.connect()
    try:
        return {r["id"]: r["label"] for r in conn.execute("SELECT id, label FROM masks")}
    finally:
        conn.close()


def _rejected_colours(project) -> set[str]:
    colours = _colours(project)
    return {colours[m] for m, s in mask_status(project).items() if s == "reject"}


def test_reject_prompt_rejects_exactly_the_matching_masks(project):
    outcome = add_prompt_rule(project, ColourHistogramTestEmbedder(), "reject", "tree, grass, sky", threshold=0.5, who="ana")
    colours = _colours(project)
    assert outcome.evaluated == len(colours) == 12
    assert outcome.matched == sum(c in ("green", "blue") for c in colours.values()) == 6
    status = mask_status(project)
    assert {colours[m] for m, s in status.items() if s == "reject"} == {"green", "blue"}
    assert {colours[m] for m, s in status.items() if s == "keep"} == {"red", "yellow"}


def test_keep_rules_are_ored_and_reject_wins(project):
    embedder = ColourHistogramTestEmbedder()
    add_prompt_rule(project, embedder, "keep", "red", threshold=0.5)
    assert _rejected_colours(project) == {"green", "blue", "yellow"}
    add_prompt_rule(project, embedder, "keep", "sun", threshold=0.5)  # a second keep list widens, not narrows
    assert _rejected_colours(project) == {"green", "blue"}
    add_prompt_rule(project, embedder, "reject", "fire", threshold=0.5)  # red is both kept and rejected: reject wins
    assert _rejected_colours(project) == {"green", "blue", "red"}


def test_threshold_decides(project):
    embedder = ColourHistogramTestEmbedder()
    add_prompt_rule(project, embedder, "reject", "red grass", threshold=0.8)  # cos(red, red+green) = 0.71
    assert _rejected_colours(project) == set()
    add_prompt_rule(project, embedder, "reject", "red grass", threshold=0.7)
    assert _rejected_colours(project) == {"red", "green"}


def test_decisions_survive_a_restart_with_who_when_prompt_threshold(project):
    add_prompt_rule(project, ColourHistogramTestEmbedder(), "reject", ["grass", "sky"], threshold=0.4, who="ana")
    mask_id = next(m for m, c in _colours(project).items() if c == "red")
    decide_masks(project, [mask_id], "reject", who="ben", note="looks like a decal")
    before = mask_status(project)

    reopened = Project.open(project.root)  # new process, new connection
    rules = list_decisions(reopened, rules_only=True)
    assert len(rules) == 1
    rule = rules[0]
    assert (rule.scope, rule.action, rule.who, rule.prompts, rule.threshold) == ("prompt", "reject", "ana", ["grass", "sky"], 0.4)
    assert rule.created_at > 0 and rule.model_key == ColourHistogramTestEmbedder.key
    assert rule.vectors.shape == (2, ColourHistogramTestEmbedder.dim)
    manual = list_decisions(reopened, scope="mask", include_derived=False)
    assert [(d.mask_id, d.action, d.who, d.note) for d in manual] == [(mask_id, "reject", "ben", "looks like a decal")]
    assert mask_status(reopened) == before
    assert json.loads(json.dumps(rule.to_dict()))["prompts"] == ["grass", "sky"]


def test_prompt_rules_replay_on_new_masks(project):
    add_prompt_rule(project, ColourHistogramTestEmbedder(), "reject", "grass", threshold=0.5)
    new = add_frames(project, [[("green", "circle"), ("magenta", "rect")]] * 3, seed=7)
    new_ids = [i for _, ids, _ in new for i in ids]
    embed_masks(project, ColourHistogramTestEmbedder())
    assert mask_status(project, new_ids) == {}  # not evaluated yet
    report = replay_decisions(project, new_ids)
    assert report.derived == 6
    colours = _colours(project)
    assert {m: s for m, s in mask_status(project, new_ids).items()} == {
        m: ("reject" if colours[m] == "green" else "keep") for m in new_ids}
    assert replay_decisions(project, new_ids).derived == 0  # idempotent


def test_replay_reports_masks_without_embeddings(project):
    add_prompt_rule(project, ColourHistogramTestEmbedder(), "reject", "grass", threshold=0.5)
    new = add_frames(project, [[("green", "circle")]], seed=3)
    outcome = replay_decisions(project, new[0][1]).outcomes[0]
    assert (outcome.evaluated, outcome.missing_embeddings) == (0, 1)
    assert "run `bugdet embed`" in outcome.describe()


def test_cluster_verdict_replays_by_nearest_centroid_and_manual_wins(project):
    from bugdet.cluster.pipeline import run_clustering

    result = run_clustering(project, model_key=ColourHistogramTestEmbedder.key,
                            cfg=project.config.filter.cluster.model_copy(update={"k": 4}))
    colours = _colours(project)
    conn = project.connect()
    try:
        red_cluster = conn.execute("SELECT cluster FROM cluster_members WHERE run_id = ? AND mask_id = ?",
                                   (result.run.id, next(m for m, c in colours.items() if c == "red"))).fetchone()[0]
    finally:
        conn.close()
    decide_cluster(project, red_cluster, "reject", who="ana")
    assert _rejected_colours(project) == {"red"}

    new = add_frames(project, [[("red", "circle"), ("blue", "rect")]], seed=5)
    embed_masks(project, ColourHistogramTestEmbedder())
    replay_decisions(project, new[0][1])
    red_new, blue_new = new[0][1]
    assert mask_status(project, [red_new, blue_new]) == {red_new: "reject"}

    decide_masks(project, [red_new], "keep", who="ben")  # a person's verdict on one mask beats the cluster's
    assert mask_status(project, [red_new])[red_new] == "keep"


def test_revoking_a_rule_withdraws_what_it_derived(project):
    outcome = add_prompt_rule(project, ColourHistogramTestEmbedder(), "reject", "grass", threshold=0.5)
    assert _rejected_colours(project) == {"green"}
    revoked = revoke_decision(project, outcome.rule.id)
    assert revoked.revoked_at is not None
    assert _rejected_colours(project) == set()


def test_bad_refinement_inputs(project):
    embedder = ColourHistogramTestEmbedder()
    with pytest.raises(InputError, match="no prompts"):
        add_prompt_rule(project, embedder, "reject", " , ")
    with pytest.raises(InputError, match="no such mask"):
        decide_masks(project, [99999], "reject")
    with pytest.raises(InputError, match="no clustering run"):
        decide_cluster(project, 0, "reject")
    with pytest.raises(InputError, match="action"):
        record_decision(project, scope="mask", action="maybe", mask_id=1)
    with pytest.raises(InputError, match="no decision #424242"):
        revoke_decision(project, 424242)
