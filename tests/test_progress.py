"""Progress in a log file: line-based, written as the work happens, with counts and an ETA."""

from __future__ import annotations

import io

from rich.console import Console

from bugdet.progress import LineProgress, RichBar, format_seconds, rich_progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_line_progress_writes_start_periodic_eta_and_finish_lines() -> None:
    lines: list[str] = []
    clock = Clock()
    progress = LineProgress(lines.append, interval_s=10, clock=clock)
    progress.start("train", 100)
    assert lines == ["train: started (100 to do)"]
    for _ in range(20):  # 20 steps of 1 s: one periodic line after 10 s, one after 20 s
        clock.now += 1
        progress.advance()
    assert lines[1:] == ["train: 10/100 (10%), 10s elapsed, ETA 1m30s", "train: 20/100 (20%), 20s elapsed, ETA 1m20s"]
    clock.now += 5
    progress.advance(80)  # reaching the total closes the task at once
    assert lines[-1] == "train: finished, 100/100 in 25s"
    progress.close()
    assert len(lines) == 4


def test_line_progress_closes_an_open_task_when_the_next_starts() -> None:
    lines: list[str] = []
    clock = Clock()
    progress = LineProgress(lines.append, clock=clock)
    progress.start("embedding", None)
    progress.advance(3)
    clock.now = 75
    progress.start("cluster", 4)
    assert lines == ["embedding: started", "embedding: finished, 3 in 1m15s", "cluster: started (4 to do)"]


def test_rich_progress_is_line_based_when_not_a_terminal() -> None:
    log = io.StringIO()
    console = Console(file=log, force_terminal=False)
    with rich_progress(console) as progress:
        assert isinstance(progress, LineProgress)
        progress.start("record", 2)
        progress.advance()
        assert log.getvalue() == "record: started (2 to do)\n"  # written as it happens, not at the end
        progress.advance()
    assert log.getvalue().splitlines() == ["record: started (2 to do)", "record: finished, 2/2 in 0s"]


def test_rich_progress_is_a_live_bar_on_a_terminal() -> None:
    with rich_progress(Console(file=io.StringIO(), force_terminal=True)) as progress:
        assert isinstance(progress, RichBar)
        progress.start("record", 2)
        progress.advance(2)


def test_format_seconds() -> None:
    assert [format_seconds(s) for s in (0, 59.4, 61, 3725)] == ["0s", "59s", "1m01s", "1h02m"]
