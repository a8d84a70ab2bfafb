#!/usr/bin/env python3
"""Load test for the bugdet detection service: latency table over concurrency levels.

    python tools/loadtest.py --models packages/                # spawns `python -m service` itself
    python tools/loadtest.py --target 127.0.0.1:50051 --concurrency 1,8,64 --formats raw,jpeg

For each frame format (``raw``: RGB8 at the model's input size; ``rgba``: RGBA8 at 2x that size
with rows padded to 256 bytes, as an engine's framebuffer readback arrives, so the server converts
and resizes; ``jpeg``: JPEG q90 at 2x, so the server decodes and resizes) and each concurrency level, N client threads send unary ``Detect``
calls of one frame for ``--seconds`` (and at most ``--max-requests``). Prints p50 / p95 / p99
latency, throughput and errors per row. Only loopback targets are accepted: this tool must never
load anything but a server on this machine.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.client import DetectionClient, SpawnedServer, encoded_frame, loopback_only, raw_frame  # noqa: E402


def synthetic_frames(n: int, height: int, width: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth colour fields with blocks: compress like game frames (noise would not)."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        y, x = np.mgrid[0:height, 0:width]
        base = np.stack([(x * 255 / width), (y * 255 / height), np.full_like(x, rng.integers(0, 255))], -1)
        frame = base.astype(np.uint8)
        for _ in range(6):
            bx, by = int(rng.integers(0, width - 8)), int(rng.integers(0, height - 8))
            frame[by : by + height // 6, bx : bx + width // 6] = rng.integers(0, 255, 3)
        frames.append(frame)
    return frames


def rgba_frame(rgb: np.ndarray, frame_id: str, alignment: int = 256):
    """A raw RGBA8 frame with rows padded to ``alignment`` bytes (a GPU readback's layout)."""
    from service.client import pb

    h, w = rgb.shape[:2]
    stride = (w * 4 + alignment - 1) // alignment * alignment
    rows = np.zeros((h, stride), np.uint8)
    rows[:, : w * 4] = np.dstack([rgb, np.full((h, w), 255, np.uint8)]).reshape(h, w * 4)
    return pb.Frame(id=frame_id, raw=pb.RawImage(data=rows.tobytes(), width=w, height=h, stride=stride, format=pb.RGBA8))


def run_level(client: DetectionClient, requests: list, concurrency: int, seconds: float, max_requests: int) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    issued = [0]

    def worker(k: int) -> None:
        i = k
        while time.monotonic() < stop_at:
            with lock:
                if issued[0] >= max_requests:
                    return
                issued[0] += 1
            started = time.perf_counter()
            try:
                client.detect([requests[i % len(requests)]])
                with lock:
                    latencies.append((time.perf_counter() - started) * 1000)
            except Exception as exc:  # noqa: BLE001 - counted and reported, the run goes on
                with lock:
                    errors.append(type(exc).__name__ + ": " + str(getattr(exc, "code", lambda: "")()))
            i += concurrency

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    q = (lambda p: float(np.percentile(latencies, p))) if latencies else (lambda p: float("nan"))
    return {"concurrency": concurrency, "requests": len(latencies), "errors": len(errors), "p50_ms": q(50),
            "p95_ms": q(95), "p99_ms": q(99), "fps": len(latencies) / elapsed, "first_error": errors[0] if errors else ""}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--target", help="host:port of a running service (loopback only)")
    where.add_argument("--models", type=Path, help="models directory: spawn a server on an ephemeral loopback port")
    parser.add_argument("--concurrency", default="1,4,16,64", help="comma-separated client thread counts (1..64)")
    parser.add_argument("--formats", default="raw,rgba,jpeg", help="any of raw, rgba, jpeg")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each row")
    parser.add_argument("--max-requests", type=int, default=5000, help="cap on requests per row")
    parser.add_argument("--token", help="bearer token, if the server requires one")
    parser.add_argument("--server-flag", action="append", default=[], help="extra flag for the spawned server (repeatable)")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    if any(not 1 <= c <= 64 for c in levels):
        parser.error("concurrency levels must be within 1..64")
    spawned = SpawnedServer(str(args.models), *args.server_flag).__enter__() if args.models else None
    try:
        target = loopback_only(spawned.address if spawned else args.target)
        client = DetectionClient(target, token=args.token, timeout=30)
        info = client.info()
        h, w = info.input_height, info.input_width
        print(f"model {info.name}-{info.version} ({info.execution_provider}, max batch {info.max_batch_size}) at {target}")
        print(f"{'format':<6} {'conc':>4} {'requests':>8} {'errors':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'frames/s':>9}")
        for fmt in args.formats.split(","):
            if fmt == "raw":
                requests = [raw_frame(f, str(i)) for i, f in enumerate(synthetic_frames(16, h, w))]
            elif fmt == "rgba":
                requests = [rgba_frame(f, str(i)) for i, f in enumerate(synthetic_frames(16, h * 2, w * 2))]
            elif fmt == "jpeg":
                requests = [encoded_frame(f, str(i)) for i, f in enumerate(synthetic_frames(16, h * 2, w * 2))]
            else:
                parser.error(f"unknown format {fmt!r}")
            client.detect(requests[:1])
            for level in levels:
                row = run_level(client, requests, level, args.seconds, args.max_requests)
                print(f"{fmt:<6} {level:>4} {row['requests']:>8} {row['errors']:>6} {row['p50_ms']:>8.2f} {row['p95_ms']:>8.2f} "
                      f"{row['p99_ms']:>8.2f} {row['fps']:>9.1f}" + (f"  first error: {row['first_error']}" if row["errors"] else ""))
        client.close()
    finally:
        if spawned:
            spawned.__exit__()
    return 0


if __name__ == "__main__":
    sys.exit(main())
