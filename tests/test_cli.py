"""The ``bugdet`` command as a user runs it: one clear line and a non-zero exit for user errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import moving_frames, write_video


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bugdet", *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and fragment in errors[0], result.stderr


def test_help_lists_commands_and_version() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("init", "status", "ingest", "bench"):
        assert command in result.stdout
    assert run("ingest", "--help").returncode == 0
    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("bugdet ")


def test_init_ingest_status_round_trip(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4", moving_frames(10))
    assert run("init", str(tmp_path / "p")).returncode == 0
    result = run("ingest", str(video), "--project", str(tmp_path / "p"), "--stride", "2")
    assert result.returncode == 0, result.stderr
    assert "5 new frames" in result.stderr
    status = run("status", "-p", str(tmp_path / "p"))
    assert status.returncode == 0 and "frames: 5" in status.stderr


def test_user_errors_are_one_line(tmp_path: Path) -> None:
    assert_one_line_error(run("status", "-p", str(tmp_path / "nowhere")), "no such project directory")
    assert run("init", str(tmp_path / "p")).returncode == 0
    assert_one_line_error(run("init", str(tmp_path / "p")), "already exists")
    assert_one_line_error(run("ingest", str(tmp_path / "missing.mp4"), "-p", str(tmp_path / "p")), "missing.mp4: no such file")
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(b"not a video at all")
    assert_one_line_error(run("ingest", str(bad), "-p", str(tmp_path / "p")), "could not be ingested")
    assert_one_line_error(run("ingest", str(bad), "-p", str(tmp_path / "p"), "--set", "ingest.stride=0"),
                          "ingest.stride: Input should be greater than or equal to 1")
    (tmp_path / "p" / "bugdet.yaml").write_text("ingest:\n  strde: 2\n")
    assert_one_line_error(run("status", "-p", str(tmp_path / "p")), "ingest.strde: Extra inputs are not permitted")


def test_usage_mistakes_get_usage_not_a_traceback(tmp_path: Path) -> None:
    """An unknown option or a missing argument is the user's mistake: click's usage message and
    exit status 2, whichever click (its own or typer's vendored copy) raised it."""
    for args in (("init", str(tmp_path / "p"), "--no-such-flag"), ("init",), ("train", "--nope")):
        result = run(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert "Usage:" in result.stderr and "Error:" in result.stderr
