"""``bugdet nightly`` end to end on small real playtest captures.

A "site" is what a studio would have: a drop folder the capture farm fills, a project, a model
registry and the service watching it. The first night (a module fixture, shared by copying its
directory) ingests three captures, a tester confirms a few flags, and the run trains, exports,
evaluates on the frozen test set and publishes the first champion, which the in-process gRPC
server then serves. Later tests copy that site and check what happens on the following nights:
nothing new, a concurrent run, a challenger made worse on purpose, a damaged package, a run
killed mid-training. The CLIP embedder is an explicitly unpretrained ViT-S-32 (no weights can be
downloaded); the detector a tiny compact CNN trained for a few steps.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from bugdet.detect.model import load_checkpoint, save_checkpoint
from bugdet.nightly.config import NightlyConfig, load_nightly_config
from bugdet.nightly.runner import NightlyFailed, NightlyResult, abandon_unfinished, run_nightly
from bugdet.nightly.state import NightlyBusy, RunState, exclusive_lock, unfinished_run
from bugdet.nightly.steps import STEPS
from bugdet.project import Project
from bugdet.registry import Registry
from bugdet.store.frames import iter_frames
from bugdet.store.labels import record_labels, sample_labels_from_ground_truth
from service.config import ServerConfig
from service.model_package import MODEL_FILE
from service.registry import ModelRegistry
from service.server import DetectionServer

TINY_DETECTOR = {"backbone": {"type": "compact_cnn", "widths": [8, 12, 16, 16, 24]}, "input_size": [60, 80], "pool_sharpness": 4.0}

#: Small and fast, but every stage real: grid segmentation, CLIP (unpretrained), FAISS, training, ONNX.
PROJECT_SETTINGS = [
    "filter.embed.model=ViT-S-32", "filter.embed.pretrained=none", "filter.embed.backend=torch",
    "filter.cluster.k=3", "filter.cluster.dedupe_similarity=null",
    "segment.engine.enabled=false", "segment.max_masks_per_frame=4",
    "ingest.stride=2", "detect.mode=multitask", "detect.batch_size=8", "detect.max_targets=16", "detect.patience=10",
    "export.exporter=torchscript", "export.calibration_frames=4",
]

NIGHTLY_YAML = """\
project: proj
registry: registry
captures: [drop]
segment: {{max_frames: 4}}
train: {{epochs: {epochs}, steps_per_epoch: 3, objective_samples: 2}}
promotion: {{margin: 0.02, tolerance: 0.02}}
"""

#: (name, split seed, frames): the playtest world's seed ranges give the split (train / val / test).
CAPTURES = [("a-train", 3, 100), ("b-val", 100003, 80), ("c-test", 200003, 80)]
NIGHT2 = ("d-train-night2", 7, 100)


def record_capture(root: Path, name: str, seed: int, frames: int) -> Path:
    from bugdet.playtest.recorder import record
    from bugdet.playtest.session import PlaytestSpec

    spec = PlaytestSpec(scene="park", seed=seed, frames=frames, width=160, height=120, prevalence=0.3, bugs=("fppc",))
    record(spec, root / name)
    return root / name


@pytest.fixture(scope="module")
def captures(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("captures")
    return {name: record_capture(root, name, seed, frames) for name, seed, frames in CAPTURES}


@pytest.fixture(scope="module")
def night2(tmp_path_factory) -> Path:
    """Tomorrow's capture: more training frames of the park."""
    return record_capture(tmp_path_factory.mktemp("night2"), *NIGHT2)


def make_site(root: Path, captures: dict[str, Path], names: list[str], epochs: int = 2) -> NightlyConfig:
    (root / "drop").mkdir(parents=True)
    for name in names:
        (root / "drop" / name).symlink_to(captures[name])
    (root / "tiny.json").write_text(json.dumps(TINY_DETECTOR))
    Project.open(root / "proj", PROJECT_SETTINGS + [f"detect.model={root / 'tiny.json'}"], create=True)
    (root / "nightly.yaml").write_text(NIGHTLY_YAML.format(epochs=epochs))
    return load_nightly_config(root / "nightly.yaml")


def copy_site(src: Path, dst: Path, epochs: int | None = None) -> NightlyConfig:
    shutil.copytree(src, dst, symlinks=True)
    if epochs is not None:
        (dst / "nightly.yaml").write_text(NIGHTLY_YAML.format(epochs=epochs))
    # The detector config path is absolute in bugdet.yaml; point it at the copy's.
    yaml_path = dst / "proj" / "bugdet.yaml"
    yaml_path.write_text(yaml_path.read_text().replace(str(src / "tiny.json"), str(dst / "tiny.json")))
    return load_nightly_config(dst / "nightly.yaml")


def add_capture(site: Path, capture: Path) -> None:
    (site / "drop" / capture.name).symlink_to(capture)


def review_confirms_flags(cfg: NightlyConfig) -> int:
    """A tester's verdicts from the review app: a few FPPC frames confirmed, some frames judged good."""
    project = Project.open(cfg.project_dir)
    conn = project.connect()
    try:
        rows = sample_labels_from_ground_truth(list(iter_frames(conn, split="train")), ["fppc"], 5, 10, seed=0)
        return record_labels(conn, rows, who="tester", source="review")
    finally:
        conn.close()


def served_version(models_dir: Path) -> list[str]:
    return ModelRegistry(models_dir, device="cpu").scan().serving


@dataclass
class FirstNight:
    site: Path
    cfg: NightlyConfig
    result: NightlyResult
    served_by_server: str
    seconds: float


@pytest.fixture(scope="module")
def first_night(tmp_path_factory, captures) -> FirstNight:
    torch.manual_seed(0)
    site = tmp_path_factory.mktemp("site")
    cfg = make_site(site, captures, ["a-train", "b-val", "c-test"])
    server = DetectionServer(ServerConfig(models_dir=cfg.registry_dir, port=0, poll_s=0.2))
    server.start()
    try:
        started = time.perf_counter()
        run_nightly(cfg, stop_after="ingest")  # the captures land; testers review during the day
        assert review_confirms_flags(cfg) > 0
        result = run_nightly(cfg)
        seconds = time.perf_counter() - started
        assert server.wait_until_serving(120), "the service never picked up the published champion"
        served = server.registry.get("detector").version
    finally:
        server.stop(grace=0.5)
    return FirstNight(site, cfg, result, served, seconds)


def test_first_night_trains_publishes_and_the_service_serves_it(first_night: FirstNight) -> None:
    result, cfg = first_night.result, first_night.cfg
    state = result.state
    assert (result.outcome, state.status, result.resumed, state.attempts) == ("promoted", "finished", True, 2)
    assert all(state.steps[name]["status"] == "done" for name, _ in STEPS)

    registry = Registry(cfg.registry_dir)
    champion = registry.champion("detector")
    assert champion.version == state.run_id == first_night.served_by_server
    assert [e["version"] for e in registry.history("detector")] == [state.run_id]

    report = json.loads(result.report_json.read_text())
    assert report["outcome"] == "promoted" and report["publish"]["promoted"] is True
    conn = Project.open(cfg.project_dir).connect()
    frames = {split: len(list(iter_frames(conn, split=split))) for split in ("train", "val", "test")}
    assert report["data"]["frames_added"] == sum(frames.values()) and min(frames.values()) >= 40  # stride 2
    assert report["data"]["labels"]["label_rows_by_source"] == {"review": 15}
    assert report["data"]["new_since_last_run"]["frame_labels"] == 15
    assert report["data"]["masks_embedded"] > 0 and report["data"]["mask_bank"] > 0
    assert report["training"]["epochs_trained"] == 2 and report["parity"]["passed"]
    evaluation = report["evaluation"]
    assert evaluation["eval_set"]["frames"] == frames["test"] and evaluation["champion"] is None
    fppc = evaluation["challenger"]["metrics"]["fppc"]
    assert fppc["positives"] > 0 and fppc["negatives"] > 0 and fppc["positives"] + fppc["negatives"] == frames["test"]
    assert set(report["timings_s"]) == {name for name, _ in STEPS}
    frozen = json.loads((cfg.state_path / "eval_set.json").read_text())
    assert len(frozen["sha256"]) == frames["test"]
    page = result.report_html.read_text()
    assert "challenger promoted" in page and "data:image/png;base64," in page  # objective sample sheet inline
    assert (cfg.state_path / "latest.json").read_text() == result.report_json.read_text()


def test_second_night_without_new_data_does_nothing(first_night: FirstNight, tmp_path: Path) -> None:
    cfg = copy_site(first_night.site, tmp_path / "site")
    registry = Registry(cfg.registry_dir)
    before = registry.champion("detector").version
    models_before = sorted(p.name for p in (cfg.project_dir / "models").iterdir())
    result = run_nightly(cfg)
    assert result.outcome == "no-new-data" and not result.resumed
    assert result.state.outputs("ingest")["frames_added"] == 0
    assert {s["status"] for s in result.state.outputs("ingest")["sources"]} == {"already-ingested"}
    assert [name for name, step in result.state.steps.items() if step["status"] == "skipped"] == [n for n, _ in STEPS[2:]]
    assert sorted(p.name for p in (cfg.project_dir / "models").iterdir()) == models_before  # nothing trained
    assert [v.version for v in registry.versions("detector")] == [before]  # nothing exported
    assert registry.champion("detector").version == before
    assert "nothing new" in result.report_html.read_text()


def test_a_second_run_is_locked_out(first_night: FirstNight) -> None:
    cfg = first_night.cfg
    runs_before = sorted((cfg.state_path / "runs").iterdir())
    with exclusive_lock(cfg.state_path):
        with pytest.raises(NightlyBusy, match=f"pid {os.getpid()}"):
            run_nightly(cfg)
        cli = subprocess.run([sys.executable, "-m", "bugdet", "nightly", "--config", str(first_night.site / "nightly.yaml")],
                             capture_output=True, text=True, timeout=120)
    assert cli.returncode != 0
    lines = cli.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: another nightly run is in progress (pid {os.getpid()} since ")
    assert sorted((cfg.state_path / "runs").iterdir()) == runs_before  # the locked-out run created nothing


def test_a_challenger_made_worse_on_purpose_is_not_promoted(first_night: FirstNight, tmp_path: Path, night2: Path) -> None:
    cfg = copy_site(first_night.site, tmp_path / "site")
    champion = Registry(cfg.registry_dir).champion("detector").version
    # During the day a tester also added a text-prompt rule; tonight it must be replayed on the new masks.
    from bugdet.embed.pipeline import build_embedder
    from bugdet.refine.rules import add_prompt_rule

    project = Project.open(cfg.project_dir)
    assert add_prompt_rule(project, build_embedder(project), "reject", "sky", threshold=0.9).evaluated > 0
    add_capture(tmp_path / "site", night2)
    run_nightly(cfg, stop_after="train")
    state = RunState.load(sorted((cfg.state_path / "runs").glob("*/state.json"))[-1])
    checkpoint = Path(state.outputs("train")["checkpoint"])
    detector, payload = load_checkpoint(checkpoint)
    with torch.no_grad():  # sabotage: the head outputs the same score for every frame
        detector.cam.weight.zero_()
        detector.cam.bias.zero_()
    save_checkpoint(checkpoint, detector, {k: v for k, v in payload.items() if k not in ("format", "config", "bug_types", "state_dict")})

    result = run_nightly(cfg)
    assert result.resumed and result.outcome == "not-promoted"
    cluster, embed = result.state.outputs("cluster"), result.state.outputs("embed")
    assert cluster["rules_replayed"] == 1 and cluster["mask_decisions_derived"] == embed["embedded"] > 0
    decision = result.state.outputs("decide")
    assert not decision["promote"] and decision["challenger_mean"] < decision["champion_mean"] + 0.02
    challenger = result.state.outputs("evaluate")["challenger"]["metrics"]["fppc"]
    assert challenger["pr_auc"] == pytest.approx(challenger["positives"] / (challenger["positives"] + challenger["negatives"]))
    registry = Registry(cfg.registry_dir)
    assert registry.champion("detector").version == champion
    assert len(registry.history("detector")) == 1
    assert len(registry.versions("detector")) == 2  # the challenger is kept as a version, not served
    assert served_version(cfg.registry_dir) == [f"detector-{champion}"]
    assert "champion kept" in result.report_html.read_text()


def test_a_damaged_challenger_package_fails_the_run_and_the_champion_keeps_serving(
        first_night: FirstNight, tmp_path: Path, night2: Path) -> None:
    cfg = copy_site(first_night.site, tmp_path / "site")
    champion = Registry(cfg.registry_dir).champion("detector").version
    add_capture(tmp_path / "site", night2)
    run_nightly(cfg, stop_after="export")
    state = RunState.load(sorted((cfg.state_path / "runs").glob("*/state.json"))[-1])
    package = Path(state.outputs("export")["package"])
    data = bytearray((package / MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (package / MODEL_FILE).write_bytes(bytes(data))

    with pytest.raises(NightlyFailed, match="champion is unchanged"):
        run_nightly(cfg)
    state = RunState.load(state.path)
    assert state.status == "failed" and state.steps["evaluate"]["status"] == "failed" and "sha256" in state.error
    assert Registry(cfg.registry_dir).champion("detector").version == champion
    assert served_version(cfg.registry_dir) == [f"detector-{champion}"]
    report = json.loads((state.directory / "report.json").read_text())
    assert report["status"] == "failed" and "publish" not in report["steps"]
    # Resuming would fail the same way every night; an operator abandons the run instead.
    assert unfinished_run(cfg.state_path).run_id == state.run_id
    assert abandon_unfinished(cfg).run_id == state.run_id
    assert unfinished_run(cfg.state_path) is None and RunState.load(state.path).status == "abandoned"


def test_a_run_killed_mid_training_resumes_from_its_checkpoint(first_night: FirstNight, tmp_path: Path, night2: Path) -> None:
    site = tmp_path / "site"
    cfg = copy_site(first_night.site, site, epochs=5)
    add_capture(site, night2)
    proc = subprocess.Popen([sys.executable, "-m", "bugdet", "nightly", "--config", str(site / "nightly.yaml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        last = None
        while time.monotonic() < deadline and proc.poll() is None:
            found = list((cfg.project_dir / "models").glob("nightly-*/last.pt"))
            fresh = [p for p in found if "nightly-" + first_night.result.state.run_id not in str(p)]
            if fresh:
                last = fresh[0]
                break
            time.sleep(0.05)
        assert last is not None, "training never wrote a checkpoint"
        os.kill(proc.pid, signal.SIGKILL)  # no cleanup of any kind runs
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    state = RunState.load(sorted((cfg.state_path / "runs").glob("*/state.json"))[-1])
    assert state.status == "running" and "train" not in state.steps and state.done("objectives")
    epochs_at_kill = len(load_checkpoint(last)[1]["training"]["history"])
    assert 1 <= epochs_at_kill < 5

    result = run_nightly(cfg)  # the kernel dropped the dead run's lock; this resumes it
    assert result.resumed and result.state.run_id == state.run_id and result.state.attempts == 2
    train = result.state.outputs("train")
    assert train["resumed_from_epoch"] >= epochs_at_kill
    assert [h["epoch"] for h in train["history"]] == [0, 1, 2, 3, 4]  # continued, not restarted
    assert result.state.status == "finished" and result.outcome in ("promoted", "not-promoted")
    assert all(result.state.steps[name].get("status") == "done" for name, _ in STEPS)


def test_a_new_or_undone_review_verdict_counts_as_new_data(first_night: FirstNight, tmp_path: Path) -> None:
    """Confirmed flags alone (no new captures) are worth a retrain, and so is undoing one."""
    from bugdet.nightly.steps import StepContext, step_check

    cfg = copy_site(first_night.site, tmp_path / "site")
    project = Project.open(cfg.project_dir)
    ctx = StepContext(cfg, project, Registry(cfg.registry_dir), first_night.result.state, progress=None)
    assert step_check(ctx)["has_new_data"] is False
    conn = project.connect()
    frame_id = next(iter_frames(conn, split="train")).id
    record_labels(conn, [(frame_id, "fppc", 1)], who="tester", source="review")
    check = step_check(ctx)
    assert check["has_new_data"] and check["new"]["frame_labels"] == 1 and "labels_digest" in check["changed"]
    # The review app's undo deletes the label row it wrote: back exactly where the last run was.
    conn.execute("DELETE FROM frame_labels WHERE id = (SELECT MAX(id) FROM frame_labels)")
    conn.commit()
    assert step_check(ctx)["has_new_data"] is False
    # Undo one verdict and give another: the new row may reuse the id and the count is unchanged.
    conn.execute("DELETE FROM frame_labels WHERE id = (SELECT MAX(id) FROM frame_labels)")
    conn.commit()
    record_labels(conn, [(frame_id, "good", 1)], who="tester", source="review")
    check = step_check(ctx)
    assert check["new"]["frame_labels"] == 0 and check["changed"] == ["labels_digest"]
