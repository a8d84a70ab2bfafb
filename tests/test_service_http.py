"""KServe v2 over HTTP/REST (``--http-port``), driven by the unmodified ``tritonclient.http``.

A real server with a real exported package, its HTTP front end on an ephemeral port. tritonclient's
HTTP client does not load the ``inference`` protos, so it runs in process. Covers health and
readiness (without the token), metadata and configuration, inference with JSON tensors and with the
binary-data extension (and gzip request bodies), scores equal to in-process onnxruntime, statistics,
the repository index and explicit unload/load, and every error's HTTP status.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

triton_http = pytest.importorskip("tritonclient.http", reason="tritonclient[http] is a dev dependency")
from tritonclient.utils import InferenceServerException  # noqa: E402

from service.frames import fit_to_input  # noqa: E402
from service.runtime import new_session  # noqa: E402
from test_export import make_package, scene_frames, trained_detector  # noqa: E402
from test_service import running  # noqa: E402

TOKEN = "tok"


def auth() -> dict[str, str]:
    """A fresh header dict per call: tritonclient.http writes Inference-Header-Content-Length into
    the dict it is given, which would then ride along on the next request."""
    return {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> Path:
    """detector-1 and a newer detector-2 (another training run): version 2 is served."""
    root = tmp_path_factory.mktemp("http") / "models"
    make_package(root, version="1", detector=trained_detector(steps=10, seed=1))
    time.sleep(0.01)  # created_at orders the versions
    make_package(root, version="2")
    return root


@pytest.fixture(scope="module")
def server(packages: Path):
    with running(packages, token=TOKEN, http_port=0) as (server, _):
        assert server.wait_until_serving(30)
        yield server


@pytest.fixture(scope="module")
def client(server) -> triton_http.InferenceServerClient:
    client = triton_http.InferenceServerClient(url=f"127.0.0.1:{server.http_port}")
    yield client
    client.close()


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    shots, _ = scene_frames(4, seed=41)
    return np.stack([fit_to_input(f, 64, 64) for f in shots])


@pytest.fixture(scope="module")
def reference(packages: Path, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return tuple(new_session(str(packages / "detector-2" / "model.onnx"), "cpu").run(None, {"images": frames}))


def images(batch: np.ndarray, binary: bool = True):
    tensor = triton_http.InferInput("images", list(batch.shape), "UINT8")
    tensor.set_data_from_numpy(batch, binary_data=binary)
    return tensor


def raw(server, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """One plain HTTP request (what an engine's HTTP module would send): status, headers, body."""
    request = urllib.request.Request(f"http://127.0.0.1:{server.http_port}{path}", data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_health_and_readiness_need_no_token_everything_else_does(server, client) -> None:
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("detector") and client.is_model_ready("detector", "2")
    assert not client.is_model_ready("detector", "1") and not client.is_model_ready("nope")
    with pytest.raises(InferenceServerException) as missing:
        client.get_server_metadata()
    assert missing.value.status() == "401" and "Bearer" in missing.value.message()
    with pytest.raises(InferenceServerException) as wrong:
        client.get_model_metadata("detector", headers={"Authorization": "Bearer nope"})
    assert wrong.value.status() == "401"
    metadata = client.get_server_metadata(headers=auth())
    assert metadata["name"] == "bugdet" and "binary_tensor_data" in metadata["extensions"]


def test_metadata_and_config(client) -> None:
    metadata = client.get_model_metadata("detector", headers=auth())
    assert metadata["versions"] == ["2"] and metadata["platform"] == "onnxruntime_onnx"
    assert metadata["inputs"] == [{"name": "images", "datatype": "UINT8", "shape": [-1, 64, 64, 3]}]
    assert metadata["outputs"] == [{"name": "scores", "datatype": "FP32", "shape": [-1, 2]},
                                   {"name": "heatmaps", "datatype": "FP32", "shape": [-1, 2, 8, 8]}]
    config = client.get_model_config("detector", headers=auth())
    assert config["max_batch_size"] == 64 and config["input"][0]["dims"] == [64, 64, 3]
    assert config["input"][0]["data_type"] == "TYPE_UINT8" and config["output"][1]["dims"] == [2, 8, 8]
    assert config["dynamic_batching"] == {"preferred_batch_size": [8], "max_queue_delay_microseconds": 0}
    assert config["version_policy"] == {"latest": {"num_versions": 1}}
    assert client.get_model_config("detector", "2", headers=auth()) == config


def test_infer_binary_and_json_tensors_equal_in_process_onnxruntime(client, frames, reference) -> None:
    scores, heatmaps = reference
    binary = client.infer("detector", [images(frames)], headers=auth(), request_id="b-1",
                          outputs=[triton_http.InferRequestedOutput("scores", binary_data=True),
                                   triton_http.InferRequestedOutput("heatmaps", binary_data=True)])
    assert binary.get_response()["id"] == "b-1" and binary.get_response()["model_version"] == "2"
    assert all("binary_data_size" in o["parameters"] for o in binary.get_response()["outputs"])
    np.testing.assert_allclose(binary.as_numpy("scores"), scores, atol=1e-5)
    np.testing.assert_allclose(binary.as_numpy("heatmaps"), heatmaps, atol=1e-5)

    as_json = client.infer("detector", [images(frames[1:3], binary=False)], headers=auth(),
                           outputs=[triton_http.InferRequestedOutput("scores", binary_data=False)])
    outputs = as_json.get_response()["outputs"]
    assert [o["name"] for o in outputs] == ["scores"] and "data" in outputs[0]
    np.testing.assert_allclose(as_json.as_numpy("scores"), scores[1:3], atol=1e-5)

    everything = client.infer("detector", [images(frames[:1])], headers=auth(), request_compression_algorithm="gzip")
    np.testing.assert_allclose(everything.as_numpy("scores"), scores[:1], atol=1e-5)  # no outputs named: all, binary
    np.testing.assert_allclose(everything.as_numpy("heatmaps"), heatmaps[:1], atol=1e-5)


def test_plain_json_request_as_an_engine_would_send_it(server, frames, reference) -> None:
    body = json.dumps({"id": "curl", "inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 64, 64, 3],
                                                 "data": frames[3].tolist()}],  # nested lists are fine
                       "outputs": [{"name": "scores"}]}).encode()
    status, headers, payload = raw(server, "POST", "/v2/models/detector/versions/2/infer", body,
                                   {**auth(), "Content-Type": "application/json"})
    assert status == 200 and headers["Content-Type"] == "application/json"
    answer = json.loads(payload)
    assert answer["id"] == "curl" and answer["outputs"][0]["shape"] == [1, 2]
    np.testing.assert_allclose(answer["outputs"][0]["data"], reference[0][3], atol=1e-5)


def test_errors_map_to_http_status_codes(server, client, frames) -> None:
    cases = {
        "unknown model": (lambda: client.infer("nope", [images(frames[:1])], headers=auth()), "404", "nope"),
        "unserved version": (lambda: client.infer("detector", [images(frames[:1])], model_version="1", headers=auth()), "404", "version"),
        "wrong shape": (lambda: client.infer("detector", [images(np.zeros((1, 8, 8, 3), np.uint8))], headers=auth()), "400", "[N, 64, 64, 3]"),
        "wrong datatype": (lambda: client.infer("detector", [_float_images()], headers=auth()), "400", "UINT8"),
        "unknown output": (lambda: client.infer("detector", [images(frames[:1])], headers=auth(),
                                                outputs=[triton_http.InferRequestedOutput("boxes")]), "400", "boxes"),
        "no token": (lambda: client.infer("detector", [images(frames[:1])]), "401", "Bearer"),
    }
    for label, (call, status, words) in cases.items():
        with pytest.raises(InferenceServerException) as error:
            call()
        assert (error.value.status(), words in error.value.message()) == (status, True), (label, error.value.message())

    def post(path: str, body: bytes, extra: dict | None = None) -> tuple[int, str]:
        status, _, payload = raw(server, "POST", path, body, {**auth(), **(extra or {})})
        return status, json.loads(payload)["error"] if payload else ""

    assert post("/v2/models/detector/infer", b"{not json")[0] == 400
    assert post("/v2/models/detector/infer", b'{"inputs": []}')[0] == 400
    header = json.dumps({"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 64, 64, 3],
                                     "parameters": {"binary_data_size": 64 * 64 * 3}}]}).encode()
    short = post("/v2/models/detector/infer", header + bytes(100), {"Inference-Header-Content-Length": str(len(header))})
    assert short[0] == 400 and "binary_data_size" in short[1]
    extra = post("/v2/models/detector/infer", header + bytes(64 * 64 * 3 + 5), {"Inference-Header-Content-Length": str(len(header))})
    assert extra[0] == 400 and "unclaimed" in extra[1]
    assert post("/v2/models/detector/infer", header, {"Inference-Header-Content-Length": "99999"})[0] == 400
    assert post("/v2/models/detector/infer", b"x", {"Content-Encoding": "br"})[0] == 415
    assert raw(server, "GET", "/v2/models/detector/infer", headers=auth())[0] == 405
    assert raw(server, "GET", "/v3/anything", headers=auth())[0] == 404
    assert client.is_server_live()  # the server is unharmed


def _float_images():
    tensor = triton_http.InferInput("images", [1, 64, 64, 3], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 64, 64, 3), np.float32))
    return tensor


def test_body_above_the_message_limit_is_413(packages: Path) -> None:
    with running(packages, http_port=0, max_message_bytes=1 << 16) as (server, _):
        assert server.wait_until_serving(30)
        status, _, payload = raw(server, "POST", "/v2/models/detector/infer", bytes(1 << 17))
        assert status == 413 and b"limit" in payload


def test_queue_refusal_is_retryable(packages: Path, frames) -> None:
    """A refused request (batcher full or shutting down) is 429/503 with Retry-After, never 500."""
    with running(packages, http_port=0, max_queue_delay_ms=1.0) as (server, _):
        assert server.wait_until_serving(30)
        server.batcher.stop()  # a stopped batcher refuses every request: the queue-full path
        client = triton_http.InferenceServerClient(url=f"127.0.0.1:{server.http_port}")
        with pytest.raises(InferenceServerException) as refused:
            client.infer("detector", [images(frames[:1])])
        assert refused.value.status() in ("429", "503")
        status, headers, _ = raw(server, "POST", "/v2/models/detector/infer", json.dumps(
            {"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 64, 64, 3], "data": frames[0].ravel().tolist()}]}).encode())
        assert status in (429, 503) and headers.get("Retry-After") == "1"
        client.close()


def test_statistics_follow_the_requests(client, frames) -> None:
    def stats():
        (row,) = client.get_inference_statistics("detector", headers=auth())["model_stats"]
        return row

    before = stats()
    for n in (1, 2, 3):
        client.infer("detector", [images(frames[:n])], headers=auth())
    with pytest.raises(InferenceServerException):
        client.infer("detector", [images(np.zeros((1, 8, 8, 3), np.uint8))], headers=auth())
    after = stats()
    assert after["version"] == "2"
    assert after["inference_stats"]["success"]["count"] - before["inference_stats"]["success"]["count"] == 3
    assert after["inference_count"] - before["inference_count"] == 6
    assert after["inference_stats"]["fail"]["count"] - before["inference_stats"]["fail"]["count"] == 1
    assert after["execution_count"] - before["execution_count"] == 3  # sequential requests: one run each
    for phase in ("queue", "compute_input", "compute_infer", "compute_output"):
        assert after["inference_stats"][phase]["count"] == after["inference_stats"]["success"]["count"]
    assert after["inference_stats"]["compute_infer"]["ns"] > before["inference_stats"]["compute_infer"]["ns"]
    everything = client.get_inference_statistics(headers=auth())["model_stats"]
    assert [(s["name"], s["version"]) for s in everything] == [("detector", "2")]
    with pytest.raises(InferenceServerException) as unknown:
        client.get_inference_statistics("nope", headers=auth())
    assert unknown.value.status() == "404"


def test_repository_index_unload_and_load(packages: Path, frames, reference) -> None:
    with running(packages, http_port=0) as (server, _):
        assert server.wait_until_serving(30)
        client = triton_http.InferenceServerClient(url=f"127.0.0.1:{server.http_port}")
        assert client.get_model_repository_index() == [
            {"name": "detector", "version": "2", "state": "READY"},
            {"name": "detector", "version": "1", "state": "UNAVAILABLE", "reason": "version 2 is served"},
        ]
        client.unload_model("detector")
        assert not client.is_model_ready("detector") and not client.is_server_ready()
        assert raw(server, "GET", "/v2/health/ready")[0] == 503
        with pytest.raises(InferenceServerException) as gone:
            client.infer("detector", [images(frames[:1])])
        assert gone.value.status() == "404" and "unloaded" in gone.value.message()
        server.registry.scan()  # what the watcher does every poll: the model stays unloaded
        assert not client.is_model_ready("detector")
        assert {e["state"] for e in client.get_model_repository_index()} == {"UNAVAILABLE"}
        assert _ready_index(server) == []
        with pytest.raises(InferenceServerException) as unknown:
            client.load_model("nope")
        assert unknown.value.status() == "404"
        client.load_model("detector")
        assert client.is_model_ready("detector") and client.is_server_ready()
        result = client.infer("detector", [images(frames[:2])])
        np.testing.assert_allclose(result.as_numpy("scores"), reference[0][:2], atol=1e-5)
        assert _ready_index(server) == [{"name": "detector", "version": "2", "state": "READY"}]
        client.close()


def _ready_index(server) -> list:
    """POST /v2/repository/index with {"ready": true} (tritonclient sends no body, so by hand)."""
    status, _, payload = raw(server, "POST", "/v2/repository/index", json.dumps({"ready": True}).encode())
    assert status == 200
    return json.loads(payload)
