"""The idle memory release: once per idle period, never while requests keep completing."""

from __future__ import annotations

import threading
import time

import pytest

from service.allocator import release_free_memory
from service.idle_release import IdleMemoryRelease


class Clockwork:
    """An activity counter the test moves, and a release that records when it ran."""

    def __init__(self) -> None:
        self.count = 0
        self.released = threading.Event()
        self.calls = 0

    def release(self) -> bool:
        self.calls += 1
        self.released.set()
        return True


def test_releases_once_after_activity_then_quiet() -> None:
    clock = Clockwork()
    idle = IdleMemoryRelease(lambda: clock.count, idle_s=0.1, poll_s=0.02, release=clock.release)
    idle.start()
    try:
        time.sleep(0.3)
        assert clock.calls == 0  # nothing happened since start: nothing to give back
        clock.count += 1
        assert clock.released.wait(2)
        time.sleep(0.3)
        assert clock.calls == 1  # still quiet: no second trim for the same idle period
        clock.released.clear()
        clock.count += 5
        assert clock.released.wait(2) and clock.calls == 2
    finally:
        idle.stop()


def test_a_busy_server_is_never_trimmed() -> None:
    clock = Clockwork()
    idle = IdleMemoryRelease(lambda: clock.count, idle_s=0.2, poll_s=0.02, release=clock.release)
    idle.start()
    try:
        until = time.monotonic() + 0.8
        while time.monotonic() < until:
            clock.count += 1
            time.sleep(0.01)
        assert clock.calls == 0
    finally:
        idle.stop()
    assert idle.releases == 0


def test_a_failing_release_does_not_stop_the_thread() -> None:
    calls = []

    def broken() -> bool:
        calls.append(1)
        raise OSError("no")

    count = [0]
    idle = IdleMemoryRelease(lambda: count[0], idle_s=0.05, poll_s=0.01, release=broken)
    idle.start()
    try:
        count[0] = 1
        time.sleep(0.3)
        count[0] = 2
        time.sleep(0.3)
    finally:
        idle.stop()
    assert len(calls) == 2


def test_idle_period_must_be_positive() -> None:
    with pytest.raises(ValueError):
        IdleMemoryRelease(lambda: 0, idle_s=0)


def test_release_free_memory_runs_on_this_platform() -> None:
    import platform

    assert release_free_memory() == (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")


def test_the_idle_release_frees_frames_held_only_by_reference_cycles() -> None:
    import gc
    import weakref

    import numpy as np

    from service.idle_release import collect_and_release

    class Holder:
        pass

    gc.disable()  # as in an idle server: no allocations, so no automatic collection
    try:
        holder = Holder()
        holder.me, holder.frame = holder, np.zeros((500, 500, 3), np.uint8)
        frame = weakref.ref(holder.frame)
        del holder
        assert frame() is not None  # the cycle keeps it
        collect_and_release()
        assert frame() is None
    finally:
        gc.enable()
