"""What the service's performance work relies on: the fast raw-frame decode gives exactly the
pixels the slow one did, lone requests run inline while concurrent ones are batched, per-stage
metrics account for every request, and ``bugdet bench service``'s measurement produces the
issue's fields plus a breakdown that adds up (no timing asserts: numbers vary by machine)."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from test_export import make_package, scene_frames
from test_service import running

from bugdet.bench.service import measure
from service import protos
from service.frames import decode_raw, fit_to_input

pb, pb_grpc = protos.detection()


@pytest.mark.parametrize("pixel_format", ["RGBA8", "BGRA8"])
@pytest.mark.parametrize("stride_pad", [0, 64])
def test_four_channel_decode_is_contiguous_and_exact(pixel_format: str, stride_pad: int) -> None:
    rng = np.random.default_rng(3)
    h, w = 37, 53
    pixels = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    stride = w * 4 + stride_pad
    rows = np.zeros((h, stride), np.uint8)
    rows[:, : w * 4] = pixels.reshape(h, w * 4)
    data = rows.tobytes()[: stride * (h - 1) + w * 4]  # the last row unpadded, as some readbacks end
    rgb = decode_raw(data, w, h, stride if stride_pad else 0, pixel_format)
    expected = pixels[..., :3] if pixel_format == "RGBA8" else pixels[..., 2::-1]
    assert rgb.flags.c_contiguous and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, expected)
    np.testing.assert_array_equal(fit_to_input(rgb, 24, 32), fit_to_input(np.ascontiguousarray(expected), 24, 32))


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("perf") / "models"
    make_package(root)
    return root


@pytest.fixture(scope="module")
def heavier_models(tmp_path_factory) -> Path:
    """A package whose model is slower than a frame's decode (an untrained compact CNN at 192x256,
    ~ms per frame, like real packages): only then do streamed frames queue up behind the model and
    share batches. The tiny test model answers faster than the next frame arrives, which made the
    batching assertion below depend on scheduling luck."""
    from test_export import BUG_TYPES

    from bugdet.detect.model import create_detector

    root = tmp_path_factory.mktemp("perf-heavier") / "models"
    config = {"backbone": {"type": "compact_cnn", "widths": [32, 64, 128]}, "input_size": [192, 256]}
    make_package(root, detector=create_detector(config, BUG_TYPES, seed=0))
    return root


def _raw(rgb: np.ndarray, frame_id: str) -> pb.Frame:
    h, w = rgb.shape[:2]
    return pb.Frame(id=frame_id, raw=pb.RawImage(data=rgb.tobytes(), width=w, height=h, format=pb.RGB8))


def test_lone_requests_run_inline_concurrent_ones_batch_and_stages_are_counted(heavier_models: Path) -> None:
    frames, _ = scene_frames(6, seed=21)
    with running(heavier_models, max_batch=8) as (server, address):
        assert server.wait_until_serving(30)
        stub = pb_grpc.DetectionStub(grpc.insecure_channel(address))
        metrics = server.metrics
        for i in range(5):
            stub.Detect(pb.DetectRequest(frames=[_raw(frames[i], str(i))]), timeout=10)
        assert metrics.inline_batches.value() == 5  # one at a time: no hand-off to the batch worker
        assert metrics.stage_seconds.count(stage="queue") == 5 and metrics.stage_seconds.total(stage="queue") == 0.0
        for stage in ("decode", "respond"):
            assert metrics.stage_seconds.count(stage=stage) == 5 and metrics.stage_seconds.total(stage=stage) > 0

        # A stream keeps the worker fed: its frames go through the queue, in batches.
        requests = [pb.DetectStreamRequest(frame=_raw(frames[i % 6], f"s{i}")) for i in range(48)]
        results = list(stub.DetectStream(iter(requests), timeout=30))
        assert sorted(r.id for r in results) == sorted(f"s{i}" for i in range(48))
        assert all(not r.HasField("error") for r in results)
        assert metrics.stage_seconds.count(stage="decode") == 5 + 48
        assert metrics.stage_seconds.count(stage="respond") == 5 + 48
        assert metrics.stage_seconds.count(stage="queue") == 5 + 48  # every streamed frame went through the queue
        assert metrics.inference_seconds.count() < 5 + 48  # some frames shared a batch

        # Concurrent unary requests from many threads still all succeed, inline or batched.
        errors: list[BaseException] = []

        def call(k: int) -> None:
            try:
                stub.Detect(pb.DetectRequest(frames=[_raw(frames[k % 6], f"c{k}")]), timeout=30)
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=call, args=(k,)) for k in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        for stage in ("decode", "queue", "respond"):  # inline or batched, each request is counted once per stage
            assert metrics.stage_seconds.count(stage=stage) == 5 + 48 + 16


def test_bench_measure_reports_the_issue_fields_and_a_breakdown_that_adds_up(models: Path) -> None:
    frames, _ = scene_frames(4, seed=22)
    result = measure(next(models.iterdir()), frames, iterations=10, stream_frames=16, max_batch=4, rounds=1, block=5)
    for key in ("inproc_p50_ms", "grpc_p50_ms", "grpc_p99_ms", "latency_ratio", "inproc_batched_fps", "stream_fps", "throughput_ratio",
                "inproc_serial_fps", "inproc_pipelined_fps"):
        assert result[key] > 0, key
    assert result["latency_ratio"] == pytest.approx(result["grpc_p50_ms"] / result["inproc_p50_ms"], rel=1e-2)
    assert result["throughput_ratio"] == pytest.approx(result["stream_fps"] / result["inproc_batched_fps"], rel=1e-2)
    assert result["inproc_batched_fps"] == max(result["inproc_serial_fps"], result["inproc_pipelined_fps"])
    assert result["frame"] == {"format": "RGBA8", "height": 96, "width": 128}
    parts = result["latency_breakdown_ms"]
    stages = ("client_grpc_and_transport", "server_decode", "server_queue", "server_infer", "server_respond", "server_handler_other")
    assert sum(parts[k] for k in stages) == pytest.approx(parts["grpc_mean"], abs=1e-2)
    assert parts["of_which_empty_rpc"] + parts["of_which_payload_and_wakeups"] == pytest.approx(parts["client_grpc_and_transport"], abs=1e-2)
    assert parts["server_decode"] > 0 and parts["server_infer"] > 0 and parts["server_queue"] == 0.0  # lone calls run inline
    assert set(result["inproc_stages_ms"]) == {"decode", "infer", "postprocess", "total_mean", "decode_p50", "infer_p50", "postprocess_p50"}
    stream = result["stream_breakdown"]
    assert 0 < stream["worker_busy_fraction"] <= 1.0 and 1 <= stream["mean_batch"] <= 4
    assert stream["server_cpu_ms_per_frame"] >= 0 and stream["inproc_cpu_ms_per_frame"] >= 0  # /proc ticks are 10 ms
    assert stream["inproc_infer_ms_per_frame"] > 0 and stream["inproc_decode_ms_per_frame"] > 0
    assert result["grpc_floor_p50_ms"] > 0 and result["latency_ratio_floor"] > 1.0
    assert result["model_input_only"]["latency_ratio"] > 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings are Linux-only")
def test_served_process_runs_under_the_malloc_arena_cap_from_its_start(models: Path) -> None:
    """mallopt's arena cap misses arenas made before the call (grpc and onnxruntime start threads
    on import), so the server re-executes itself once under glibc's environment settings: same
    pid (callers and supervisors keep their handle), the cap in its environment, still serving."""
    import os

    from service.allocator import REEXEC_MARK, SERVER_ARENAS
    from service.client import SpawnedServer

    if "MALLOC_ARENA_MAX" in os.environ:
        pytest.skip("the caller set MALLOC_ARENA_MAX: the server keeps the user's setting")
    with SpawnedServer(str(models)) as server:
        environ = dict(item.split("=", 1) for item in Path(f"/proc/{server.process.pid}/environ").read_text().split("\0") if "=" in item)
        assert environ["MALLOC_ARENA_MAX"] == str(SERVER_ARENAS) and environ[REEXEC_MARK] == "1"
        assert environ["MALLOC_TRIM_THRESHOLD_"] == str(256 << 20)
        frames, _ = scene_frames(1, seed=29)
        stub = pb_grpc.DetectionStub(grpc.insecure_channel(server.address))
        assert [r.id for r in stub.Detect(pb.DetectRequest(frames=[_raw(frames[0], "a")]), timeout=10).results] == ["a"]


def test_the_arena_cap_keeps_a_users_own_malloc_arena_max(monkeypatch: pytest.MonkeyPatch) -> None:
    """glibc applies MALLOC_ARENA_MAX at start; the server's later mallopt must not undo it."""
    from service.allocator import SERVER_ARENAS, arena_cap

    monkeypatch.setenv("MALLOC_ARENA_MAX", "3")
    assert arena_cap() == 3
    monkeypatch.setenv("MALLOC_ARENA_MAX", "many")
    assert arena_cap() == SERVER_ARENAS
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    assert arena_cap() == SERVER_ARENAS == 1


def test_allocator_tuning_applies_on_glibc_and_the_server_still_serves(models: Path) -> None:
    import platform
    import subprocess
    import sys

    # In a child process (it changes the whole process's malloc). Where glibc is the C library the
    # thresholds must take; elsewhere the call is a no-op that says so (False).
    probe = "from service.allocator import keep_frame_buffers_mapped as k; print(k())"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=Path(__file__).parent.parent)
    assert out.stdout.strip() == str(platform.libc_ver()[0] == "glibc")
    frames, _ = scene_frames(2, seed=23)
    with running(models) as (server, address):
        assert server.wait_until_serving(30)
        stub = pb_grpc.DetectionStub(grpc.insecure_channel(address))
        response = stub.Detect(pb.DetectRequest(frames=[_raw(frames[0], "a"), _raw(frames[1], "b")]), timeout=10)
        assert [r.id for r in response.results] == ["a", "b"]


def _rss_mb(pid: int) -> float:
    import os

    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim and /proc are Linux-only")
def test_a_served_process_gives_a_bursts_memory_back_once_idle(models: Path) -> None:
    """Frame buffers stay mapped while frames flow (no page faults per frame), so a burst of large
    frames leaves the resident size at its peak; once idle the server trims it back down."""
    from service.client import SpawnedServer

    big = np.random.default_rng(1).integers(0, 255, (2000, 2000, 3), dtype=np.uint8)  # 12 MB: heap, not mmap
    with SpawnedServer(str(models), "--idle-release-s", "2") as server:  # longer than any one request here
        channel = grpc.insecure_channel(server.address, options=[("grpc.max_send_message_length", 64 << 20)])
        stub = pb_grpc.DetectionStub(channel)
        frames, _ = scene_frames(1, seed=31)
        stub.Detect(pb.DetectRequest(frames=[_raw(frames[0], "warm")]), timeout=30)
        time.sleep(1.5)
        before = _rss_mb(server.process.pid)

        def burst() -> None:
            for _ in range(3):
                stub.Detect(pb.DetectRequest(frames=[_raw(big, "big")]), timeout=60)

        threads = [threading.Thread(target=burst) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        peak = _rss_mb(server.process.pid)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _rss_mb(server.process.pid) > before + 0.5 * (peak - before):
            time.sleep(0.2)
        after = _rss_mb(server.process.pid)
        channel.close()
    assert peak - before > 30, f"the burst should have grown the heap: {before:.0f} -> {peak:.0f} MB"
    assert after <= before + 0.5 * (peak - before), f"idle server kept {after:.0f} MB (before {before:.0f}, peak {peak:.0f})"
