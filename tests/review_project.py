"""A small real review project, built once per test process: a recorded park playtest, segmented,
embedded with an unpretrained ViT-S-32 and clustered, plus the flags an exported detector package
raised while a second playtest streamed through the gRPC detection service."""

from __future__ import annotations

from pathlib import Path

from bugdet.project import Project

OVERRIDES = [
    "name=review-test",
    "filter.embed.model=ViT-S-32",
    "filter.embed.pretrained=none",
    "filter.embed.backend=torch",
    "filter.cluster.k=4",
    "filter.cluster.dedupe_similarity=null",
    "segment.backend=opencv",
    "segment.max_masks_per_frame=6",
    "segment.engine.enabled=false",
]
#: The test detector (random weights, not trained on the playtest world) at an operating point that
#: flags every frame for missing_texture and never for black_hole: a short playtest then yields one
#: flag per frame, with the detector's real scores and localisation boxes.
FLAG_THRESHOLDS = {"missing_texture": 0.0, "black_hole": 1.0}


_BUILT: dict[str, tuple[Path, object]] = {}


def shared_review_project(tmp_path_factory, name: str) -> tuple[Project, object]:
    """A private copy of the review project (built once per test process) and its playtest run.

    Building costs seconds (CLIP model, detector training), so the API and browser test modules
    share one build; each gets its own copy because both record decisions in it.
    """
    import shutil

    if "project" not in _BUILT:
        base = tmp_path_factory.mktemp("review-build")
        project, run = build_review_project(base)
        _BUILT["project"] = (project.root, run)
    root, run = _BUILT["project"]
    copy = tmp_path_factory.mktemp(name) / "project"
    shutil.copytree(root, copy)
    return Project.open(copy), run


def build_review_project(root: Path, frames: int = 3, playtest_frames: int = 5) -> tuple[Project, object]:
    from bugdet.cluster.pipeline import run_clustering
    from bugdet.embed.pipeline import build_embedder, embed_masks
    from bugdet.ingest.ingester import ingest
    from bugdet.playtest.recorder import record
    from bugdet.playtest.session import PlaytestSpec
    from bugdet.review.flags import import_playtest_flags
    from bugdet.segment.run import segment_project

    session = root / "session"
    record(PlaytestSpec(scene="park", seed=3, frames=frames, width=160, height=120), session)
    project = Project.open(root / "project", OVERRIDES, create=True)
    ingest(project, [session])
    segment_project(project)
    embed_masks(project, build_embedder(project))
    run_clustering(project)
    run = detector_playtest(root / "models", playtest_frames)
    import_playtest_flags(project, run)
    return project, run


def detector_playtest(models_dir: Path, frames: int):
    """A real playtest: the playtest world streams frames to the gRPC service serving an exported
    detector package (the training stage's architecture, random weights: training it on OpenCV
    scenes would cost seconds and change nothing the review tests look at)."""
    from bugdet.harness.playtest import run_playtest
    from bugdet.export.package import export_package
    import torch

    from test_export import scene_frames, small_detector
    from test_service import running

    torch.manual_seed(0)
    detector = small_detector().eval()  # untrained: the operating point below decides the flags anyway
    calibration, _ = scene_frames(6, seed=99)
    export_package(detector, calibration, models_dir, name="detector", version="1",
                   thresholds=FLAG_THRESHOLDS, exporter="torchscript")
    with running(models_dir) as (_, address):
        return run_playtest(address, scene="park", seed=5, frames=frames, width=160, height=120,
                            bugs=("missing_texture",), prevalence=0.5)
