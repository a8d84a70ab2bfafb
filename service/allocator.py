"""Keep glibc malloc from handing frame-sized buffers back to the kernel after every frame.

Every streamed frame allocates a few buffers of a frame's size (the message bytes, the decoded
pixels, the resized input) and frees them a moment later. With glibc's defaults, freeing them
shrinks the heap (``M_TRIM_THRESHOLD``) or unmaps them (``M_MMAP_THRESHOLD``), so the next frame
page-faults the same memory back in: measured ~35 page faults per 320x240 RGBA frame in a
``DetectStream`` and ~0.1 ms of server CPU per frame, against ~3 with the thresholds raised.
A dedicated inference process can afford to keep that memory mapped; the price is that its
resident size stays near its peak (up to ``trim_threshold`` of freed heap is kept) instead of
shrinking after a burst.

That price is paid once per malloc arena, and glibc gives a threaded process up to 8 arenas per
core: the gRPC and batcher threads each grew their own and kept its freed frames, so the server's
resident size crept up with every new mix of requests (5,000 fuzz requests: +9-11% over a warmed
baseline). The server runs with a single arena (:data:`SERVER_ARENAS`): ``malloc_trim`` hands back
the free top of the main heap, but glibc shrinks a thread arena's top only inside a ``free`` in
that arena once the top passes the trim threshold, so whatever a burst left at the top of a
thread arena stayed resident after the idle release (measured, 8 runs each, a burst of twelve
2000x2000 frames: two arenas on 2 cores kept 3-98 MB of it, one arena 2-10 MB). The server's threads
spend their time in inference and decoding, not in ``malloc``, so sharing one arena costs them
little. A cap set with ``mallopt`` binds only arenas made after the call, and grpc and onnxruntime
start threads as they are imported, so the server re-executes itself once with glibc's
environment settings (:func:`reexec_with_malloc_env`): then the cap holds from the process's first
allocation.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Mapping

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

#: malloc arenas in the serving process: one, so that ``malloc_trim`` can return every free page.
SERVER_ARENAS = 1


def _glibc_function(name: str):
    """The C library's ``name`` on Linux, or None where it has none (other systems, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None


def release_free_memory() -> bool:
    """``malloc_trim(0)``: give the free pages of every glibc arena back to the kernel (what
    :func:`keep_frame_buffers_mapped` keeps). False where the C library has no such call."""
    trim = _glibc_function("malloc_trim")
    if trim is None:
        return False
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    trim(0)
    return True


def arena_cap() -> int:
    """The user's ``MALLOC_ARENA_MAX`` where they set one (glibc applied it at start; a later cap
    must not undo it), else :data:`SERVER_ARENAS`."""
    value = os.environ.get("MALLOC_ARENA_MAX", "")
    return int(value) if value.isdigit() and int(value) > 0 else SERVER_ARENAS


def keep_frame_buffers_mapped(mmap_threshold: int = 32 << 20, trim_threshold: int = 256 << 20,
                              arenas: int | None = None) -> bool:
    """Raise glibc's mmap and trim thresholds and cap its arenas for this process; False where that
    is not glibc. Call it before the server starts its threads (arenas are made as threads first
    allocate).

    ``mmap_threshold``: allocations below it come from the heap (32 MiB is glibc's ceiling);
    ``trim_threshold``: free memory kept at the top of a heap before it is returned to the kernel;
    ``arenas``: malloc arenas at most (default: the user's ``MALLOC_ARENA_MAX``, else :data:`SERVER_ARENAS`).
    """
    mallopt = _glibc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    arenas = arenas or arena_cap()
    return (bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(M_TRIM_THRESHOLD, trim_threshold))
            and bool(mallopt(M_ARENA_MAX, arenas)))


#: Set in the environment of the re-executed server, so it never re-executes twice.
REEXEC_MARK = "BUGDET_MALLOC_ENV"


def malloc_env(mmap_threshold: int = 32 << 20, trim_threshold: int = 256 << 20, arenas: int | None = None) -> dict[str, str]:
    """The glibc environment settings equal to :func:`keep_frame_buffers_mapped`'s defaults."""
    return {"MALLOC_ARENA_MAX": str(arenas or SERVER_ARENAS),
            "MALLOC_MMAP_THRESHOLD_": str(mmap_threshold), "MALLOC_TRIM_THRESHOLD_": str(trim_threshold)}


def reexec_with_malloc_env(environ: Mapping[str, str] | None = None) -> None:
    """Replace this process (same pid, same arguments) with one started under :func:`malloc_env`,
    unless it already was, a user set ``MALLOC_ARENA_MAX`` themselves, or this is not Linux. Only a
    process whose sole job is serving may call this: it never returns when it re-executes."""
    env = dict(os.environ if environ is None else environ)
    if not sys.platform.startswith("linux") or REEXEC_MARK in env or "MALLOC_ARENA_MAX" in env:
        return
    argv = list(getattr(sys, "orig_argv", []))
    if not argv:
        return
    env.update(malloc_env())
    env[REEXEC_MARK] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *argv[1:]], env)
