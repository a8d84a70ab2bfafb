"""The detection service end to end on 127.0.0.1 (ephemeral ports), with a real exported model.

Covers bugdet.v1 (Detect, DetectStream, GetModelInfo, ReloadModels), health and reflection, every
kind of bad input, the bearer token, dynamic batching / queue bound / deadlines, Prometheus
metrics, hot reload under concurrent load (zero failures; corrupt and half-copied packages
refused) and results equal to in-process onnxruntime. The KServe v2 protocol is checked with the
real ``tritonclient`` in a subprocess (see tests/test_service_oip.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import cv2
import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service import protos
from service.config import ServerConfig
from service.frames import fit_to_input
from service.model_package import MANIFEST_NAME, MODEL_FILE
from service.runtime import new_session
from service.server import DetectionServer

from test_export import make_package, scene_frames, trained_detector

pb, pb_grpc = protos.detection()


@contextlib.contextmanager
def running(models_dir: Path, **overrides) -> Iterator[tuple[DetectionServer, str]]:
    config = ServerConfig(models_dir=models_dir, port=0, poll_s=0.2, **overrides)
    server = DetectionServer(config)
    port = server.start()
    try:
        yield server, f"127.0.0.1:{port}"
    finally:
        server.stop(grace=0.5)


@pytest.fixture(scope="module")
def package_root(tmp_path_factory) -> Path:
    """A models directory holding detector-1, plus a staged detector-2 from another training run."""
    root = tmp_path_factory.mktemp("service")
    make_package(root / "models", version="1", detector=trained_detector(seed=0))
    make_package(root / "staged", version="2", detector=trained_detector(steps=10, seed=1))
    return root


@pytest.fixture(scope="module")
def server(package_root: Path) -> Iterator[tuple[DetectionServer, str]]:
    with running(package_root / "models", metrics_port=0, max_frame_bytes=1 << 20, max_message_bytes=4 << 20) as pair:
        assert pair[0].wait_until_serving(30)
        yield pair


@pytest.fixture(scope="module")
def stub(server) -> pb_grpc.DetectionStub:
    return pb_grpc.DetectionStub(grpc.insecure_channel(server[1]))


def png(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".png", rgb[..., ::-1])[1].tobytes()


def reference(package: Path, frames: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """In-process onnxruntime on the same frames, resized as the service does."""
    session = new_session(str(package / MODEL_FILE), "cpu")
    batch = np.stack([fit_to_input(f, 64, 64) for f in frames])
    return tuple(session.run(None, {"images": batch}))


def test_detect_equals_in_process_inference_for_every_pixel_format(server, stub, package_root: Path) -> None:
    frames, _ = scene_frames(4, seed=11)
    h, w = frames[0].shape[:2]
    stride = w * 4 + 64  # padded rows, as engines read them back
    rgba = np.zeros((h, stride), np.uint8)
    rgba[:, : w * 4] = np.dstack([frames[1], np.full((h, w), 255, np.uint8)]).reshape(h, w * 4)
    bgra = np.dstack([frames[2][..., ::-1], np.zeros((h, w), np.uint8)])
    meta = pb.FrameMetadata(session="s1", frame_index=7, timestamp_s=1.5, level="park", build="b42",
                            camera_pose=pb.Pose(x=1, y=2, z=3, yaw=90))
    request = pb.DetectRequest(include_heatmaps=True, frames=[
        pb.Frame(id="png", encoded=png(frames[0]), metadata=meta),
        pb.Frame(id="rgba", raw=pb.RawImage(data=rgba.tobytes(), width=w, height=h, stride=stride, format=pb.RGBA8)),
        pb.Frame(id="bgra", raw=pb.RawImage(data=bgra.tobytes(), width=w, height=h, format=pb.BGRA8)),
        pb.Frame(id="rgb", raw=pb.RawImage(data=frames[3].tobytes(), width=w, height=h, format=pb.RGB8)),
    ])
    response = stub.Detect(request, timeout=10)
    scores, heatmaps = reference(package_root / "models" / "detector-1", frames)
    assert [r.id for r in response.results] == ["png", "rgba", "bgra", "rgb"]
    thresholds = {"missing_texture": 0.5, "black_hole": 0.6}
    for i, result in enumerate(response.results):
        got = np.array([s.score for s in result.scores])
        np.testing.assert_allclose(got, scores[i], atol=1e-5)
        assert [s.bug_type for s in result.scores] == ["missing_texture", "black_hole"]
        for s in result.scores:
            assert s.is_bug == (s.score >= thresholds[s.bug_type]) and s.threshold == pytest.approx(thresholds[s.bug_type])
            assert s.HasField("box") == s.is_bug
            hm = np.frombuffer(s.heatmap.data, np.uint8).reshape(s.heatmap.height, s.heatmap.width)
            k = ["missing_texture", "black_hole"].index(s.bug_type)
            assert np.abs(hm.astype(float) / 255 - heatmaps[i, k]).max() <= 1 / 255 + 1e-6
        assert result.is_bug == any(s.is_bug for s in result.scores)
        assert result.model_name == "detector" and result.model_version == "1"
        assert abs(result.server_time.ToSeconds() - time.time()) < 60
    assert response.results[0].metadata == meta


def test_stream_matches_ids_and_survives_a_bad_frame(stub) -> None:
    frames, _ = scene_frames(12, seed=12)

    def requests():
        for i, frame in enumerate(frames):
            yield pb.DetectStreamRequest(frame=pb.Frame(id=f"f{i}", encoded=png(frame),
                                                        metadata=pb.FrameMetadata(session="play", frame_index=i)))
            if i == 5:
                yield pb.DetectStreamRequest(frame=pb.Frame(id="broken", encoded=b"\x89PNG not really"))

    results = {r.id: r for r in stub.DetectStream(requests(), timeout=30)}
    assert set(results) == {f"f{i}" for i in range(12)} | {"broken"}
    assert results["broken"].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "not a decodable PNG or JPEG" in results["broken"].error.message
    unary = stub.Detect(pb.DetectRequest(frames=[pb.Frame(id=f"f{i}", encoded=png(f)) for i, f in enumerate(frames)]), timeout=10)
    for expected in unary.results:
        got = results[expected.id]
        assert not got.HasField("error") and got.metadata.frame_index == int(expected.id[1:])
        np.testing.assert_allclose([s.score for s in got.scores], [s.score for s in expected.scores], atol=1e-5)


def test_model_info_and_reload_rpc(stub) -> None:
    info = stub.GetModelInfo(pb.ModelInfoRequest(), timeout=5)
    assert (info.name, info.version, list(info.bug_types)) == ("detector", "1", ["missing_texture", "black_hole"])
    assert (info.input_height, info.input_width, info.heatmap_height, info.heatmap_width) == (64, 64, 8, 8)
    assert dict(info.thresholds) == pytest.approx({"missing_texture": 0.5, "black_hole": 0.6})
    assert info.execution_provider == "CPUExecutionProvider"
    assert json.loads(info.manifest_json)["parity"]["passed"] is True
    assert list(stub.ReloadModels(pb.ReloadModelsRequest(), timeout=10).serving) == ["detector-1"]


@pytest.mark.parametrize(
    "frame, code, message",
    [
        (pb.Frame(id="junk", encoded=b"definitely not an image"), "INVALID_ARGUMENT", "not a decodable PNG or JPEG"),
        (pb.Frame(id="empty", encoded=b""), "INVALID_ARGUMENT", "empty image bytes"),
        (pb.Frame(id="none"), "INVALID_ARGUMENT", "no pixels"),
        (pb.Frame(id="size", raw=pb.RawImage(data=bytes(100), width=10, height=10, format=pb.RGBA8)), "INVALID_ARGUMENT", "do not match 10x10 RGBA8"),
        (pb.Frame(id="stride", raw=pb.RawImage(data=bytes(400), width=10, height=10, stride=20, format=pb.RGBA8)), "INVALID_ARGUMENT", "stride 20 is smaller"),
        (pb.Frame(id="fmt", raw=pb.RawImage(data=bytes(400), width=10, height=10)), "INVALID_ARGUMENT", "pixel format"),
        (pb.Frame(id="zero", raw=pb.RawImage(data=b"", width=0, height=0, format=pb.RGB8)), "INVALID_ARGUMENT", "positive width"),
        (pb.Frame(id="huge", raw=pb.RawImage(data=bytes(16), width=100000, height=2, format=pb.RGB8)), "INVALID_ARGUMENT", "exceeds the largest"),
        (pb.Frame(id="big", encoded=bytes(2 << 20)), "INVALID_ARGUMENT", "frame limit"),
        (pb.Frame(id="bomb", encoded=b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + (60000).to_bytes(4, "big") * 2 + bytes(64)),
         "INVALID_ARGUMENT", "encoded image is 60000x60000"),
    ],
    ids=lambda v: v.id if isinstance(v, pb.Frame) else "",
)
def test_bad_frames_are_rejected_clearly(stub, frame, code: str, message: str) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub.Detect(pb.DetectRequest(frames=[frame]), timeout=5)
    assert err.value.code().name == code and message in err.value.details()


def test_bad_requests_and_server_keeps_serving(stub) -> None:
    ok = pb.Frame(id="ok", encoded=png(scene_frames(1)[0][0]))
    cases = [
        (pb.DetectRequest(model="nope", frames=[ok]), "NOT_FOUND", "unknown model 'nope'"),
        (pb.DetectRequest(frames=[]), "INVALID_ARGUMENT", "at least one frame"),
        (pb.DetectRequest(frames=[ok] * 65), "INVALID_ARGUMENT", "at most 64"),
        (pb.DetectRequest(frames=[pb.Frame(id="x", encoded=bytes(900_000))] * 5), "RESOURCE_EXHAUSTED", ""),  # > 4 MiB message
    ]
    for request, code, message in cases:
        with pytest.raises(grpc.RpcError) as err:
            stub.Detect(request, timeout=5)
        assert err.value.code().name == code and message in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        stub.GetModelInfo(pb.ModelInfoRequest(model="nope"), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert stub.Detect(pb.DetectRequest(frames=[ok]), timeout=5).results[0].id == "ok"


def test_health_not_serving_until_a_package_loads_and_reflection_lists_services(package_root: Path, tmp_path: Path) -> None:
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    models = tmp_path / "models"
    models.mkdir()
    with running(models) as (_, address):
        channel = grpc.insecure_channel(address)
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.RpcError) as err:
            pb_grpc.DetectionStub(channel).Detect(pb.DetectRequest(frames=[pb.Frame(encoded=b"x")]), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "no model is loaded" in err.value.details()
        shutil.copytree(package_root / "models" / "detector-1", models / "detector-1")
        reply = pb_grpc.DetectionStub(channel).ReloadModels(pb.ReloadModelsRequest(), timeout=30)
        assert list(reply.loaded) == ["detector-1"]
        for service in ("", "bugdet.v1.Detection", "inference.GRPCInferenceService"):
            assert health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status == health_pb2.HealthCheckResponse.SERVING
        services = set(ProtoReflectionDescriptorDatabase(channel).get_services())
        assert {"bugdet.v1.Detection", "inference.GRPCInferenceService", "grpc.health.v1.Health"} <= services


def test_bearer_token(package_root: Path) -> None:
    with running(package_root / "models", token="s3cret") as (server, address):
        assert server.wait_until_serving(30)
        channel = grpc.insecure_channel(address)
        stub = pb_grpc.DetectionStub(channel)
        for metadata in (None, [("authorization", "Bearer wrong")], [("authorization", "s3cret")]):
            with pytest.raises(grpc.RpcError) as err:
                stub.GetModelInfo(pb.ModelInfoRequest(), timeout=5, metadata=metadata)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as err:
            list(stub.DetectStream(iter([pb.DetectStreamRequest()]), timeout=5))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert stub.GetModelInfo(pb.ModelInfoRequest(), timeout=5, metadata=[("authorization", "Bearer s3cret")]).version == "1"
        health = health_pb2_grpc.HealthStub(channel)  # probes need no token
        assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING


def test_dynamic_batching_queue_bound_and_deadline(package_root: Path) -> None:
    """A 1 s batching window makes the batch, the full queue and the deadline deterministic."""
    with running(package_root / "models", max_batch=8, max_queue=2, max_queue_delay_ms=1000) as (server, address):
        assert server.wait_until_serving(30)
        stub = pb_grpc.DetectionStub(grpc.insecure_channel(address))
        frame = pb.Frame(id="q", encoded=png(scene_frames(1)[0][0]))
        outcomes: list[str] = []

        def call() -> None:
            try:
                stub.Detect(pb.DetectRequest(frames=[frame]), timeout=10)
                outcomes.append("OK")
            except grpc.RpcError as exc:
                outcomes.append(exc.code().name)

        first = [threading.Thread(target=call) for _ in range(2)]
        for t in first:
            t.start()
        deadline = time.monotonic() + 0.9
        while server.batcher.depth < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # both wait in the batching window: the queue (2 frames) is full
        with pytest.raises(grpc.RpcError) as err:
            stub.Detect(pb.DetectRequest(frames=[frame]), timeout=10)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "retry later" in err.value.details()
        for t in first:
            t.join()
        assert outcomes == ["OK", "OK"]
        assert server.metrics.batch_size.count() == 1  # one batch of two frames
        with pytest.raises(grpc.RpcError) as err:
            stub.Detect(pb.DetectRequest(frames=[frame]), timeout=0.1)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        time.sleep(1.2)
        assert server.metrics.batch_size.count() == 1  # the expired request never reached the model


def test_metrics_endpoint(server, stub) -> None:
    stub.Detect(pb.DetectRequest(frames=[pb.Frame(id="m", encoded=png(scene_frames(1)[0][0]))]), timeout=5)
    text = urllib.request.urlopen(f"http://127.0.0.1:{server[0].metrics_port}/metrics", timeout=5).read().decode()
    assert 'bugdet_requests_total{code="OK",method="Detect"}' in text
    assert 'bugdet_requests_total{code="INVALID_ARGUMENT",method="Detect"}' in text
    assert "bugdet_batch_size_bucket" in text and "bugdet_request_latency_seconds_count" in text
    assert "bugdet_queue_depth 0" in text
    assert urllib.request.urlopen(f"http://127.0.0.1:{server[0].metrics_port}/healthz", timeout=5).status == 200


def _corrupt_copy(source: Path, target: Path, version: str, truncate: bool) -> None:
    """A package with a newer version whose model file is damaged (bit flip) or half-copied."""
    staging = target.parent / f".{target.name}"
    shutil.copytree(source, staging)
    manifest = json.loads((staging / MANIFEST_NAME).read_text())
    manifest["version"] = version
    (staging / MANIFEST_NAME).write_text(json.dumps(manifest))
    data = bytearray((staging / MODEL_FILE).read_bytes())
    if truncate:
        data = data[: len(data) // 2]
    else:
        data[len(data) // 3] ^= 0x55
    (staging / MODEL_FILE).write_bytes(bytes(data))
    os.rename(staging, target)


def test_hot_reload_under_load_with_zero_failures(package_root: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    shutil.copytree(package_root / "models" / "detector-1", models / "detector-1")
    frames, _ = scene_frames(4, seed=13)
    requests = [pb.DetectRequest(frames=[pb.Frame(id=str(i), encoded=png(f))]) for i, f in enumerate(frames)]
    with running(models, max_batch=4) as (server, address):
        assert server.wait_until_serving(30)
        stub = pb_grpc.DetectionStub(grpc.insecure_channel(address))
        versions: list[str] = []
        failures: list[str] = []
        stop = threading.Event()

        def client(k: int) -> None:
            for n in range(2000):  # bounded; normally stopped much earlier
                if stop.is_set():
                    return
                try:
                    versions.append(stub.Detect(requests[(n + k) % 4], timeout=10).results[0].model_version)
                except grpc.RpcError as exc:
                    failures.append(f"{exc.code().name}: {exc.details()}")

        def streamer() -> None:
            for _ in range(200):  # bounded: streams of 40 frames until the unary clients are done
                if stop.is_set():
                    return
                try:
                    for result in stub.DetectStream(iter([pb.DetectStreamRequest(frame=requests[i % 4].frames[0]) for i in range(40)]), timeout=20):
                        if result.HasField("error"):
                            failures.append(f"stream frame: {result.error.message}")
                        else:
                            stream_versions.append(result.model_version)
                except grpc.RpcError as exc:
                    failures.append(f"stream {exc.code().name}: {exc.details()}")

        stream_versions: list[str] = []
        threads = [threading.Thread(target=client, args=(k,)) for k in range(5)] + [threading.Thread(target=streamer)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (len(versions) < 20 or "1" not in stream_versions):
            time.sleep(0.02)  # both kinds of traffic are flowing before the new package appears
        _corrupt_copy(package_root / "staged" / "detector-2", models / "detector-3", "3", truncate=False)
        _corrupt_copy(package_root / "staged" / "detector-2", models / "detector-4", "4", truncate=True)
        shutil.copytree(package_root / "staged" / "detector-2", models / ".detector-2.tmp")
        os.rename(models / ".detector-2.tmp", models / "detector-2")  # published atomically, as export does
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (versions.count("2") < 50 or "2" not in stream_versions):
            time.sleep(0.05)
        stop.set()
        for t in threads:
            t.join()
        assert failures == []
        assert versions[0] == "1" and versions.count("2") >= 50
        assert "3" not in versions and "4" not in versions
        assert set(stream_versions) == {"1", "2"}  # the stream crossed the reload too
        assert versions.index("2") > 0 and "1" not in versions[versions.index("2") + 5 * 2 :]  # switched, stayed switched
        report = stub.ReloadModels(pb.ReloadModelsRequest(), timeout=10)
        assert list(report.serving) == ["detector-2"]
        assert server.registry.refusals >= 2
        scores, _ = reference(models / "detector-2", frames[:1])
        got = stub.Detect(requests[0], timeout=5).results[0]
        np.testing.assert_allclose([s.score for s in got.scores], scores[0], atol=1e-5)


def _openssl(*args: str, cwd: Path) -> None:
    import subprocess

    assert shutil.which("openssl"), "the TLS test needs the openssl command line tool"
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _make_pki(directory: Path) -> None:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
             "-subj", "/CN=bugdet test CA", cwd=directory)
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN={name}", cwd=directory)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.pem", "-days", "1", "-extfile", "san.ext", cwd=directory)


def test_tls_and_mutual_tls(package_root: Path, tmp_path: Path) -> None:
    from service.config import TlsConfig

    _make_pki(tmp_path)
    ca = (tmp_path / "ca.pem").read_bytes()
    request = pb.ModelInfoRequest()
    tls = TlsConfig(cert=tmp_path / "server.pem", key=tmp_path / "server.key", client_ca=tmp_path / "ca.pem")
    with running(package_root / "models", tls=tls) as (server, address):
        assert server.wait_until_serving(30)
        with_cert = grpc.ssl_channel_credentials(ca, (tmp_path / "client.key").read_bytes(), (tmp_path / "client.pem").read_bytes())
        assert pb_grpc.DetectionStub(grpc.secure_channel(address, with_cert)).GetModelInfo(request, timeout=10).version == "1"
        for channel in (grpc.secure_channel(address, grpc.ssl_channel_credentials(ca)), grpc.insecure_channel(address)):
            with pytest.raises(grpc.RpcError) as err:  # no client certificate / no TLS at all
                pb_grpc.DetectionStub(channel).GetModelInfo(request, timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_cancelled_stream_releases_its_threads(stub) -> None:
    frame = pb.Frame(encoded=png(scene_frames(1)[0][0]))
    stop = threading.Event()
    baseline = threading.active_count()

    def endless():
        for i in range(100000):  # bounded; the client cancels long before
            if stop.is_set():
                return
            yield pb.DetectStreamRequest(frame=pb.Frame(id=str(i), encoded=frame.encoded))

    call = stub.DetectStream(endless(), timeout=30)
    received = [next(call) for _ in range(40)]  # more than the stream window: the server is reading
    call.cancel()
    stop.set()
    assert len({r.id for r in received}) == 40
    deadline = time.monotonic() + 5
    while threading.active_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= baseline
    assert stub.Detect(pb.DetectRequest(frames=[frame]), timeout=5).results  # and the server goes on
