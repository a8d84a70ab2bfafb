"""Progress reporting that long library calls accept without depending on a terminal.

Library functions take an optional :class:`Progress` (a callable protocol); the CLI passes
:func:`rich_progress`, tests and services pass nothing. On a terminal that is a rich live bar; when
the output goes to a log file or a pipe it is :class:`LineProgress`, plain lines written as the work
happens (a live bar redraws in place, so a log would only get its final state, at the end).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator, Protocol, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class Progress(Protocol):
    def start(self, description: str, total: int | None) -> None: ...

    def advance(self, n: int = 1) -> None: ...


class NullProgress:
    def start(self, description: str, total: int | None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass


class RichBar:
    """Adapter from :class:`Progress` to a rich progress bar; each ``start`` opens a new task."""

    def __init__(self, bar: RichProgress):
        self._bar = bar
        self._task = None

    def start(self, description: str, total: int | None) -> None:
        if self._task is not None:
            self._bar.update(self._task, visible=True)
        self._task = self._bar.add_task(description, total=total)

    def advance(self, n: int = 1) -> None:
        if self._task is not None:
            self._bar.advance(self._task, n)


def format_seconds(seconds: float) -> str:
    """``42s``, ``3m05s`` or ``1h02m``: short enough for a progress line."""
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class LineProgress:
    """:class:`Progress` as plain lines, for logs: one line when a task starts, then a line with the
    count, elapsed time and ETA at most every ``interval_s`` seconds, and a closing line with the
    count and time when the count reaches the total (or, for a task without one or cut short, when
    the next task starts or on :meth:`close`).

    ``write`` receives whole lines (no newline) and must not buffer them; :func:`rich_progress`
    passes a writer that flushes, so ``tail -f`` on the log follows along.
    """

    def __init__(self, write: Callable[[str], None], interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self._write = write
        self._interval = interval_s
        self._clock = clock
        self._description: str | None = None
        self._total: int | None = None
        self._count = 0
        self._started = 0.0
        self._last_line = 0.0

    def start(self, description: str, total: int | None) -> None:
        self._finish()
        self._description, self._total, self._count = description, total, 0
        self._started = self._last_line = self._clock()
        self._write(f"{description}: started" + (f" ({total} to do)" if total else ""))

    def advance(self, n: int = 1) -> None:
        if self._description is None:
            return
        self._count += n
        now = self._clock()
        if self._total is not None and self._count >= self._total:
            self._finish()
        elif now - self._last_line >= self._interval:
            self._last_line = now
            self._write(self._status_line(now))

    def close(self) -> None:
        """Write the closing line of the task in progress, if any."""
        self._finish()

    def _status_line(self, now: float) -> str:
        elapsed = now - self._started
        if not self._total:
            return f"{self._description}: {self._count} done, {format_seconds(elapsed)} elapsed"
        share = min(self._count / self._total, 1.0)
        eta = elapsed * (1 - share) / share if share > 0 else None
        return (f"{self._description}: {self._count}/{self._total} ({share:.0%}), {format_seconds(elapsed)} elapsed, "
                f"ETA {format_seconds(eta) if eta is not None else '?'}")

    def _finish(self) -> None:
        if self._description is not None:
            elapsed = self._clock() - self._started
            of = f"/{self._total}" if self._total else ""
            self._write(f"{self._description}: finished, {self._count}{of} in {format_seconds(elapsed)}")
            self._description = None


def line_writer(stream: TextIO) -> Callable[[str], None]:
    """A writer for :class:`LineProgress` that flushes every line (logs are read while they grow)."""

    def write(line: str) -> None:
        stream.write(line + "\n")
        stream.flush()

    return write


@contextmanager
def rich_progress(console: Console | None = None) -> Iterator[Progress]:
    """The CLI's progress: a rich live bar on a terminal, :class:`LineProgress` lines otherwise."""
    console = console or Console(stderr=True)
    if not console.is_terminal:
        lines = LineProgress(line_writer(console.file))
        try:
            yield lines
        finally:
            lines.close()
        return
    bar = RichProgress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    with bar:
        yield RichBar(bar)
