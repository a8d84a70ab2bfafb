"""Filtering commands: ``bugdet embed``, ``refine``, ``cluster``, ``summary``, ``weaklabel``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from bugdet.cli.common import ProjectOption, SetOption, console, open_project
from bugdet.errors import InputError


def _warn_unpretrained(label: str, pretrained: bool) -> None:
    if not pretrained:
        console.print(f"[yellow]warning:[/] {label}: UNPRETRAINED weights, embeddings carry no semantics")


def embed(
    project_dir: Path = ProjectOption,
    masks: bool = typer.Option(True, "--masks/--no-masks", help="Embed mask crops (for filtering)."),
    frames: bool = typer.Option(False, "--frames/--no-frames", help="Also embed whole frames (for weak labels)."),
    backend: Optional[str] = typer.Option(None, "--backend", help="torch or onnx (filter.embed.backend)."),
    sample: Optional[int] = typer.Option(
        None, "--sample", min=1, help="Only the masks (and frames) of N frames spread evenly over captures and time."
    ),
    overrides: Optional[List[str]] = SetOption,
) -> None:
    """Embed every mask crop (and optionally frame) not embedded yet with the configured CLIP model."""
    from bugdet.embed.pipeline import build_embedder
    from bugdet.progress import rich_progress
    from bugdet.scale.dispatch import embed_frames, embed_masks

    flags = list(overrides or []) + ([f"filter.embed.backend={backend}"] if backend else [])
    project = open_project(project_dir, flags)
    embedder = build_embedder(project)
    _warn_unpretrained(embedder.label, embedder.pretrained)
    with rich_progress(console) as bar:
        reports = ([embed_masks(project, embedder, progress=bar, sample=sample)] if masks else []) + \
                  ([embed_frames(project, embedder, progress=bar, sample=sample)] if frames else [])
    for report in reports:
        console.print(report.describe())


def refine(
    project_dir: Path = ProjectOption,
    reject: Optional[List[str]] = typer.Option(None, "--reject", help="Reject masks matching these prompts, e.g. 'tree, grass, sky'."),
    keep: Optional[List[str]] = typer.Option(None, "--keep", help="Keep only masks matching one of these prompts."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Cosine threshold (default filter.refine.*_threshold)."),
    reject_cluster: Optional[List[int]] = typer.Option(None, "--reject-cluster", help="Reject a whole cluster of the run."),
    keep_cluster: Optional[List[int]] = typer.Option(None, "--keep-cluster", help="Accept a whole cluster of the run."),
    run_id: Optional[int] = typer.Option(None, "--run", help="Clustering run for cluster decisions (default: latest)."),
    reject_mask: Optional[List[int]] = typer.Option(None, "--reject-mask", help="Reject single masks by id."),
    keep_mask: Optional[List[int]] = typer.Option(None, "--keep-mask", help="Keep single masks by id."),
    revoke: Optional[List[int]] = typer.Option(None, "--revoke", help="Withdraw a decision (and what it derived) by id."),
    replay: bool = typer.Option(False, "--replay", help="Replay standing rules on masks they have not seen yet."),
    show: bool = typer.Option(False, "--list", help="List rules and manual decisions."),
    who: Optional[str] = typer.Option(None, "--who", help="Who decides (default: the OS user)."),
    note: Optional[str] = typer.Option(None, "--note", help="Free text stored with cluster/mask decisions."),
    overrides: Optional[List[str]] = SetOption,
) -> None:
    """Keep/reject masks by text prompt, cluster or id; every decision is stored and replayable."""
    from bugdet.refine.decisions import list_decisions, revoke_decision
    from bugdet.refine.rules import add_prompt_rule, decide_cluster, decide_masks, replay_decisions

    project = open_project(project_dir, overrides)
    did_something = False
    if reject or keep:
        from bugdet.embed.pipeline import build_embedder

        embedder = build_embedder(project)
        _warn_unpretrained(embedder.label, embedder.pretrained)
        for action, prompts in (("reject", reject), ("keep", keep)):
            if prompts:
                console.print(add_prompt_rule(project, embedder, action, prompts, threshold, who).describe())
        did_something = True
    for action, clusters in (("reject", reject_cluster), ("keep", keep_cluster)):
        for c in clusters or []:
            console.print(decide_cluster(project, c, action, run_id, who, note).describe())
            did_something = True
    for action, ids in (("reject", reject_mask), ("keep", keep_mask)):
        if ids:
            for d in decide_masks(project, ids, action, who, note):
                console.print(d.describe())
            did_something = True
    for decision_id in revoke or []:
        console.print(revoke_decision(project, decision_id).describe())
        did_something = True
    if replay:
        for outcome in replay_decisions(project).outcomes:
            console.print(outcome.describe())
        did_something = True
    if show or not did_something:
        decisions = list_decisions(project, include_derived=False)
        if not decisions:
            console.print("no decisions yet")
        for d in decisions:
            console.print(d.describe())


def cluster(
    project_dir: Path = ProjectOption,
    k: Optional[int] = typer.Option(None, "--k", min=1, help="Number of k-means clusters (default filter.cluster.k; none = auto)."),
    model_key: Optional[str] = typer.Option(None, "--model-key", help="Embedding space to cluster (default: the configured model's)."),
    summary: bool = typer.Option(True, "--summary/--no-summary", help="Also write the contact sheet, map and HTML page."),
    overrides: Optional[List[str]] = SetOption,
) -> None:
    """Cluster non-rejected mask embeddings (FAISS k-means), balance clusters, write the mask bank."""
    from bugdet.cluster.bank import bank_path
    from bugdet.cluster.pipeline import run_clustering
    from bugdet.progress import rich_progress

    flags = list(overrides or []) + ([f"filter.cluster.k={k}"] if k else [])
    project = open_project(project_dir, flags)
    with rich_progress(console) as bar:
        result = run_clustering(project, model_key, progress=bar)
    console.print(result.describe())
    console.print(f"cluster sizes {result.sizes}; in bank {result.kept}")
    console.print(f"mask bank: {bank_path(project)}")
    if summary:
        from bugdet.cluster.summary import write_summary

        console.print(f"summary: {write_summary(project, result.run.id).html}")


def summary(
    project_dir: Path = ProjectOption,
    run_id: Optional[int] = typer.Option(None, "--run", help="Clustering run (default: latest)."),
    overrides: Optional[List[str]] = SetOption,
) -> None:
    """Write a clustering run's contact sheet, embedding map and HTML page."""
    from bugdet.cluster.summary import write_summary

    project = open_project(project_dir, overrides)
    paths = write_summary(project, run_id)
    console.print(f"contact sheet: {paths.contact_sheet}\nembedding map: {paths.embedding_map}\nhtml: {paths.html}")


def weaklabel(
    project_dir: Path = ProjectOption,
    sample_ground_truth: Optional[int] = typer.Option(
        None, "--sample-ground-truth", min=1,
        help="Simulate a tester: take N bug frames per type (and --good clean frames) from ground truth instead of "
             "the recorded frame labels. Nothing is recorded as a label.",
    ),
    good: int = typer.Option(5, "--good", min=0, help="Clean frames sampled with --sample-ground-truth."),
    bug_types: Optional[List[str]] = typer.Option(None, "--bug-type", help="Bug types to sample (default: all present)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the ground-truth sample."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write coverage/agreement as JSON here."),
    overrides: Optional[List[str]] = SetOption,
) -> None:
    """Propagate a handful of labeled frames to every other frame by kNN vote on frame embeddings."""
    from bugdet.embed.models import resolve_model_spec
    from bugdet.embed.pipeline import build_embedder
    from bugdet.scale.dispatch import embed_frames
    from bugdet.store.frames import iter_frames
    from bugdet.weaklabel.propagate import exemplars_from_ground_truth, exemplars_from_labels, propagate_labels

    project = open_project(project_dir, overrides)
    if sample_ground_truth:
        if not bug_types:
            conn = project.connect()
            try:
                bug_types = sorted({t for f in iter_frames(conn) if f.ground_truth for t, v in f.ground_truth.items()
                                    if v.get("present")})
            finally:
                conn.close()
        exemplars = exemplars_from_ground_truth(project, list(bug_types), sample_ground_truth, good, seed)
        console.print(f"simulated tester: {len(exemplars)} exemplar frames sampled from ground truth")
    else:
        exemplars = exemplars_from_labels(project)
        if not exemplars:
            raise InputError("no labeled frames in the project (label a few, or pass --sample-ground-truth N)")
    embedder = build_embedder(project)
    _warn_unpretrained(embedder.label, embedder.pretrained)
    console.print(embed_frames(project, embedder).describe())
    report = propagate_labels(project, exemplars, resolve_model_spec(project.config.filter.embed).key)
    console.print(report.describe())
    if json_out is not None:
        json_out.write_text(json.dumps({"run_id": report.run_id, "exemplars": report.exemplars,
                                        "unlabeled": report.unlabeled, "covered": report.covered,
                                        "coverage": report.coverage, "agreement": report.agreement,
                                        "with_truth": report.with_truth, "per_class": report.per_class,
                                        "pretrained": report.pretrained}, indent=1))


def register(app: typer.Typer) -> None:
    app.command("embed")(embed)
    app.command("refine")(refine)
    app.command("cluster")(cluster)
    app.command("summary")(summary)
    app.command("weaklabel")(weaklabel)
