"""Runs the OpenArena client headless under ``xvfb-run``, bounded in time, always cleaned up.

The game is a real ioquake3 client: it needs an X display (Xvfb) and renders with Mesa's
llvmpipe on the CPU. Every run gets its own ``fs_homepath`` (config, demos, videos, override
pk3s) so runs never see each other's files or the user's ``~/.openarena``. The engine reads
console commands from stdin and prints its console to stdout, which is how a recording is driven.
The game and Xvfb run in their own process group, killed on timeout, error or exit.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bugdet.errors import ConfigError, InputError

GAME_PATHS = ("/usr/games/openarena",)
APT_HINT = "install the Debian packages: apt-get install openarena xvfb"
#: ``xvfb-run -a`` picks the first display without a lock file; two runs starting at once can
#: pick the same one. Starts are serialised until the game prints (its X server is up by then).
_START_LOCK = threading.Lock()


@dataclass(frozen=True)
class Engine:
    """Where the game and the X server wrapper are."""

    game: str
    xvfb_run: str
    basepath: Path = Path("/usr/lib/openarena")


def find_engine() -> Engine:
    """The installed game and ``xvfb-run``, or a one-line error naming the apt packages."""
    game = shutil.which("openarena") or next((p for p in GAME_PATHS if os.access(p, os.X_OK)), None)
    xvfb = shutil.which("xvfb-run")
    missing = [name for name, path in (("openarena", game), ("xvfb-run", xvfb)) if path is None]
    if missing:
        raise ConfigError(f"{' and '.join(missing)} not found: {APT_HINT}")
    return Engine(game=str(game), xvfb_run=str(xvfb))


def base_cvars(home: Path, width: int, height: int) -> list[str]:
    """Command-line settings every run shares: private homepath, window size, no sound, renderer.

    ``opengl1`` is the classic renderer (the one the bugs were checked with, and faster on
    llvmpipe than ``opengl2``). Two HUD elements follow the wall clock and would differ between
    replays of one demo: the animated 3D status-bar head (``cg_draw3dIcons 0`` draws it as a 2D
    icon) and the lagometer, which plots frame and network timing (``cg_lagometer 0``).
    """
    settings = {
        "fs_homepath": str(home), "cl_renderer": "opengl1", "r_mode": "-1", "r_customwidth": str(width),
        "r_customheight": str(height), "r_fullscreen": "0", "s_initsound": "0", "in_nograb": "1",
        "cl_motd": "0", "cg_draw3dIcons": "0", "cg_lagometer": "0", "com_introplayed": "1", "r_swapInterval": "0",
    }
    args: list[str] = []
    for name, value in settings.items():
        args += ["+set", name, value]
    return args


@dataclass
class GameProcess:
    """One running game: send console lines, wait for console output, always killed at the end."""

    engine: Engine
    args: Sequence[str]
    log_path: Path
    screen: str = "640x480x24"
    env: dict[str, str] | None = None  # the environment of the game (None: this process's)
    proc: subprocess.Popen | None = None
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    _talking: threading.Event = field(default_factory=threading.Event)

    def start(self, timeout: float = 30.0) -> GameProcess:
        cmd = [self.engine.xvfb_run, "-a", "-s", f"-screen 0 {self.screen}", self.engine.game, *self.args]
        with _START_LOCK:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         start_new_session=True, text=True, errors="replace", bufsize=1,
                                         env=self.env)
            threading.Thread(target=self._pump, daemon=True).start()
            self._talking.wait(timeout)
        return self

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        with open(self.log_path, "w", encoding="utf-8") as log:
            for line in self.proc.stdout:
                log.write(line)
                self.lines.put(line)
                self._talking.set()
        self._talking.set()
        self.lines.put(None)

    def send(self, command: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise InputError(f"the game exited early; see {self.log_path}") from None

    def wait_for(self, pattern: str, timeout: float) -> str:
        """The first console line matching ``pattern`` within ``timeout`` seconds."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise InputError(f"the game did not print {pattern!r} within {timeout:.0f} s; see {self.log_path}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise InputError(f"the game exited before printing {pattern!r}; see {self.log_path}")
            if regex.search(line):
                return line

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise InputError(f"the game ran longer than {timeout:.0f} s and was stopped; see {self.log_path}") from None

    def kill(self) -> None:
        """Ends the game and its Xvfb. The game and X server get TERM first, so that
        ``xvfb-run`` sees its command end, reaps both and exits (killing ``xvfb-run`` first would
        orphan them); whatever is left of the process group after 3 s gets KILL."""
        proc = self.proc
        if proc is None:
            return
        for pid in _live_group_members(proc.pid):
            if pid != proc.pid:
                _signal(pid, signal.SIGTERM)
        if _wait_group_gone(proc, 3.0):
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _wait_group_gone(proc, 5.0)

    def __enter__(self) -> GameProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.kill()
        if self.proc is not None and self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass


def _wait_group_gone(proc: subprocess.Popen, timeout: float) -> bool:
    """Reaps ``proc`` and waits until nothing of its process group runs; False on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        proc.poll()
        if proc.returncode is not None and not _live_group_members(proc.pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _live_group_members(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that have not exited (zombies left out), from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members
