"""``bugdet bench service``: what the gRPC service costs over calling onnxruntime directly.

One run, one model, one set of frames:

Measurements are interleaved (see :func:`measure`) because the benchmark machine is shared.

* ``inproc_p50_ms``: onnxruntime ``session.run`` on one frame (batch 1), same session options as
  the service; ``inproc_batched_fps``: the same on batches of ``max_batch`` frames.
* ``grpc_p50_ms`` / ``grpc_p99_ms``: a unary ``Detect`` of one raw RGB8 frame at the model's
  input size, sequential calls, against ``python -m service`` in its own process on 127.0.0.1.
* ``stream_fps``: one ``DetectStream`` of many frames, with the service's dynamic batching.
* ``latency_ratio`` = grpc_p50 / inproc_p50 (goal <= 1.10 on 2 cores);
  ``throughput_ratio`` = stream_fps / inproc_batched_fps (goal >= 0.90).

The model is the training stage's production architecture (``detect.model``, default
``compact_cnn``) with UNTRAINED random weights unless ``--package`` names an exported package:
the cost of inference does not depend on the weights. Frames are playtest-world renders.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer


def _frames(n: int, height: int, width: int) -> list[np.ndarray]:
    from bugdet.playtest.session import PlaytestSession, PlaytestSpec

    session = PlaytestSession(PlaytestSpec(scene="park", seed=5, frames=n, width=width, height=height))
    return [f.rgb for f in session.frames()]


def _build_package(models_dir: Path, model_config: str) -> Path:
    from bugdet.detect.model import create_detector
    from bugdet.export.package import export_package

    detector = create_detector(model_config, ["missing_texture", "stretched_geometry", "camera_clipping"]).eval()
    h, w = detector.input_size
    calibration = [np.random.default_rng(i).integers(0, 255, (h, w, 3), dtype=np.uint8) for i in range(4)]
    return export_package(detector, calibration, models_dir, name="bench", version="1",
                          metrics={"note": "untrained weights: for timing only"}).path


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def measure(package: Path, frames: list[np.ndarray], iterations: int, stream_frames: int, max_batch: int, rounds: int = 3,
            server_flags: tuple[str, ...] = ()) -> dict[str, Any]:
    """Interleaved measurements: the machine's other load hits both sides of each ratio alike.

    Latency alternates one in-process call and one gRPC call; throughput alternates rounds of
    in-process batches and whole streams (``rounds`` of ``stream_frames`` each) and compares medians.
    """
    from service.client import DetectionClient, SpawnedServer, pb, raw_frame
    from service.model_package import load_manifest
    from service.runtime import new_session

    manifest = load_manifest(package)
    with SpawnedServer(str(package.parent), "--max-batch", str(max_batch), *server_flags) as server:
        client = DetectionClient(server.address, timeout=60)
        session = new_session(str(manifest.model_path), "auto")
        single = [f[None] for f in frames]
        requests = [raw_frame(f, str(i)) for i, f in enumerate(frames)]
        for i in range(5):
            session.run(None, {"images": single[i]})
            client.detect([requests[i]])
        inproc, remote = [], []
        for i in range(iterations):
            started = time.perf_counter()
            session.run(None, {"images": single[i % len(single)]})
            inproc.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            client.detect([requests[i % len(requests)]])
            remote.append((time.perf_counter() - started) * 1000)

        batches = [np.stack([frames[(b * max_batch + j) % len(frames)] for j in range(max_batch)]) for b in range(4)]
        stream_input = [pb.DetectStreamRequest(frame=raw_frame(frames[i % len(frames)], str(i))) for i in range(stream_frames)]
        session.run(None, {"images": batches[0]})
        list(client.stream_requests(stream_input[: max_batch * 2]))  # warm the stream path
        inproc_fps, stream_fps = [], []
        for _ in range(rounds):
            done, started = 0, time.perf_counter()
            while done < stream_frames:
                session.run(None, {"images": batches[(done // max_batch) % len(batches)]})
                done += max_batch
            inproc_fps.append(done / (time.perf_counter() - started))
            started = time.perf_counter()
            received = sum(1 for r in client.stream_requests(stream_input, timeout=600) if not r.HasField("error"))
            stream_fps.append(received / (time.perf_counter() - started))
            if received != stream_frames:
                raise RuntimeError(f"stream returned {received} good results for {stream_frames} frames")
        info = client.info()
        client.close()
    inproc_p50, grpc_p50 = statistics.median(inproc), statistics.median(remote)
    inproc_rate, stream_rate = statistics.median(inproc_fps), statistics.median(stream_fps)
    return {
        "inproc_p50_ms": round(inproc_p50, 3),
        "inproc_p99_ms": round(_percentile(inproc, 99), 3),
        "grpc_p50_ms": round(grpc_p50, 3),
        "grpc_p99_ms": round(_percentile(remote, 99), 3),
        "latency_ratio": round(grpc_p50 / inproc_p50, 4),
        "inproc_batched_fps": round(inproc_rate, 2),
        "stream_fps": round(stream_rate, 2),
        "throughput_ratio": round(stream_rate / inproc_rate, 4),
        "inproc_batched_fps_rounds": [round(v, 1) for v in inproc_fps],
        "stream_fps_rounds": [round(v, 1) for v in stream_fps],
        "iterations": iterations,
        "stream_frames": stream_frames,
        "max_batch": max_batch,
        "input_size": [manifest.input.height, manifest.input.width],
        "model": f"{manifest.name}-{manifest.version}",
        "execution_provider": info.execution_provider,
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "machine": platform.machine(),
    }


def bench_service(
    json_path: Path = typer.Option(..., "--json", help="Write the measurements here."),
    package: Optional[Path] = typer.Option(None, "--package", help="An exported model package (default: export compact_cnn, untrained)."),
    model_config: str = typer.Option("compact_cnn", "--model", help="Detector config to export when no --package is given."),
    iterations: int = typer.Option(200, "--iterations", min=10, help="Timed batch-1 calls, in process and over gRPC."),
    stream_frames: int = typer.Option(320, "--stream-frames", min=16, help="Frames per timed stream (and per in-process round)."),
    rounds: int = typer.Option(3, "--rounds", min=1, help="Alternating throughput rounds; medians are compared."),
    max_batch: int = typer.Option(8, "--max-batch", min=1, help="Batch size of the in-process baseline and the server's max batch."),
) -> None:
    """Service overhead: gRPC Detect latency and streaming throughput vs in-process onnxruntime."""
    with tempfile.TemporaryDirectory(prefix="bugdet-bench-service-") as tmp:
        if package is None:
            package = _build_package(Path(tmp) / "models", model_config)
        elif len([p for p in package.parent.iterdir() if p.is_dir() and not p.name.startswith(".")]) != 1:
            staged = Path(tmp) / "models" / package.name
            staged.parent.mkdir()
            os.symlink(package.resolve(), staged)
            package = staged
        from service.model_package import load_manifest

        manifest = load_manifest(package)
        frames = _frames(24, manifest.input.height, manifest.input.width)
        result = measure(package, frames, iterations, stream_frames, max_batch, rounds)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    typer.echo(json.dumps(result))


def register(bench_app: typer.Typer) -> None:
    bench_app.command("service")(bench_service)
