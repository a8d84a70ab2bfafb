"""The nightly job's steps: each a thin call into a stage's library entry point.

Every step takes the run's :class:`StepContext` and returns a JSON-able dict of what it did,
which the runner persists; later steps read earlier steps' outputs from the state, never from
memory, so a resumed run sees exactly what the killed one recorded. Each stage is incremental on
its own (ingest dedupes by pixel hash, segmentation and embedding skip what is done, the trainer
resumes from its last checkpoint), so re-running an interrupted step redoes only what was lost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from bugdet.errors import InputError
from bugdet.nightly.config import NightlyConfig
from bugdet.nightly.state import RunState, read_json, write_json_atomic
from bugdet.progress import Progress
from bugdet.project import Project
from bugdet.registry import Registry


@dataclass
class StepContext:
    cfg: NightlyConfig
    project: Project
    registry: Registry
    state: RunState
    progress: Progress

    @property
    def state_dir(self) -> Path:
        return self.cfg.state_path

    @property
    def version(self) -> str:
        return self.state.run_id

    @property
    def train_run_name(self) -> str:
        return f"nightly-{self.state.run_id}"


# -- data ------------------------------------------------------------------------------------
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def expand_captures(paths: list[Path]) -> list[Path]:
    """Each configured path is a capture, or a drop folder whose entries (sorted) are captures."""
    from bugdet.ingest.session_format import SESSION_FILE

    out = []
    for path in paths:
        if not path.exists():
            raise InputError(f"capture {path}: no such file or directory")
        # A folder of frames is one capture; a folder holding sessions, videos or frame folders is a drop folder.
        is_drop_folder = path.is_dir() and not (path / SESSION_FILE).exists() and not any(
            p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir())
        if is_drop_folder:
            out.extend(p for p in sorted(path.iterdir()) if not p.name.startswith("."))
        else:
            out.append(path)
    return out


def watermarks(project: Project) -> dict[str, Any]:
    """Where each input the model depends on stands: frames, labels, a tester's keep/reject decisions."""
    import hashlib

    from bugdet.refine.decisions import ensure_decisions_schema
    from bugdet.store.labels import ensure_labels_schema

    conn = project.connect()
    try:
        ensure_labels_schema(conn)
        ensure_decisions_schema(conn)

        def one(sql: str) -> int:
            return int(conn.execute(sql).fetchone()[0])

        # Labels get a digest as well as counts: undoing a review verdict deletes its label row, and
        # SQLite may hand the next verdict the same id, so neither the newest id nor the count
        # alone is proof that nothing changed.
        digest = hashlib.sha256()
        for row in conn.execute("SELECT id, frame_id, bug_type, label, created_at FROM frame_labels ORDER BY id"):
            digest.update(repr(tuple(row)).encode())
        # Decisions derived by replaying a rule (rule_id set) are the job's own output, not new input.
        return {"frames": one("SELECT COALESCE(MAX(id), 0) FROM frames"),
                "frame_labels": one("SELECT COUNT(*) FROM frame_labels"),
                "decisions": one("SELECT COUNT(*) FROM decisions WHERE rule_id IS NULL"),
                "revoked_decisions": one("SELECT COUNT(*) FROM decisions WHERE rule_id IS NULL AND revoked_at IS NOT NULL"),
                "labels_digest": digest.hexdigest()}
    finally:
        conn.close()


def step_ingest(ctx: StepContext) -> dict[str, Any]:
    from bugdet.ingest.ingester import ingest

    before = watermarks(ctx.project)
    captures = expand_captures(ctx.cfg.capture_paths())
    report = ingest(ctx.project, captures, progress=ctx.progress) if captures else None
    sources = report.to_dict()["sources"] if report else []
    failed = [s for s in sources if s["status"] == "failed"]
    return {"captures": [str(c) for c in captures], "frames_added": report.frames_added if report else 0,
            "sources": [{k: s[k] for k in ("path", "status", "frames_added", "frames_existing", "problems")} for s in sources],
            "failed_captures": len(failed), "frames_before": before["frames"]}


def step_check(ctx: StepContext) -> dict[str, Any]:
    """Anything new since the last finished run? New frames, tester labels (e.g. confirmed
    flags from the review app) or keep/reject decisions all make a challenger worth training."""
    now = watermarks(ctx.project)
    last = read_json(ctx.state_dir / "watermarks.json", {}) or {}
    new = {k: v - int(last.get(k, 0)) for k, v in now.items() if isinstance(v, int)}
    changed = [k for k in now if now[k] != last.get(k)]
    return {"watermarks": now, "previous": last, "new": new, "changed": changed, "has_new_data": bool(changed)}


def step_segment(ctx: StepContext) -> dict[str, Any]:
    from bugdet.scale.dispatch import segment_project

    out = {}
    for split in ctx.cfg.segment.splits:
        report = segment_project(ctx.project, backend=ctx.cfg.segment.backend, split=split,
                                 limit=ctx.cfg.segment.max_frames, progress=ctx.progress)
        out[split] = {k: v for k, v in report.to_dict().items() if k != "problems"} | {"problems": report.problems[:5]}
    return out


def step_embed(ctx: StepContext) -> dict[str, Any]:
    from bugdet.embed.pipeline import build_embedder
    from bugdet.scale.dispatch import embed_masks

    report = embed_masks(ctx.project, build_embedder(ctx.project), progress=ctx.progress)
    return {"embedded": report.embedded, "already": report.already, "total": report.total,
            "model": report.model_label, "pretrained": report.pretrained, "summary": report.describe()}


def step_cluster(ctx: StepContext) -> dict[str, Any]:
    """Replay the testers' standing rules (text prompts, cluster verdicts) on the new masks, then
    re-cluster and rewrite the mask bank the objectives draw from."""
    from bugdet.cluster.pipeline import run_clustering
    from bugdet.refine.rules import replay_decisions

    replay = replay_decisions(ctx.project)
    result = run_clustering(ctx.project, progress=ctx.progress)
    return {"rules_replayed": len(replay.outcomes), "mask_decisions_derived": replay.derived,
            "replay": [o.describe() for o in replay.outcomes], "cluster_run": result.run.id,
            "rejected": result.rejected, "clusters": result.k, "bank_masks": sum(result.kept), "summary": result.describe()}


def step_labels(ctx: StepContext) -> dict[str, Any]:
    """Confirmed flags reach training as frame labels (the review app writes them with
    source="review"); this step records what the challenger will be trained with."""
    from bugdet.store.labels import current_labels, ensure_labels_schema

    conn = ctx.project.connect()
    try:
        ensure_labels_schema(conn)
        by_source = {r[0] or "unknown": r[1] for r in conn.execute("SELECT source, COUNT(*) FROM frame_labels GROUP BY source")}
        judged = current_labels(conn)
    finally:
        conn.close()
    positives: dict[str, int] = {}
    for judgement in judged.values():
        for bug_type, value in judgement.items():
            positives[bug_type] = positives.get(bug_type, 0) + int(value == 1)
    return {"frames_judged": len(judged), "label_rows_by_source": by_source, "positive_frames_by_type": positives}


def step_objectives(ctx: StepContext) -> dict[str, Any]:
    """The objectives are rebuilt from the new bank when training starts; here a sample sheet per
    bug type that has one (a built-in simulation, or exemplars when ``augment.exemplars`` is on)
    shows what they look like tonight."""
    from bugdet.augment.assemble import project_objectives
    from bugdet.augment.generate import write_samples
    from bugdet.detect.bug_types import effective_bug_types
    from bugdet.store.frames import iter_frames

    n = ctx.cfg.train.objective_samples
    types = [o.bug_type for o in project_objectives(ctx.project, effective_bug_types(ctx.project))] if n else []
    if n == 0 or not types:
        return {"sheets": {}, "bug_types": types}
    conn = ctx.project.connect()
    try:
        ids = [f.id for f in iter_frames(conn, split=ctx.project.config.detect.train_split)]
    finally:
        conn.close()
    sheets = {}
    for bug_type in types:
        report = write_samples(ctx.project, bug_type, n=n, seed=0, frame_ids=ids, progress=ctx.progress)
        sheets[bug_type] = {"sheet": str(report.sheet), "pairs": report.pairs, "targets": report.targets, "sources": report.sources}
    return {"sheets": sheets, "bug_types": types}


def step_train(ctx: StepContext) -> dict[str, Any]:
    """Train the challenger in ``models/nightly-<run>/``; a killed run resumes from ``last.pt``."""
    from bugdet.detect.model import load_checkpoint
    from bugdet.detect.pipeline import train_project

    run_dir = ctx.project.root / "models" / ctx.train_run_name
    resumed_from = 0
    if (run_dir / "last.pt").exists():
        resumed_from = len(load_checkpoint(run_dir / "last.pt")[1]["training"]["history"])
    trained = train_project(ctx.project, run_name=ctx.train_run_name, progress=ctx.progress)
    return {"checkpoint": str(trained.checkpoint), "run_dir": str(trained.run_dir), "resumed_from_epoch": resumed_from,
            "epochs_trained": len(trained.result.history), "best_epoch": trained.result.best_epoch,
            "best_val_pr_auc": trained.result.best_score, "thresholds": trained.result.thresholds,
            "history": trained.result.history}


def _calibration_frames(project: Project, n: int) -> list:
    """Validation frames first (what the parity check should cover), then any."""
    from bugdet.imageio import read_rgb
    from bugdet.store.frames import iter_frames

    conn = project.connect()
    try:
        rows = list(iter_frames(conn, split=project.config.detect.val_split))[:n]
        if len(rows) < n:
            rows += [r for r in iter_frames(conn) if r.split != project.config.detect.val_split][: n - len(rows)]
    finally:
        conn.close()
    return [read_rgb(project.root / r.path) for r in rows]


def step_export(ctx: StepContext) -> dict[str, Any]:
    """Export the challenger into the registry's versions (parity-checked, atomic). Publishing a
    version serves nothing: only the champion alias does."""
    from bugdet.detect.model import load_checkpoint
    from bugdet.export.package import export_package
    from service.model_package import PackageError, load_manifest

    package = ctx.registry.package_dir(ctx.cfg.model_name, ctx.version)
    if package.exists():  # exported before the run was killed: packages appear complete or not at all
        try:
            manifest = load_manifest(package, verify=True)
            return {"package": str(package), "reused": True, "parity": manifest.raw.get("parity", {})}
        except PackageError as exc:
            raise InputError(f"{package} exists but is damaged ({exc}); remove it to export again") from None
    checkpoint = Path(ctx.state.outputs("train")["checkpoint"])
    detector, payload = load_checkpoint(checkpoint)
    cfg = ctx.project.config.export
    result = export_package(
        detector, _calibration_frames(ctx.project, cfg.calibration_frames), ctx.registry.versions_dir(ctx.cfg.model_name),
        name=ctx.cfg.model_name, version=ctx.version, thresholds=payload.get("thresholds"),
        training_data={"run": ctx.train_run_name, **(payload.get("data") or {})},
        metrics={"best_val_pr_auc": payload.get("best_val_pr_auc"), "best_epoch": payload.get("best_epoch")},
        tolerance=cfg.tolerance, opset=cfg.opset, exporter=cfg.exporter,
    )
    return {"package": str(result.path), "reused": False, "parity": result.parity.as_dict(), "exporter": result.exporter}


def step_evaluate(ctx: StepContext) -> dict[str, Any]:
    from bugdet.nightly.evaluation import eval_frames, freeze_eval_set, score_package

    frozen = freeze_eval_set(ctx.project, ctx.cfg.eval, ctx.state_dir)
    frames = eval_frames(ctx.project, frozen)
    challenger = score_package(ctx.project, Path(ctx.state.outputs("export")["package"]), frames)
    champion = ctx.registry.champion(ctx.cfg.model_name)
    champion_metrics = score_package(ctx.project, champion.path, frames) if champion else None
    return {"eval_set": {"path": str(frozen.path), "frames": len(frames), "frozen_at": frozen.frozen_at,
                         "definition": frozen.definition},
            "challenger": {"version": ctx.version, "metrics": challenger},
            "champion": {"version": champion.version, "metrics": champion_metrics} if champion else None}


def step_decide(ctx: StepContext) -> dict[str, Any]:
    from bugdet.nightly.decision import decide

    evaluation = ctx.state.outputs("evaluate")
    champion = evaluation.get("champion")
    decision = decide(evaluation["challenger"]["metrics"], champion["metrics"] if champion else None, ctx.cfg.promotion)
    return decision.to_dict()


def step_publish(ctx: StepContext) -> dict[str, Any]:
    """Switch the champion alias to the challenger (checksums verified first) when it won."""
    decision = ctx.state.outputs("decide")
    before = ctx.registry.champion(ctx.cfg.model_name)
    if not decision["promote"]:
        return {"promoted": False, "champion": before.version if before else None}
    champion = ctx.registry.promote(ctx.cfg.model_name, ctx.version, reason=f"nightly {ctx.state.run_id}: {decision['reason']}",
                                    details={"run": ctx.state.run_id, "metric": decision["metric"],
                                             "challenger_mean": decision["challenger_mean"],
                                             "champion_mean": decision["champion_mean"]})
    return {"promoted": True, "champion": champion.version, "previous": before.version if before else None,
            "alias": str(ctx.registry.model_dir(ctx.cfg.model_name) / "champion.json")}


def finish_watermarks(ctx: StepContext) -> None:
    """Remember what this run saw, so the next one trains only when something is new."""
    write_json_atomic(ctx.state_dir / "watermarks.json", ctx.state.outputs("check")["watermarks"])


Step = Callable[[StepContext], dict[str, Any]]

#: The run, in order. Steps after ``check`` are skipped when nothing is new.
STEPS: list[tuple[str, Step]] = [
    ("ingest", step_ingest),
    ("check", step_check),
    ("segment", step_segment),
    ("embed", step_embed),
    ("cluster", step_cluster),
    ("labels", step_labels),
    ("objectives", step_objectives),
    ("train", step_train),
    ("export", step_export),
    ("evaluate", step_evaluate),
    ("decide", step_decide),
    ("publish", step_publish),
]


def timed(step: Step, ctx: StepContext) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    outputs = step(ctx)
    return outputs, time.perf_counter() - started
