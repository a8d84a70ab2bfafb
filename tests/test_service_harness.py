"""The engine harness: a real playtest streams raw RGBA frames to the service over DetectStream
and the report's detections, positions and precision/recall agree with the world's ground truth
and with in-process inference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bugdet.harness.playtest import run_playtest
from bugdet.harness.report import write_report
from bugdet.playtest.session import PlaytestSession, PlaytestSpec
from service.frames import fit_to_input
from service.runtime import new_session
from test_export import make_package
from test_service import running

BUGS = ("missing_texture", "black_frame")


def test_playtest_streams_to_the_service_and_reports(tmp_path: Path) -> None:
    package = make_package(tmp_path / "models", version="1")
    with running(tmp_path / "models") as (server, address):
        assert server.wait_until_serving(30)
        run = run_playtest(address, scene="park", seed=3, frames=30, width=160, height=120, bugs=BUGS, prevalence=0.4)
    html_path, json_path = write_report(run, tmp_path / "report")

    replay = list(PlaytestSession(PlaytestSpec(scene="park", seed=3, frames=30, width=160, height=120, prevalence=0.4, bugs=BUGS)).frames())
    assert [f.index for f in run.frames] == list(range(30)) and not any(f.error for f in run.frames)
    for record, frame in zip(run.frames, replay):
        assert record.truth == {name: t.present for name, t in frame.truths.items()}
        assert record.pose[:2] == (frame.pose.x, frame.pose.y)
    assert any(f.has_bug for f in run.frames)

    session = new_session(str(package / "model.onnx"), "cpu")
    scores, _ = session.run(None, {"images": np.stack([fit_to_input(f.rgb, 64, 64) for f in replay])})
    got = np.array([[r.scores[b] for b in ("missing_texture", "black_hole")] for r in run.frames])
    np.testing.assert_allclose(got, scores, atol=1e-5)

    assert run.evaluated_types() == ["missing_texture"]  # the model's types that the playtest injects
    truth = np.array([f.truth["missing_texture"] for f in run.frames])
    flagged = scores[:, 0] >= 0.5
    tp, fp, fn = int((flagged & truth).sum()), int((flagged & ~truth).sum()), int((~flagged & truth).sum())
    report = json.loads(json_path.read_text())
    assert report["precision_recall"]["missing_texture"] == {
        "tp": tp, "fp": fp, "fn": fn, "precision": tp / (tp + fp) if tp + fp else None, "recall": tp / (tp + fn) if tp + fn else None,
    }
    assert report["frames"] == 30 and report["flagged_frames"] == sum(f.is_flagged for f in run.frames)
    page = html_path.read_text()
    assert "<svg" in page and "Precision and recall" in page
    assert page.count('<figure class="card') == report["flagged_frames"]
    assert page.count("data:image/jpeg;base64,") == report["flagged_frames"]
