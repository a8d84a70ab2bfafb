"""The Open Inference Protocol (KServe v2) endpoint, driven by the real ``tritonclient[grpc]``.

tritonclient ships its own compiled ``inference`` protos, which clash with ours in one process, and
it pins protobuf < 7 while grpcio-tools here needs >= 7; so it is installed (``--no-deps``, its
stubs run fine on protobuf 7) into a cache directory of its own and run in a subprocess with the
test's interpreter. Set BUGDET_TRITONCLIENT_DIR to point at a prepared directory (CI can install it
once, offline runs must).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from service.frames import fit_to_input
from service.runtime import new_session
from test_export import make_package, scene_frames
from test_service import running

TRITONCLIENT = ("tritonclient[grpc]==2.73.0", "python-rapidjson==1.25")


def tritonclient_site() -> Path:
    """A directory from which ``import tritonclient.grpc`` works; installed on first use."""
    site = Path(os.environ.get("BUGDET_TRITONCLIENT_DIR", Path.home() / ".cache" / "bugdet-tests" / "tritonclient"))
    probe = [sys.executable, "-c", "import tritonclient.grpc"]
    env = {**os.environ, "PYTHONPATH": str(site)}
    if subprocess.run(probe, env=env, capture_output=True).returncode != 0:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), *TRITONCLIENT],
                       check=True, capture_output=True, timeout=300)
    return site


CLIENT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tritonclient.grpc as triton
    from tritonclient.utils import InferenceServerException

    url, frames_path, token = sys.argv[1], sys.argv[2], sys.argv[3]
    headers = {"authorization": f"Bearer {token}"}
    client = triton.InferenceServerClient(url=url)
    out = {"live": client.is_server_live(headers=headers), "ready": client.is_server_ready(headers=headers),
           "model_ready": client.is_model_ready("detector", headers=headers),
           "other_ready": client.is_model_ready("nope", headers=headers)}
    meta = client.get_model_metadata("detector", headers=headers, as_json=True)
    out["metadata"] = {"inputs": meta["inputs"], "outputs": meta["outputs"], "versions": meta["versions"]}
    out["server"] = client.get_server_metadata(headers=headers, as_json=True)["name"]
    frames = np.load(frames_path)
    images = triton.InferInput("images", list(frames.shape), "UINT8")
    images.set_data_from_numpy(frames)
    result = client.infer("detector", [images], outputs=[triton.InferRequestedOutput("scores"),
                                                         triton.InferRequestedOutput("heatmaps")], headers=headers)
    out["scores"] = result.as_numpy("scores").tolist()
    out["heatmaps_shape"] = list(result.as_numpy("heatmaps").shape)
    out["heatmaps"] = result.as_numpy("heatmaps").ravel().tolist()
    errors = {}
    for label, call in {
        "unknown_model": lambda: client.infer("nope", [images], headers=headers),
        "no_token": lambda: client.infer("detector", [images]),
    }.items():
        try:
            call()
            errors[label] = "no error"
        except InferenceServerException as exc:
            errors[label] = [exc.status(), exc.message()]
    bad = triton.InferInput("images", [1, 32, 32, 3], "UINT8")
    bad.set_data_from_numpy(np.zeros((1, 32, 32, 3), np.uint8))
    try:
        client.infer("detector", [bad], headers=headers)
        errors["wrong_shape"] = "no error"
    except InferenceServerException as exc:
        errors["wrong_shape"] = [exc.status(), exc.message()]
    out["errors"] = errors
    print(json.dumps(out))
    """
)


def test_tritonclient_talks_to_the_service_unchanged(tmp_path: Path) -> None:
    site = tritonclient_site()
    package = make_package(tmp_path / "models", version="5")
    frames, _ = scene_frames(3, seed=21)
    batch = np.stack([fit_to_input(f, 64, 64) for f in frames])
    np.save(tmp_path / "frames.npy", batch)
    (tmp_path / "client.py").write_text(CLIENT)
    with running(tmp_path / "models", token="tok") as (server, address):
        assert server.wait_until_serving(30)
        env = {**os.environ, "PYTHONPATH": str(site)}
        proc = subprocess.run([sys.executable, str(tmp_path / "client.py"), address, str(tmp_path / "frames.npy"), "tok"],
                              env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (out["live"], out["ready"], out["model_ready"], out["other_ready"]) == (True, True, True, False)
    assert out["server"] == "bugdet"
    assert out["metadata"]["versions"] == ["5"]
    assert out["metadata"]["inputs"] == [{"name": "images", "datatype": "UINT8", "shape": ["-1", "64", "64", "3"]}]
    assert [o["name"] for o in out["metadata"]["outputs"]] == ["scores", "heatmaps"]
    scores, heatmaps = new_session(str(package / "model.onnx"), "cpu").run(None, {"images": batch})
    np.testing.assert_allclose(np.array(out["scores"]), scores, atol=1e-5)
    assert out["heatmaps_shape"] == [3, 2, 8, 8]
    np.testing.assert_allclose(np.array(out["heatmaps"]).reshape(3, 2, 8, 8), heatmaps, atol=1e-5)
    assert out["errors"]["unknown_model"][0] == "StatusCode.NOT_FOUND"
    assert out["errors"]["no_token"][0] == "StatusCode.UNAUTHENTICATED"
    assert out["errors"]["wrong_shape"][0] == "StatusCode.INVALID_ARGUMENT"
    assert "[N, 64, 64, 3]" in out["errors"]["wrong_shape"][1]
