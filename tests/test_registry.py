"""The versioned model registry and the service following its champion alias.

Real packages (small from-scratch detectors exported to ONNX), the service's real registry scan
and the real in-process gRPC server: promotion, rollback to an older version, refusal of a
corrupt version (the champion keeps serving), and the CLI.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner

from bugdet.cli import app
from bugdet.errors import InputError
from bugdet.registry import Registry
from service import protos
from service.config import ServerConfig
from service.model_package import ALIAS_FORMAT, ALIAS_NAME, MODEL_FILE
from service.registry import ModelRegistry
from service.server import DetectionServer

from test_export import make_package, small_detector

pb, pb_grpc = protos.detection()


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> dict[str, Path]:
    """Three exported versions of model "detector", built once; tests copy them."""
    root = tmp_path_factory.mktemp("packages")
    return {v: make_package(root, version=v, detector=small_detector()) for v in ("1", "2", "3")}


def registry_with(tmp_path: Path, packages: dict[str, Path], versions=("1", "2", "3")) -> Registry:
    import shutil

    reg = Registry(tmp_path / "registry")
    for v in versions:
        shutil.copytree(packages[v], reg.package_dir("detector", v))
    return reg


def corrupt(package: Path) -> None:
    data = bytearray((package / MODEL_FILE).read_bytes())
    data[len(data) // 3] ^= 0x55
    (package / MODEL_FILE).write_bytes(bytes(data))


def test_promote_rollback_and_history(tmp_path: Path, packages) -> None:
    reg = registry_with(tmp_path, packages)
    assert reg.models() == ["detector"]
    assert [v.version for v in reg.versions("detector")] == ["1", "2", "3"]
    assert reg.champion("detector") is None
    with pytest.raises(InputError, match="no champion"):
        reg.rollback("detector")

    reg.promote("detector", "1", reason="first")
    reg.promote("detector", "1", reason="again")  # idempotent: no second history event
    reg.promote("detector", "3", reason="better")
    assert reg.champion("detector").version == "3"
    alias = json.loads((reg.model_dir("detector") / ALIAS_NAME).read_text())
    assert alias["format"] == ALIAS_FORMAT and alias["package"] == "versions/detector-3"

    assert reg.rollback("detector").version == "1"
    assert reg.rollback("detector", "2").version == "2"
    events = [(e["action"], e["previous"], e["version"]) for e in reg.history("detector")]
    assert events == [("promote", None, "1"), ("promote", "1", "3"), ("rollback", "3", "1"), ("rollback", "1", "2")]
    assert not list(reg.model_dir("detector").glob(".*.tmp"))  # atomic writes leave no temp files


def test_corrupt_or_foreign_version_is_never_promoted(tmp_path: Path, packages) -> None:
    reg = registry_with(tmp_path, packages)
    reg.promote("detector", "1")
    corrupt(reg.package_dir("detector", "2"))
    with pytest.raises(InputError, match="sha256"):
        reg.promote("detector", "2")
    with pytest.raises(InputError, match="no manifest"):
        reg.promote("detector", "9")
    with pytest.raises(InputError, match="letters, digits"):
        reg.promote("../etc", "1")
    assert reg.champion("detector").version == "1"
    assert [e["version"] for e in reg.history("detector")] == ["1"]


def test_service_serves_the_champion_not_the_newest_and_follows_switches(tmp_path: Path, packages) -> None:
    reg = registry_with(tmp_path, packages)
    served = ModelRegistry(reg.root, device="cpu")
    assert served.scan().serving == []  # versions alone are not served: no champion yet

    reg.promote("detector", "1")
    assert served.scan().serving == ["detector-1"]  # although 2 and 3 are newer
    reg.promote("detector", "3")
    assert served.scan().serving == ["detector-3"]
    reg.rollback("detector")
    assert served.scan().serving == ["detector-1"]  # an older version, because the alias says so

    # A corrupt publish: the alias names a damaged package. It is refused; version 1 keeps serving.
    corrupt(reg.package_dir("detector", "2"))
    alias = json.loads((reg.model_dir("detector") / ALIAS_NAME).read_text())
    (reg.model_dir("detector") / ALIAS_NAME).write_text(json.dumps({**alias, "version": "2", "package": "versions/detector-2"}))
    report = served.scan()
    assert report.serving == ["detector-1"] and any("sha256" in r for r in report.refused)
    assert served.scan().refused == []  # remembered, not retried every poll
    # An alias pointing outside the model directory is refused too.
    (reg.model_dir("detector") / ALIAS_NAME).write_text(json.dumps({**alias, "package": "../../elsewhere"}))
    assert served.scan().serving == ["detector-1"]

    # The service can also watch one model directory directly.
    reg.promote("detector", "3")
    assert ModelRegistry(reg.model_dir("detector"), device="cpu").scan().serving == ["detector-3"]


def test_grpc_server_hot_reloads_a_promotion(tmp_path: Path, packages) -> None:
    reg = registry_with(tmp_path, packages, versions=("1", "2"))
    reg.promote("detector", "2")
    server = DetectionServer(ServerConfig(models_dir=reg.root, port=0, poll_s=0.2))
    port = server.start()
    try:
        assert server.wait_until_serving(30)
        stub = pb_grpc.DetectionStub(grpc.insecure_channel(f"127.0.0.1:{port}"))
        assert stub.GetModelInfo(pb.ModelInfoRequest(), timeout=5).version == "2"
        reg.rollback("detector", "1")
        deadline = time.monotonic() + 20
        version = "2"
        while time.monotonic() < deadline and version != "1":
            time.sleep(0.1)
            version = stub.GetModelInfo(pb.ModelInfoRequest(), timeout=5).version
        assert version == "1"
    finally:
        server.stop(grace=0.5)


def test_registry_cli(tmp_path: Path, packages) -> None:
    reg = registry_with(tmp_path, packages, versions=("1", "2"))
    runner = CliRunner()
    root = str(reg.root)
    result = runner.invoke(app, ["registry", "promote", "detector", "2", "--registry", root], catch_exceptions=False)
    assert result.exit_code == 0
    assert reg.champion("detector").version == "2"
    listing = runner.invoke(app, ["registry", "list", "--registry", root], catch_exceptions=False)
    assert listing.exit_code == 0 and "* 2" in listing.output and "champion: 2" in listing.output
    assert runner.invoke(app, ["registry", "promote", "detector", "1", "-r", root]).exit_code == 0
    assert runner.invoke(app, ["registry", "rollback", "detector", "-r", root]).exit_code == 0
    assert reg.champion("detector").version == "2"
    history = runner.invoke(app, ["registry", "history", "detector", "-r", root])
    assert "1 -> 2" in history.output and "rollback" in history.output
