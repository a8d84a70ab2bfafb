"""Hand freed memory back to the kernel once the server goes idle.

While frames stream, the server keeps freed frame buffers mapped (``service.allocator``): the next
frame reuses them without page faults. After a burst, that memory stays resident at its peak:
measured +10-21% RSS over a warmed baseline after 5,000-10,000 fuzz requests, most of it large
decoded frames freed into the heap. Once no request has completed for ``idle_s``, a garbage
collection frees what reference cycles still hold and ``malloc_trim(0)`` returns every arena's
free pages; a busy server is never trimmed, so the
per-frame saving holds where it matters and the resident size falls back when a burst ends.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable

from service.allocator import release_free_memory

log = logging.getLogger(__name__)


def collect_and_release() -> bool:
    """Free cyclic garbage, then hand free heap pages back. An idle interpreter allocates nothing,
    so its cycle collector never runs on its own: frames still held by reference cycles (futures,
    exceptions) would keep their buffers, and ``malloc_trim`` cannot return pages still in use."""
    gc.collect()
    return release_free_memory()


class IdleMemoryRelease:
    """A thread that calls ``release`` once per idle period: after ``activity()`` (any number that
    changes while requests complete, e.g. a request counter) has stayed the same for ``idle_s``,
    and only if it changed since the last release."""

    def __init__(self, activity: Callable[[], float], idle_s: float = 0.5, poll_s: float | None = None,
                 release: Callable[[], bool] = collect_and_release):
        if idle_s <= 0:
            raise ValueError("idle_s must be positive")
        self._activity, self._release = activity, release
        self.idle_s, self.poll_s = idle_s, poll_s or min(0.25, idle_s / 2)
        self.releases = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="bugdet-idle-release", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        seen = released = self._activity()
        changed_at = time.monotonic()
        while not self._stop.wait(self.poll_s):
            now, value = time.monotonic(), self._activity()
            if value != seen:
                seen, changed_at = value, now
            elif value != released and now - changed_at >= self.idle_s:
                try:
                    self._release()
                except Exception:  # noqa: BLE001 - never let housekeeping take the server down
                    log.exception("releasing free memory failed")
                released = value
                self.releases += 1
