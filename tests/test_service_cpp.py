"""The C++ client in tools/cpp_client, built with CMake against Debian's gRPC C++, sends a padded
raw RGBA frame to the service and must print what in-process onnxruntime computes.

Needs ``cmake``, ``protoc``, ``grpc_cpp_plugin`` and pkg-config's ``grpc++`` (Debian:
``apt-get install -y libgrpc++-dev protobuf-compiler-grpc cmake``); skips, saying which is
missing, without them. The build (~1 minute) is cached under ~/.cache/bugdet-tests by a hash of
the client's sources and the proto, so later runs only run it.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from service.frames import decode_raw, fit_to_input
from service.runtime import new_session
from test_export import make_package
from test_service import running

REPO = Path(__file__).resolve().parent.parent
SOURCES = [REPO / "tools/cpp_client/CMakeLists.txt", REPO / "tools/cpp_client/main.cc", REPO / "protos/bugdet_api/v1/detection.proto"]


def missing_toolchain() -> list[str]:
    missing = [tool for tool in ("cmake", "protoc", "grpc_cpp_plugin", "pkg-config", "c++") if not shutil.which(tool)]
    if shutil.which("pkg-config") and subprocess.run(["pkg-config", "--exists", "grpc++"]).returncode != 0:
        missing.append("grpc++ (libgrpc++-dev)")
    return missing


def build_client() -> Path:
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in SOURCES)).hexdigest()[:16]
    build = Path.home() / ".cache" / "bugdet-tests" / f"cpp_client-{digest}"
    binary = build / "bugdet_detect_client"
    if not binary.is_file():
        subprocess.run(["cmake", "-S", str(REPO / "tools/cpp_client"), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"],
                       check=True, capture_output=True, timeout=300)
        subprocess.run(["cmake", "--build", str(build), "-j2"], check=True, capture_output=True, timeout=600)
    return binary


def test_cpp_client_detects_a_raw_rgba_frame(tmp_path: Path) -> None:
    missing = missing_toolchain()
    if missing:
        pytest.skip("C++ toolchain absent: " + ", ".join(missing) + " (apt-get install -y libgrpc++-dev protobuf-compiler-grpc cmake)")
    binary = build_client()
    package = make_package(tmp_path / "models", version="9")
    rng = np.random.default_rng(3)
    width, height = 100, 70  # 400-byte rows: the client pads them to a 512-byte stride
    rgba = rng.integers(0, 255, (height, width, 4), dtype=np.uint8)
    (tmp_path / "frame.rgba").write_bytes(rgba.tobytes())
    with running(tmp_path / "models", token="cpp") as (server, address):
        assert server.wait_until_serving(30)
        result = subprocess.run([str(binary), address, str(width), str(height), str(tmp_path / "frame.rgba"), "--token", "cpp"],
                                capture_output=True, text=True, timeout=60)
        denied = subprocess.run([str(binary), address, str(width), str(height)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = [dict(kv.split("=", 1) for kv in line.split()) for line in result.stdout.splitlines()]
    assert lines[-1]["frame"] == "cpp-frame-0" and lines[-1]["version"] == "9" and lines[-1]["stride"] == "512"
    rgb = decode_raw(rgba.tobytes(), width, height, 0, "RGBA8")
    scores, _ = new_session(str(package / "model.onnx"), "cpu").run(None, {"images": fit_to_input(rgb, 64, 64)[None]})
    got = {line["bug_type"]: float(line["score"]) for line in lines[:-1]}
    assert list(got) == ["missing_texture", "black_hole"]
    np.testing.assert_allclose(list(got.values()), scores[0], atol=1e-4)
    assert denied.returncode == 1 and "Detect failed: 16 " in denied.stderr and "Bearer" in denied.stderr  # 16 = UNAUTHENTICATED
