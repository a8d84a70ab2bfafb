"""The end-to-end demo: every pipeline stage, on captures of the built-in playtest world, judged.

It is the README's main job and the smoke test a studio engineer runs first, so it uses only
what ships with bugdet (no weights, no downloads; CLIP is an explicitly unpretrained ViT-S-32)
and leaves a project directory to look at. Each step is the same library call the matching
``bugdet`` command makes; re-running the demo reuses what is already there.

  record   train (the unlabeled pool), val and a held-out test level of the park scene, with FPPC
           and missing-texture bugs; the test level's seed and variant follow the playtest
           world's split rule, so training never sees it
  ingest   into the project's manifest
  segment  a sample of 12 train frames spread over the capture, with the default OpenCV grid backend
  embed    mask crops with CLIP, cluster them in FAISS, write the mask bank and its summary
  label    a simulated tester labels LABELS_PER_TYPE frames of each bug type and GOOD_LABELS good ones
  augment  a sample sheet per objective (what the self-supervised pairs look like)
  train    the detector from scratch: objective pre-training (built-in simulations mixed with
           pastes of the labeled bug frames), then fine-tuning on the labels; thresholds
           calibrated on val
  evaluate on the held-out test level
  export   an ONNX model package with a parity check, into the versioned model registry
  promote  the package to champion: what the service serves (the nightly job's last step)
  playtest the playtest world streams frames of another test-split level to the gRPC service and
           writes a report; the frames it flagged go to the review queue (``bugdet review -p DIR``)

The demo then judges itself against :data:`BARS` (:func:`judge`) and writes ``summary.json``:
a detector that finds nothing is reported as a failure, never as a finished demo.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

from bugdet.detect.metrics import DetectionMetrics
from bugdet.progress import NullProgress, Progress
from bugdet.project import Project

BUG_TYPES = ("fppc", "missing_texture")
#: The simulated tester's budget: this many bug frames of each type, and this many good frames.
LABELS_PER_TYPE = 10
GOOD_LABELS = 30
#: Bug prevalence of the validation and held-out levels, and the one thresholds are calibrated
#: for. Deployment sees ~1% or less; at 1% a level short enough for a five-minute demo holds too
#: few bugs to measure F1 (the old demo's test level had 8 bug frames in 800).
LEVEL_PREVALENCE = 0.10

DEMO_OVERRIDES = [
    "name=bugdet-demo",
    "filter.embed.model=ViT-S-32",
    "filter.embed.pretrained=none",  # no weights can be downloaded: an explicitly unpretrained CLIP
    "filter.embed.backend=torch",
    "filter.cluster.k=8",
    # Random-init CLIP maps every crop to nearly the same direction, so cosine "near duplicates"
    # would swallow almost the whole bank; deduplication needs real (pretrained) embeddings.
    "filter.cluster.dedupe_similarity=null",
    f"detect.bug_types=[{','.join(BUG_TYPES)}]",
    # two branches in one model: the gun's corner at full resolution for FPPC, a narrow whole-frame
    # CNN at 144x192 for missing textures (which show anywhere), so training fits the demo's minutes
    "detect.model=compact_cnn_lite_viewmodel",
    # the tester's labeled bug frames also become paste sources for the objectives, so pre-training
    # sees positives that look like this world's own bugs (docs/own-game.md)
    "augment.exemplars=mix",
    "detect.mode=pretrain_finetune",  # the quality bench's best and steadiest method
    f"detect.prevalence={LEVEL_PREVALENCE}",
    "detect.epochs=6",
    "detect.finetune_epochs=3",
    "detect.steps_per_epoch=25",
    "detect.patience=6",  # pre-training's validation score is noisy; the best epoch is kept either way
    "detect.seed=0",
]

MODEL_NAME = "bugdet-demo"
#: Train frames the demo segments (evenly spread; the mask bank needs no more, and it keeps the demo fast).
SEGMENT_SAMPLE = 12


@dataclass(frozen=True)
class Level:
    """One recorded level of the playtest world; ``split`` follows from the seed (playtest/split.py)."""

    split: str
    scene: str
    seed: int
    frames: int
    prevalence: float
    weapon: str | None = None  # drawn from the seed when None

    @property
    def name(self) -> str:
        return f"{self.split}-{self.scene}-{self.seed}" + (f"-{self.weapon}" if self.weapon else "")


#: Train and val are several short sessions that cycle the weapons, so the viewmodel the held-out
#: level happens to draw was seen in training (with one train session, a weapon it never held
#: decided the FPPC result, as in the quality bench). The held-out level draws its weapon and
#: scene variant from its seed, like any test session.
CAPTURES = (
    # the unlabeled pool; the tester's labels come from it too
    Level("train", "park", 11, 200, LEVEL_PREVALENCE, "rifle"),
    Level("train", "park", 12, 200, LEVEL_PREVALENCE, "shotgun"),
    Level("train", "park", 13, 200, LEVEL_PREVALENCE, "pistol"),
    # val picks the epoch and the thresholds: with 10 FPPC frames in 300, all of them hiding a sliver
    # of the gun, it chose a threshold that missed the test level's plain ones
    Level("val", "park", 100011, 150, LEVEL_PREVALENCE, "pistol"),
    Level("val", "park", 100012, 150, LEVEL_PREVALENCE, "rifle"),
    Level("val", "park", 100013, 150, LEVEL_PREVALENCE, "shotgun"),
    Level("test", "park", 200011, 800, LEVEL_PREVALENCE),
)
#: The playtest against the served champion: another held-out (test-split) level.
PLAYTEST = Level("test", "park", 200012, 240, LEVEL_PREVALENCE)


@dataclass(frozen=True)
class Bars:
    """What the demo must show to count as working (issue 18)."""

    heldout_f1: float = 0.60
    required_type: str = "fppc"  # must reach heldout_f1 ...
    other_types: int = 1  # ... and so must at least this many other bug types
    playtest_true_flags: int = 3  # frames the served champion flags that truly hold a bug ...
    # ... and the share of its flags that do: a detector that flags nearly every frame also flags
    # three buggy ones, and is of no use to the tester who reviews its flags
    playtest_precision: float = 0.5


BARS = Bars()


@dataclass
class Verdict:
    name: str
    bar: str  # what was required, in words
    measured: str  # what the run got, in words
    passed: bool


@dataclass
class PlaytestOutcome:
    frames: int
    bug_frames: int  # frames that truly hold a bug of a type the model detects
    flagged: int  # frames the service flagged
    flagged_true: int  # of which truly hold a bug
    queued: int  # flagged frames now in the project's review queue

    @classmethod
    def from_run(cls, run: Any, queued: int) -> "PlaytestOutcome":
        """From a :class:`bugdet.harness.playtest.PlaytestRun`; ``queued`` from its flag import."""
        types = run.evaluated_types()
        frames = [f for f in run.frames if not f.error]
        truly = [any(f.truth.get(t, False) for t in types) for f in frames]
        return cls(frames=len(run.frames), bug_frames=sum(truly), flagged=sum(f.is_flagged for f in frames),
                   flagged_true=sum(f.is_flagged and t for f, t in zip(frames, truly)), queued=queued)


def judge(heldout: Mapping[str, DetectionMetrics], playtest: PlaytestOutcome | None, bars: Bars = BARS) -> list[Verdict]:
    """Compare the demo's results with ``bars``; a missing result fails its bar."""
    def f1_text(name: str) -> str:
        m = heldout.get(name)
        return f"{name} F1 {m.f1:.2f} ({m.positives} bug frames)" if m else f"{name}: no held-out bug frames to score"

    required = heldout.get(bars.required_type)
    others = sorted((n for n in heldout if n != bars.required_type), key=lambda n: -heldout[n].f1)
    good_others = [n for n in others if heldout[n].f1 >= bars.heldout_f1]
    verdicts = [
        Verdict(f"heldout_{bars.required_type}", f"held-out F1 >= {bars.heldout_f1:.2f} for {bars.required_type}",
                f1_text(bars.required_type), required is not None and required.f1 >= bars.heldout_f1),
        Verdict("heldout_other", f"held-out F1 >= {bars.heldout_f1:.2f} for {bars.other_types} other bug type(s)",
                ", ".join(f1_text(n) for n in others) or "no other bug type scored", len(good_others) >= bars.other_types),
    ]
    if playtest is None:
        verdicts.append(Verdict("playtest", f">= {bars.playtest_true_flags} truly buggy frames flagged in the playtest",
                                "no playtest was run", False))
    else:
        precision = playtest.flagged_true / playtest.flagged if playtest.flagged else 0.0
        verdicts.append(Verdict(
            "playtest", f"the served champion flags >= {bars.playtest_true_flags} truly buggy frames in the playtest, at "
            f">= {bars.playtest_precision:.0%} of its flags, all queued for review",
            f"{playtest.flagged_true} of {playtest.flagged} flagged frames truly buggy ({playtest.bug_frames} buggy of "
            f"{playtest.frames} streamed); {playtest.queued} in the review queue",
            playtest.flagged_true >= bars.playtest_true_flags and precision >= bars.playtest_precision
            and playtest.queued >= playtest.flagged))
    return verdicts


@dataclass
class Step:
    name: str
    text: str
    seconds: float


@dataclass
class DemoResult:
    project: Project
    steps: list[Step] = field(default_factory=list)
    heldout: dict[str, DetectionMetrics] = field(default_factory=dict)
    playtest: PlaytestOutcome | None = None
    verdicts: list[Verdict] = field(default_factory=list)
    report: Path | None = None
    summary_path: Path | None = None
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.verdicts) and all(v.passed for v in self.verdicts)

    def summary(self) -> dict[str, Any]:
        """What ``summary.json`` holds: the issue's keys first, then bars, levels and step timings."""
        return {
            "seconds": round(self.seconds, 1),
            "heldout": {name: {"f1": m.f1, "pr_auc": m.pr_auc, "precision_at_recall_0_5": m.precision_at_recall_0_5,
                               "threshold": m.threshold, "bug_frames": m.positives, "frames": m.positives + m.negatives,
                               "tp": m.tp, "fp": m.fp, "fn": m.fn}
                        for name, m in self.heldout.items()},
            "playtest": asdict(self.playtest) if self.playtest else None,
            "passed": self.passed,
            "bars": [asdict(v) for v in self.verdicts],
            "report": str(self.report) if self.report else None,
            **self.details,
            "steps": [{"name": s.name, "seconds": round(s.seconds, 1), "text": s.text} for s in self.steps],
        }

    def write_summary(self) -> Path:
        path = self.project.root / "summary.json"
        path.write_text(json.dumps(self.summary(), indent=1))
        self.summary_path = path
        return path


def evaluate_heldout(project: Project, checkpoint: Path) -> tuple[Any, Any]:
    """The detector at ``checkpoint`` and its metrics on the held-out level: the test split's
    frames with ground truth, less frames a playtest flagged (the review import files them under
    the test split too, and a re-run must score the same level as the first run)."""
    from bugdet.detect.evaluate import evaluate_frames
    from bugdet.detect.frames import frames_with_ground_truth
    from bugdet.detect.model import load_checkpoint
    from bugdet.device import resolve_torch_device
    from bugdet.review.flags import list_flags

    detector, payload = load_checkpoint(checkpoint)
    flagged = {f.frame_id for f in list_flags(project.connect())}
    frames = [f for f in frames_with_ground_truth(project, detector.bug_types, detector.input_size, split="test")
              if f.frame_id not in flagged]
    device = resolve_torch_device(project.config.device)
    detector.to(device)
    return detector, evaluate_frames(detector, frames, payload.get("thresholds", {}), device=device)


StepListener = Callable[[str, Step | None], None]  # (step name, None at its start / the finished Step)


def run_demo(root: Path, progress: Progress | None = None, serve: bool = True,
             on_step: StepListener | None = None) -> DemoResult:
    """Run every stage into the project at ``root``, judge the outcome and write ``summary.json``."""
    from bugdet.augment.generate import write_samples
    from bugdet.cluster.pipeline import run_clustering
    from bugdet.cluster.summary import write_summary
    from bugdet.detect.pipeline import train_project
    from bugdet.embed.pipeline import build_embedder, embed_masks
    from bugdet.export.package import default_version, export_package
    from bugdet.imageio import read_rgb
    from bugdet.ingest.ingester import ingest
    from bugdet.playtest.recorder import record_many
    from bugdet.playtest.session import PlaytestSpec
    from bugdet.registry import Registry
    from bugdet.segment.run import segment_project
    from bugdet.store.frames import iter_frames
    from bugdet.store.labels import current_labels, record_labels, sample_labels_from_ground_truth

    started = time.monotonic()
    progress = progress or NullProgress()
    project = Project.open(root, DEMO_OVERRIDES, create=True)
    out = DemoResult(project)

    @contextmanager
    def step(name: str) -> Iterator[list[str]]:
        """Time one step; the block appends the line that says what it did."""
        if on_step:
            on_step(name, None)
        t0, text = time.monotonic(), []
        yield text
        done = Step(name, "; ".join(text), time.monotonic() - t0)
        out.steps.append(done)
        if on_step:
            on_step(name, done)

    with step("record + ingest") as said:
        captures = [(level, project.stage_dir("captures") / level.name) for level in CAPTURES]
        # each session in a fresh process (record_many): Panda3D carries state from one session to
        # the next within a process, which made fresh demo runs differ by a few pixels and results
        record_many([(PlaytestSpec(scene=level.scene, seed=level.seed, frames=level.frames, prevalence=level.prevalence,
                                   bugs=BUG_TYPES, weapon=level.weapon), capture)
                     for level, capture in captures if not (capture / "session.json").exists()],
                    workers=2, progress=progress)
        for level, capture in captures:
            report = ingest(project, [capture], progress=progress)
            said.append(f"{capture.name}: {report.frames_added} new frames")

    conn = project.connect()
    with step("segment + embed + cluster") as said:
        seg = segment_project(project, backend="opencv", split="train", sample=SEGMENT_SAMPLE, progress=progress)
        n_train = sum(1 for _ in iter_frames(conn, split="train"))
        said.append(f"segment (OpenCV grid): a sample of {seg.frames_considered} of the {n_train} train frames, spread "
                    f"evenly over the captures (`bugdet segment --sample N` picks the same way): "
                    f"{seg.masks_added} new masks from {seg.frames_segmented} frames")
        emb = embed_masks(project, build_embedder(project), progress=progress)
        said.append(f"embed: {emb.describe()}")
        clustering = run_clustering(project, progress=progress)
        said.append(f"cluster: {clustering.describe()}; summary {write_summary(project, clustering.run.id).html}")

    with step("label") as said:
        if not current_labels(conn):
            rows = sample_labels_from_ground_truth(list(iter_frames(conn, split="train")), list(BUG_TYPES),
                                                   LABELS_PER_TYPE, GOOD_LABELS, seed=0)
            record_labels(conn, rows, who="demo-tester", source="groundtruth-sample")
        said.append(f"{len(current_labels(conn))} frames judged by a simulated tester "
                    f"({LABELS_PER_TYPE} per bug type, {GOOD_LABELS} good)")

    with step("augment") as said:
        train_ids = [f.id for f in iter_frames(conn, split="train")]
        for bug in BUG_TYPES:
            sheet = write_samples(project, bug, n=12, seed=0, frame_ids=train_ids[::4], progress=progress)
            said.append(f"{bug}: {sheet.pairs} pairs, sheet {sheet.sheet}")

    with step("train") as said:
        trained = train_project(project, run_name="demo-pretrain-finetune", progress=progress)
        r = trained.result
        said.append(f"from scratch, best epoch {r.best_epoch}, val PR-AUC {r.best_score:.3f}, thresholds "
                    + ", ".join(f"{k} {v:.3f}" for k, v in r.thresholds.items()) + f" -> {trained.checkpoint}")

    with step("evaluate") as said:
        detector, evaluation = evaluate_heldout(project, trained.checkpoint)
        out.heldout = dict(evaluation.metrics)
        for bug, m in evaluation.metrics.items():
            said.append(f"held-out {bug}: F1 {m.f1:.2f}, PR-AUC {m.pr_auc:.2f} ({m.positives} bug frames in "
                        f"{m.positives + m.negatives})")

    with step("export + promote") as said:
        calibration = [read_rgb(project.root / f.path) for f in list(iter_frames(conn, split="val"))[:8]]
        registry = Registry(project.stage_dir("registry"))
        version = default_version()
        exported = export_package(detector, calibration, registry.versions_dir(MODEL_NAME), name=MODEL_NAME, version=version,
                                  thresholds=trained.result.thresholds,
                                  training_data={"run": trained.run_dir.name}, metrics=evaluation.to_dict())
        champion = registry.promote(MODEL_NAME, version, reason="demo: newest trained detector")
        said.append(f"{exported.path} (ONNX parity max abs diff {exported.parity.max_abs_diff:.2e}); "
                    f"{MODEL_NAME} {champion.version} is the champion the service serves")

    if serve:
        with step("playtest") as said:
            from bugdet.harness.playtest import run_playtest
            from bugdet.harness.report import write_report
            from bugdet.review.flags import import_playtest_flags, list_flags  # flagged frames -> `bugdet review`
            from service.client import SpawnedServer

            with SpawnedServer(str(registry.root)) as server:
                run = run_playtest(server.address, scene=PLAYTEST.scene, seed=PLAYTEST.seed, frames=PLAYTEST.frames,
                                   bugs=BUG_TYPES, prevalence=PLAYTEST.prevalence)
            out.report, _ = write_report(run, project.stage_dir("playtest-report"))
            imported = import_playtest_flags(project, run)
            queued = {f.frame_index for f in list_flags(conn) if f.playtest == run.session_id and f.model == run.model}
            out.playtest = PlaytestOutcome.from_run(run, queued=len(queued))
            said.append(f"{PLAYTEST.frames} frames streamed to the gRPC service; report {out.report}")
            said.append(f"review queue: {imported.describe()}")

    out.verdicts = judge(out.heldout, out.playtest)
    out.seconds = time.monotonic() - started
    out.details = {
        "levels": {
            **{level.name: asdict(level) for level in CAPTURES},
            "playtest": asdict(PLAYTEST),
        },
        "training": {"bug_types": list(BUG_TYPES), "labels_per_type": LABELS_PER_TYPE, "good_labels": GOOD_LABELS,
                     "overrides": [o for o in DEMO_OVERRIDES if o.startswith("detect.")],
                     "best_val_pr_auc": trained.result.best_score, "best_epoch": trained.result.best_epoch},
    }
    out.write_summary()
    return out
