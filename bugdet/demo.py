"""The end-to-end demo: every pipeline stage, on captures of the built-in playtest world.

It is the README's main job and the smoke test a studio engineer runs first, so it uses only
what ships with bugdet (no weights, no downloads; CLIP is an explicitly unpretrained ViT-S-32)
and leaves a project directory to look at. Each step is the same library call the matching
``bugdet`` command makes; re-running the demo reuses what is already there.

  record   three playtest captures: train (unlabeled pool), val, and a held-out test level
  ingest   into the project's manifest
  segment  a sample of 12 train frames spread over the capture, with the default OpenCV grid backend
  embed    mask crops with CLIP, cluster them in FAISS, write the mask bank and its summary
  label    a simulated tester labels 10 FPPC frames and 30 good frames
  augment  an FPPC objective sample sheet (over vs behind the weapon)
  train    the detector: objective pre-training, then fine-tuning on the 10 labels; thresholds calibrated on val
  evaluate on the held-out test level at ~1% prevalence
  export   an ONNX model package with a parity check, into the versioned model registry
  promote  the package to champion: what the service serves (the nightly job's last step)
  playtest the playtest world streams frames to the gRPC service and writes a report; the
           frames it flagged go to the review app's flag queue (``bugdet review -p DIR``)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bugdet.progress import NullProgress, Progress
from bugdet.project import Project

DEMO_OVERRIDES = [
    "name=bugdet-demo",
    "filter.embed.model=ViT-S-32",
    "filter.embed.pretrained=none",  # no weights can be downloaded: an explicitly unpretrained CLIP
    "filter.embed.backend=torch",
    "filter.cluster.k=8",
    # Random-init CLIP maps every crop to nearly the same direction, so cosine "near duplicates"
    # would swallow almost the whole bank; deduplication needs real (pretrained) embeddings.
    "filter.cluster.dedupe_similarity=null",
    "detect.bug_types=[fppc]",
    "detect.mode=pretrain_finetune",  # the quality bench's best and steadiest method
    "detect.epochs=6",
    "detect.finetune_epochs=3",
    "detect.steps_per_epoch=30",
]

MODEL_NAME = "fppc-demo"
#: Train frames the demo segments (evenly spread; the mask bank needs no more, and it keeps the demo fast).
SEGMENT_SAMPLE = 12

#: (split, scene, seed, frames, prevalence): seeds follow the playtest world's split rule.
CAPTURES = [
    ("train", "park", 11, 600, 0.03),
    ("val", "park", 100011, 300, 0.05),
    ("test", "park", 200011, 800, 0.01),
]


@dataclass
class DemoResult:
    project: Project
    steps: list[str] = field(default_factory=list)
    report: Path | None = None


def run_demo(root: Path, progress: Progress | None = None, serve: bool = True) -> DemoResult:
    from bugdet.augment.generate import write_samples
    from bugdet.cluster.pipeline import run_clustering
    from bugdet.cluster.summary import write_summary
    from bugdet.detect.pipeline import evaluate_project, train_project
    from bugdet.embed.pipeline import build_embedder, embed_masks
    from bugdet.export.package import default_version, export_package
    from bugdet.imageio import read_rgb
    from bugdet.ingest.ingester import ingest
    from bugdet.playtest.recorder import record
    from bugdet.playtest.session import PlaytestSpec
    from bugdet.registry import Registry
    from bugdet.segment.run import segment_project
    from bugdet.store.frames import iter_frames
    from bugdet.store.labels import current_labels, record_labels, sample_labels_from_ground_truth

    progress = progress or NullProgress()
    project = Project.open(root, DEMO_OVERRIDES, create=True)
    out = DemoResult(project)
    step = out.steps.append

    for split, scene, seed, frames, prevalence in CAPTURES:
        capture = project.stage_dir("captures") / f"{split}-{scene}-{seed}"
        if not (capture / "session.json").exists():
            record(PlaytestSpec(scene=scene, seed=seed, frames=frames, prevalence=prevalence, bugs=("fppc",)), capture,
                   progress=progress)
        report = ingest(project, [capture], progress=progress)
        step(f"record + ingest {capture.name}: {report.frames_added} new frames")

    seg = segment_project(project, backend="opencv", split="train", sample=SEGMENT_SAMPLE, progress=progress)
    n_train = sum(1 for _ in iter_frames(project.connect(), split="train"))
    step(f"segment (OpenCV grid): a sample of {seg.frames_considered} of the {n_train} train frames, spread evenly over "
         f"the capture (enough masks for the demo's bank; `bugdet segment --sample N` picks the same way): "
         f"{seg.masks_added} new masks from {seg.frames_segmented} frames")
    emb = embed_masks(project, build_embedder(project), progress=progress)
    step(f"embed: {emb.describe()}")
    clustering = run_clustering(project, progress=progress)
    step(f"cluster: {clustering.describe()}")
    summary = write_summary(project, clustering.run.id)
    step(f"cluster summary: {summary.html}")

    conn = project.connect()
    if not current_labels(conn):
        rows = sample_labels_from_ground_truth(list(iter_frames(conn, split="train")), ["fppc"], 10, 30, seed=0)
        record_labels(conn, rows, who="demo-tester", source="groundtruth-sample")
    step(f"label: {len(current_labels(conn))} frames judged by a simulated tester (10 FPPC, 30 good)")

    train_ids = [f.id for f in iter_frames(conn, split="train")]
    sheet = write_samples(project, "fppc", n=24, seed=0, frame_ids=train_ids[::4], progress=progress)
    step(f"augment: {sheet.pairs} FPPC pairs from {sheet.targets} targets and {sheet.sources} {sheet.source_origin} sources; "
         f"sheet {sheet.sheet}")

    trained = train_project(project, run_name="demo-pretrain-finetune", progress=progress)
    step(f"train: best epoch {trained.result.best_epoch}, val PR-AUC {trained.result.best_score:.3f}, "
         f"threshold {trained.result.thresholds['fppc']:.3f} -> {trained.checkpoint}")
    detector, evaluation = evaluate_project(project, trained.checkpoint, split="test")
    for bug, m in evaluation.metrics.items():
        step(f"evaluate on held-out test level ({m.positives} bugs in {m.positives + m.negatives} frames): "
             f"{bug} F1 {m.f1:.3f}, PR-AUC {m.pr_auc:.3f}, precision@50%recall {m.precision_at_recall_0_5:.3f}")

    calibration = [read_rgb(project.root / f.path) for f in list(iter_frames(conn, split="val"))[:8]]
    registry = Registry(project.stage_dir("registry"))
    version = default_version()
    exported = export_package(detector, calibration, registry.versions_dir(MODEL_NAME), name=MODEL_NAME, version=version,
                              thresholds=trained.result.thresholds,
                              training_data={"run": trained.run_dir.name}, metrics=evaluation.to_dict())
    step(f"export: {exported.path} (ONNX parity max abs diff {exported.parity.max_abs_diff:.2e})")
    champion = registry.promote(MODEL_NAME, version, reason="demo: newest trained detector")
    step(f"registry: {MODEL_NAME} {champion.version} is the champion the service serves ({registry.root})")

    if serve:
        from bugdet.harness.playtest import run_playtest
        from bugdet.harness.report import write_report
        from service.client import SpawnedServer

        with SpawnedServer(str(registry.root)) as server:
            run = run_playtest(server.address, scene="park", seed=200012, frames=240, bugs=("fppc",), prevalence=0.05)
        html, _ = write_report(run, project.stage_dir("playtest-report"))
        from bugdet.review.flags import import_playtest_flags  # flagged frames -> `bugdet review` (Detector flags)
        step(f"review: {import_playtest_flags(project, run).describe()}")
        out.report = html
        step(f"playtest: 240 frames streamed to the gRPC service; report {html}")
    return out
