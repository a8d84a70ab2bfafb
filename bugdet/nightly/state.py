"""A nightly run's persisted state and the lock that keeps two runs apart.

Each run has ``STATE/runs/<run_id>/state.json``, rewritten atomically (temp file, fsync,
rename) after every step with the step's outputs and timing, so a run killed at any point is
found on the next start (``status`` not ``finished``), resumed, and the steps it finished are
not run again. ``STATE/watermarks.json`` remembers what data the last finished run had seen,
which is how a run knows whether there is anything new.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from bugdet.errors import BugdetError

WATERMARKS = "watermarks.json"
LOCK_NAME = "nightly.lock"


class NightlyBusy(BugdetError):
    """Another nightly run holds the lock."""


def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, sort_keys=False, default=str)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class RunState:
    """What one run has done so far; ``steps[name]`` = {status, outputs, seconds, ...}."""

    path: Path
    run_id: str
    status: str = "running"  # running / failed / finished
    started_at: str = ""
    attempts: int = 0
    outcome: str = ""        # promoted / not-promoted / no-new-data
    error: str = ""
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def directory(self) -> Path:
        return self.path.parent

    def done(self, step: str) -> bool:
        return self.steps.get(step, {}).get("status") in ("done", "skipped")

    def outputs(self, step: str) -> dict[str, Any]:
        return self.steps.get(step, {}).get("outputs", {})

    def record(self, step: str, status: str, outputs: dict[str, Any] | None = None, seconds: float = 0.0,
               error: str = "", reason: str = "") -> None:
        """Save a step's status; ``seconds`` add up over attempts (a resumed step's total time)."""
        entry = self.steps.setdefault(step, {})
        entry.update(status=status, outputs=outputs or {}, seconds=round(seconds + entry.get("seconds", 0.0), 3),
                     finished_at=utc_now())
        for key, value in (("error", error), ("reason", reason)):
            if value:
                entry[key] = value
            else:
                entry.pop(key, None)
        self.save()

    def save(self) -> None:
        write_json_atomic(self.path, {
            "run_id": self.run_id, "status": self.status, "started_at": self.started_at, "attempts": self.attempts,
            "outcome": self.outcome, "error": self.error, "steps": self.steps,
        })

    @classmethod
    def load(cls, path: Path) -> "RunState":
        data = read_json(path)
        return cls(path, data["run_id"], data.get("status", "running"), data.get("started_at", ""),
                   data.get("attempts", 0), data.get("outcome", ""), data.get("error", ""), data.get("steps", {}))


def runs_dir(state_dir: Path) -> Path:
    return state_dir / "runs"


def unfinished_run(state_dir: Path) -> RunState | None:
    """The newest run that neither finished nor was abandoned: the one to resume."""
    directory = runs_dir(state_dir)
    for path in sorted(directory.glob("*/state.json"), reverse=True) if directory.is_dir() else []:
        state = RunState.load(path)
        if state.status in ("running", "failed"):
            return state
    return None


def new_run(state_dir: Path) -> RunState:
    run_id = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    base, n = run_id, 1
    while (runs_dir(state_dir) / run_id).exists():  # two runs within a second (tests, manual retries)
        n += 1
        run_id = f"{base}-{n}"
    state = RunState(runs_dir(state_dir) / run_id / "state.json", run_id, started_at=utc_now())
    state.save()
    return state


@contextmanager
def exclusive_lock(state_dir: Path) -> Iterator[Path]:
    """Hold ``STATE/nightly.lock`` for the run; a second run fails at once with who holds it.

    ``flock`` is released by the kernel when the holder dies, so a killed run never leaves a
    stale lock behind.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / LOCK_NAME
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise NightlyBusy(f"another nightly run is in progress ({holder}); lock {path}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {utc_now()}")
        handle.flush()
        yield path
    finally:
        handle.close()
