"""Progress reporting that long library calls accept without depending on a terminal.

Library functions take an optional :class:`Progress` (a callable protocol); the CLI passes a rich
progress bar, tests and services pass nothing.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Protocol

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


@contextmanager
def rich_progress(console: Console | None = None) -> Iterator[RichBar]:
    bar = RichProgress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
        transient=False,
    )
    with bar:
        yield RichBar(bar)
