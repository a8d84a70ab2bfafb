"""The temporal window ("k of the last n frames", service/temporal.py): the streaming form against
the benchmark's offline form (bugdet.detect.episodes.windowed_scores), DetectStream with the window on and off on a real served model, and the
harness applying it on the server or on its own side."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest

from bugdet.detect.episodes import Timeline, windowed_scores
from service import protos
from service.temporal import TemporalWindow, check_window

pb, pb_grpc = protos.detection()

BLIP_AND_BUG = [0.1, 0.2, 0.9, 0.1, 0.0, 0.8, 0.7, 0.95, 0.1, 0.2, 0.3]  # a one-frame blip at 2, a 3-frame bug at 5-7


def streamed(scores: np.ndarray, thresholds: np.ndarray, frames: int, min_hits: int, sessions=None) -> np.ndarray:
    """The streaming form over rows of [N, T] scores: one TemporalWindow per session."""
    types = [f"t{j}" for j in range(scores.shape[1])]
    limits = dict(zip(types, thresholds.tolist()))
    windows: dict[object, TemporalWindow] = {}
    out = []
    for i, row in enumerate(scores):
        window = windows.setdefault(None if sessions is None else sessions[i], TemporalWindow(frames, min_hits))
        flags = window.update_scores(dict(zip(types, row.tolist())), limits)
        out.append([flags[t] for t in types])
    return np.array(out, dtype=bool).reshape(scores.shape)


def windowed_flags(scores, thresholds, frames: int = 1, min_hits: int = 1, sessions=None) -> np.ndarray:
    """The offline form: rows of [N] or [N, T] scores in time order, contiguous sessions; a frame
    is flagged where its windowed score reaches the threshold."""
    values = np.asarray(scores, float)
    flat = values.reshape(len(values), -1)
    labels = np.zeros(len(values), int) if sessions is None else np.unique(np.asarray(sessions), return_inverse=True)[1]
    timeline = Timeline.build(labels, np.arange(len(values)))
    limits = np.broadcast_to(np.asarray(thresholds, float), (flat.shape[1],))
    out = np.stack([windowed_scores(flat[:, j], timeline, frames, min_hits) >= limits[j] for j in range(flat.shape[1])], axis=1)
    return out.reshape(values.shape)


def test_isolated_blip_is_suppressed_and_a_three_frame_bug_flagged_from_its_second_frame() -> None:
    scores = np.array(BLIP_AND_BUG)[:, None]
    expected = np.zeros(len(BLIP_AND_BUG), bool)
    expected[[6, 7, 8]] = True  # 2 of 3 from the bug's second frame; 8 still holds two hits (the n - k trailing frame)
    np.testing.assert_array_equal(windowed_flags(scores, [0.5], 3, 2)[:, 0], expected)
    np.testing.assert_array_equal(streamed(scores, np.array([0.5]), 3, 2)[:, 0], expected)
    window = TemporalWindow(3, 2)
    assert [window.update({"bug": s >= 0.5})["bug"] for s in BLIP_AND_BUG] == expected.tolist()


def test_session_boundary_restarts_the_window() -> None:
    scores = np.array([0.9, 0.9, 0.9, 0.1, 0.9])
    sessions = ["a", "a", "b", "b", "b"]
    assert windowed_flags(scores, 0.5, 3, 2).tolist() == [False, True, True, True, True]
    assert windowed_flags(scores, 0.5, 3, 2, sessions=sessions).tolist() == [False, True, False, False, True]
    np.testing.assert_array_equal(streamed(scores[:, None], np.array([0.5]), 3, 2, sessions)[:, 0],
                                  [False, True, False, False, True])


def test_one_frame_window_is_plain_thresholding() -> None:
    rng = np.random.default_rng(0)
    scores, thresholds = rng.random((200, 3)), np.array([0.3, 0.5, 0.8])
    plain = scores >= thresholds
    np.testing.assert_array_equal(windowed_flags(scores, thresholds), plain)
    np.testing.assert_array_equal(windowed_flags(scores, thresholds, 1, 1, sessions=rng.integers(0, 3, 200)), plain)
    np.testing.assert_array_equal(streamed(scores, thresholds, 1, 1), plain)


@pytest.mark.parametrize("seed", range(6))
def test_offline_form_equals_streaming_on_random_scores(seed: int) -> None:
    rng = np.random.default_rng(seed)
    frames = int(rng.integers(1, 7))
    min_hits = int(rng.integers(1, frames + 1))
    n = int(rng.integers(1, 300))
    scores, thresholds = rng.random((n, 4)), rng.uniform(0.2, 0.8, 4)
    sessions = np.sort(rng.integers(0, 5, n))  # contiguous sessions of random lengths
    np.testing.assert_array_equal(windowed_flags(scores, thresholds, frames, min_hits, sessions),
                                  streamed(scores, thresholds, frames, min_hits, sessions.tolist()))
    np.testing.assert_array_equal(windowed_flags(scores, thresholds, frames, min_hits), streamed(scores, thresholds, frames, min_hits))
    one = windowed_flags(scores[:, 1], thresholds[1], frames, min_hits, sessions)
    np.testing.assert_array_equal(one, windowed_flags(scores, thresholds, frames, min_hits, sessions)[:, 1])


def test_invalid_windows_are_refused() -> None:
    for frames, min_hits in [(0, 1), (2, 3), (3, 0), (2.5, 1)]:
        with pytest.raises(ValueError):
            check_window(frames, min_hits)
    with pytest.raises(ValueError):
        TemporalWindow(2, 3)


# --- served: DetectStream on a real exported model -------------------------------------------------


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    from test_export import make_package

    root = tmp_path_factory.mktemp("temporal") / "models"
    make_package(root, version="1")
    return root


def _raw(rgb: np.ndarray):
    h, w = rgb.shape[:2]
    return pb.RawImage(data=np.ascontiguousarray(rgb).tobytes(), width=w, height=h, format=pb.RGB8)


def _stream(address: str, frames: list[tuple[str, np.ndarray | None]]) -> list:
    """DetectStream of (id, frame) in this order, session "play"; a None frame is a broken one."""
    def requests():
        for i, (frame_id, rgb) in enumerate(frames):
            if rgb is None:
                yield pb.DetectStreamRequest(frame=pb.Frame(id=frame_id, encoded=b"\x89PNG not really"))
            else:
                yield pb.DetectStreamRequest(frame=pb.Frame(id=frame_id, raw=_raw(rgb), metadata=pb.FrameMetadata(session="play", frame_index=i)))

    with grpc.insecure_channel(address) as channel:
        return list(pb_grpc.DetectionStub(channel).DetectStream(requests(), timeout=60))


def test_stream_window_drops_a_lone_flagged_frame_and_keeps_a_lasting_bug(models_dir: Path) -> None:
    from test_export import scene_frames
    from test_service import running

    pool, _ = scene_frames(24, seed=21)
    with running(models_dir) as (server, address):
        assert server.wait_until_serving(30)
        with grpc.insecure_channel(address) as channel:  # unary Detect: per-frame flags, never windowed
            unary = pb_grpc.DetectionStub(channel).Detect(pb.DetectRequest(frames=[pb.Frame(raw=_raw(f)) for f in pool]), timeout=30)
        bug = next(i for i, r in enumerate(unary.results) if r.is_bug)
        clean = next(i for i, r in enumerate(unary.results) if not r.is_bug)
        # clean, clean, one bug frame alone, clean, clean, then a bug lasting 3 frames, clean; broken frames
        # (None) in between fail at once, so without the window their results overtake earlier frames'
        plan = ["c", "c", "b", "c", None, "c", "b", "b", None, "b", "c"]
        frames = [(f"f{i}", None if p is None else pool[bug if p == "b" else clean]) for i, p in enumerate(plan)]
        off = {r.id: r for r in _stream(address, frames)}
    with running(models_dir, flag_window=3, flag_window_min=2) as (server, address):
        assert server.wait_until_serving(30)
        on = _stream(address, frames)
        again = [_stream(address, frames) for _ in range(3)]

    assert [r.id for r in on] == [f for f, _ in frames]  # window on: answered in the order sent
    for repeat in again:  # deterministic: same order, same flags
        assert [(r.id, r.is_bug, [s.is_bug for s in r.scores]) for r in repeat] == [(r.id, r.is_bug, [s.is_bug for s in r.scores]) for r in on]
    assert on[4].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and off["f4"].HasField("error") and on[8].HasField("error")
    assert off["f2"].is_bug and not on[2].is_bug  # the lone over-threshold frame: flagged only without the window
    assert not on[6].is_bug and on[7].is_bug and on[9].is_bug  # the lasting bug: from its second frame

    scored = [i for i, p in enumerate(plan) if p is not None]  # a failed frame does not enter the window
    types = [s.bug_type for s in on[0].scores]
    raw = np.array([[s.score for s in off[f"f{i}"].scores] for i in scored])
    thresholds = np.array([s.threshold for s in on[0].scores])
    expected = windowed_flags(raw, thresholds, 3, 2)
    for row, i in enumerate(scored):
        result = on[i]
        assert [s.bug_type for s in result.scores] == types
        np.testing.assert_allclose([s.score for s in result.scores], raw[row], atol=1e-6)  # scores are the frame's own
        assert [s.is_bug for s in result.scores] == expected[row].tolist()
        assert [s.HasField("box") for s in result.scores] == expected[row].tolist()
        assert result.is_bug == bool(expected[row].any())
        assert [s.is_bug for s in off[f"f{i}"].scores] == (raw[row] >= thresholds).tolist()


def test_harness_window_on_the_server_equals_the_window_in_the_harness(models_dir: Path, tmp_path: Path) -> None:
    from test_export import trained_detector
    from test_service import running

    from bugdet.export.package import export_package
    from bugdet.harness.playtest import run_playtest
    from bugdet.harness.report import summary
    from bugdet.playtest.session import PlaytestSession, PlaytestSpec
    from service.frames import fit_to_input
    from service.runtime import new_session

    spec = dict(scene="park", seed=3, frames=16, width=160, height=120, bugs=("missing_texture", "black_frame"), prevalence=0.4)
    # The test model flags nothing in the playtest at its own thresholds: serve it again with each
    # type's median playtest score as its threshold, so about half the frames are over it.
    replay = [f.rgb for f in PlaytestSession(PlaytestSpec(**spec)).frames()]
    session = new_session(str(models_dir / "detector-1" / "model.onnx"), "cpu")
    scores = session.run(None, {"images": np.stack([fit_to_input(f, 64, 64) for f in replay])})[0]
    medians = {"missing_texture": float(np.median(scores[:, 0])), "black_hole": float(np.median(scores[:, 1]))}
    export_package(trained_detector(), replay[:4], tmp_path / "models", name="detector", version="1", thresholds=medians,
                   exporter="torchscript")
    kwargs = dict(spec, flag_window=3, flag_window_min=2)
    with running(tmp_path / "models", flag_window=3, flag_window_min=2) as (server, address):
        assert server.wait_until_serving(30)
        by_server = run_playtest(address, **kwargs, server_window=True)
        by_harness = run_playtest(address, **kwargs)  # recomputed from the raw scores, in send order
    types = by_server.bug_types
    raw = np.array([[f.scores[b] for b in types] for f in by_server.frames])
    hits = raw >= np.array([by_server.thresholds[b] for b in types])
    expected = windowed_flags(raw, np.array([by_server.thresholds[b] for b in types]), 3, 2)
    assert expected.any() and (expected != hits).any()  # the window flags frames, and not the per-frame ones
    for run in (by_server, by_harness):
        assert [f.index for f in run.frames] == list(range(16)) and not any(f.error for f in run.frames)
        assert np.array([[f.flagged[b] for b in types] for f in run.frames]).tolist() == expected.tolist()
        assert all((f.rgb is not None) == f.is_flagged for f in run.frames)
        assert summary(run)["flag_window"] == {"frames": 3, "min": 2}
