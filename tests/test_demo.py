"""The demo judges its own outcome: bars on real metric objects, FAILED and a non-zero exit for a
weak detector (``--allow-weak`` exits 0 but still says FAILED), and summary.json's keys.

The whole demo takes minutes, so the fast tests judge real :class:`DetectionMetrics` and real
playtest records; the end-to-end run is the slow test at the bottom.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import bugdet.demo
from bugdet.cli import app
from bugdet.demo import BARS, DemoResult, PlaytestOutcome, judge
from bugdet.detect.metrics import DetectionMetrics, evaluate_scores
from bugdet.harness.playtest import FrameRecord, PlaytestRun
from bugdet.project import Project


def metrics(quality: float, bugs: int = 40, good: int = 360, seed: int = 0) -> DetectionMetrics:
    """Real metrics of a detector whose bug frames score ``quality`` higher on average (0 = chance)."""
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(bugs, bool), np.zeros(good, bool)]
    scores = rng.normal(size=labels.size) + quality * labels
    return evaluate_scores(scores, labels, threshold=quality / 2 if quality else 3.0)


def playtest_run(flags: list[tuple[bool, bool]]) -> PlaytestRun:
    """A playtest run over frames given as (truly buggy, flagged)."""
    frames = [FrameRecord(index=i, time=i / 30, pose=(0,) * 6, truth={"fppc": bug, "missing_texture": False},
                          thumbnail=np.zeros((4, 4, 3), np.uint8), flagged={"fppc": flag})
              for i, (bug, flag) in enumerate(flags)]
    return PlaytestRun(scene="park", seed=200012, session_id="s", model="m", bug_types=["fppc", "missing_texture"],
                       thresholds={"fppc": 0.5}, world_bounds=(0, 0, 1, 1), obstacles=[], frames=frames)


def test_strong_results_pass_every_bar() -> None:
    strong = {"fppc": metrics(6.0), "missing_texture": metrics(6.0, seed=1)}
    playtest = PlaytestOutcome.from_run(playtest_run([(True, True)] * 4 + [(False, False)] * 20), queued=4)
    verdicts = judge(strong, playtest)
    assert strong["fppc"].f1 >= BARS.heldout_f1
    assert [v.passed for v in verdicts] == [True, True, True]


def test_a_chance_level_detector_fails_its_bars() -> None:
    weak = {"fppc": metrics(0.0), "missing_texture": metrics(0.0, seed=1)}
    silent = PlaytestOutcome.from_run(playtest_run([(True, False)] * 10 + [(False, False)] * 30), queued=0)
    assert (silent.frames, silent.bug_frames, silent.flagged, silent.flagged_true) == (40, 10, 0, 0)
    verdicts = judge(weak, silent)
    assert [v.passed for v in verdicts] == [False, False, False]
    assert "F1 0.00" in verdicts[0].measured


def test_each_bar_is_judged_on_its_own() -> None:
    good, weak = metrics(6.0), metrics(0.0)
    playtest = PlaytestOutcome.from_run(playtest_run([(True, True)] * 3 + [(False, True)] * 3), queued=6)
    assert playtest.flagged_true == 3 and playtest.flagged == 6
    # FPPC alone is not enough; a missing type or playtest fails its own bar
    assert [v.passed for v in judge({"fppc": good, "missing_texture": weak}, playtest)] == [True, False, True]
    assert [v.passed for v in judge({"missing_texture": good}, playtest)] == [False, True, True]
    assert [v.passed for v in judge({"fppc": good, "missing_texture": good}, None)] == [True, True, False]
    # flagging nearly everything finds three bugs too, but most flags are wrong: failed
    noisy = PlaytestOutcome.from_run(playtest_run([(True, True)] * 5 + [(False, True)] * 30), queued=35)
    assert not judge({"fppc": good, "missing_texture": good}, noisy)[2].passed
    # flags that never reach the review queue fail the playtest bar
    unqueued = PlaytestOutcome(frames=8, bug_frames=3, flagged=3, flagged_true=3, queued=2)
    assert not judge({"fppc": good, "missing_texture": good}, unqueued)[2].passed


def weak_result(root: Path) -> DemoResult:
    result = DemoResult(Project.open(root, bugdet.demo.DEMO_OVERRIDES, create=True), seconds=12.5)
    result.heldout = {"fppc": metrics(0.0), "missing_texture": metrics(0.0, seed=1)}
    result.playtest = PlaytestOutcome.from_run(playtest_run([(True, False)] * 5 + [(False, False)] * 20), queued=0)
    result.verdicts = judge(result.heldout, result.playtest)
    result.write_summary()
    return result


def test_summary_json_keys(tmp_path: Path) -> None:
    result = weak_result(tmp_path / "demo")
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["seconds"] == 12.5
    assert set(summary["heldout"]) == {"fppc", "missing_texture"}
    for scores in summary["heldout"].values():
        assert {"f1", "pr_auc"} <= set(scores)
    assert summary["heldout"]["fppc"]["f1"] == result.heldout["fppc"].f1
    assert {"frames": 25, "flagged": 0, "flagged_true": 0}.items() <= summary["playtest"].items()
    assert summary["passed"] is False and len(summary["bars"]) == 3


@pytest.fixture
def weak_demo(monkeypatch: pytest.MonkeyPatch):
    """``bugdet demo`` with the pipeline's result replaced by a weak one (the real run takes minutes)."""
    def run_demo(root: Path, progress=None, serve=True, on_step=None) -> DemoResult:
        return weak_result(root)

    monkeypatch.setattr(bugdet.demo, "run_demo", run_demo)


def test_cli_weak_detector_prints_failed_and_exits_non_zero(tmp_path: Path, weak_demo) -> None:
    result = CliRunner().invoke(app, ["demo", "-p", str(tmp_path / "demo")])
    assert result.exit_code == 1, result.output
    assert result.output.count("FAILED") == 3
    assert "✓" not in result.output and "passed" not in result.output
    assert f"bugdet review -p {tmp_path / 'demo'}" in result.output


def test_cli_allow_weak_exits_zero_and_still_prints_failed(tmp_path: Path, weak_demo) -> None:
    result = CliRunner().invoke(app, ["demo", "-p", str(tmp_path / "demo"), "--allow-weak"])
    assert result.exit_code == 0, result.output
    assert result.output.count("FAILED") == 3


@pytest.mark.slow
def test_demo_end_to_end(tmp_path: Path) -> None:
    """The real demo from an empty project directory (about 2 minutes on 2 idle cores)."""
    project = tmp_path / "demo"
    run = subprocess.run([sys.executable, "-m", "bugdet", "demo", "-p", str(project), "--allow-weak"],
                         capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "train pretrain_finetune: started" in run.stderr  # not a terminal: line-based progress
    summary = json.loads((project / "summary.json").read_text())
    assert {"seconds", "heldout", "playtest", "passed", "bars", "steps"} <= set(summary)
    assert summary["heldout"]["fppc"]["bug_frames"] >= 30 and summary["heldout"]["missing_texture"]["bug_frames"] >= 30
    assert summary["heldout"]["missing_texture"]["f1"] >= BARS.heldout_f1
    assert summary["playtest"]["frames"] == bugdet.demo.PLAYTEST.frames
    assert ("FAILED" in run.stderr) == (not summary["passed"])
    if not summary["passed"]:
        pytest.xfail("known miss (docs/demo.md): held-out FPPC F1 below 0.60, playtest flags mostly wrong on some runs")


def test_main_exits_non_zero_for_a_weak_detector(tmp_path: Path, weak_demo) -> None:
    """The installed ``bugdet`` script (not only typer's test runner) exits 1 on a missed bar."""
    from bugdet.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["demo", "-p", str(tmp_path / "demo")])
    assert exited.value.code == 1
    main(["demo", "-p", str(tmp_path / "demo"), "--allow-weak"])  # returns: exit status 0
