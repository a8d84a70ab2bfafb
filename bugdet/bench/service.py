"""``bugdet bench service``: what the gRPC service costs over running onnxruntime in the engine.

One run, one model, one set of frames. Both sides start from the same bytes an engine has after a
framebuffer readback (raw RGBA8 at the playtest world's 320x240) and end with the same decision
per frame, so neither skips work the other does:

* in process (what an engine plugin would otherwise run itself): :func:`service.frames.decode_raw`
  + :func:`service.frames.fit_to_input` (the service's own preprocessing), ``session.run`` on a
  session built by :func:`service.runtime.new_session` (the service's session options), then
  :func:`service.requests.verdicts` (thresholds and boxes, the service's own post-processing);
* over gRPC: a unary ``Detect`` of that raw RGBA frame, or one ``DetectStream`` of many, against
  ``python -m service`` in its own process on 127.0.0.1;
* through the unmodified Triton client (``tritonclient``, gRPC and HTTP, KServe v2): ``--client-threads``
  threads each convert a frame on the client side and send its model-input tensor, concurrently
  (see :mod:`bugdet.bench.service_tritonclient`); ``tritonclient.grpc_throughput_ratio`` and
  ``http_throughput_ratio`` compare their frames/s with the same in-process baseline (goal >= 0.90).

Goals (issue #6, 2 cores): ``latency_ratio`` = gRPC Detect p50 / in-process p50 at batch 1 <= 1.10;
``throughput_ratio`` = stream frames/s (dynamic batching) / in-process frames/s on batches of
``max_batch`` >= 0.90. The in-process throughput is the better of two plugins: one that converts
and infers in turn (``inproc_serial_fps``) and one that converts the next batch on a second thread
while the model runs (``inproc_pipelined_fps``), as the service itself does; comparing only with the
first would credit the service for an overlap any plugin can have.

Because the machine is shared, the two sides are measured in alternating blocks of ``--block``
calls (see :func:`measure_latency`), and throughput alternates whole rounds. The JSON also says
where the difference goes (``latency_breakdown_ms``, ``stream_breakdown``) and what a bare gRPC
call costs on this machine (``grpc_floor_p50_ms``: an empty health check), which bounds the best
latency ratio any Python grpcio server could reach here (``latency_ratio_floor``). A second,
narrower comparison (``model_input_only``) sends frames already at the model's input size and
compares with bare ``session.run``: the previous definition of the benchmark, kept visible.

``stream_breakdown`` splits the throughput gap: how busy the batch worker was (idle = starved by
the pipeline), the server's inference time per frame next to in-process inference per frame
(slower = the model competing with gRPC threads and the client for the cores), and CPU per frame
of server, client and in-process loop. ``throughput_ratio_cpu_bound`` is the ratio the service gets
when the cores are saturated (in-process CPU per frame over server + client CPU per frame).

The model is the training stage's production architecture (``detect.model``, default
``compact_cnn``) with UNTRAINED random weights unless ``--package`` names an exported package:
the cost of inference does not depend on the weights. Frames are playtest-world renders.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import typer

#: The playtest world's render size (height, width): the frame an engine reads back.
ENGINE_FRAME_HW = (240, 320)


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


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 4)


class InProcessDetector:
    """The in-process side: what an engine plugin embedding onnxruntime would run per frame."""

    def __init__(self, manifest) -> None:
        from service.runtime import new_session

        self.manifest = manifest
        self.session = new_session(str(manifest.model_path), "auto")
        self.input_name = manifest.input.name
        self.stages: dict[str, list[float]] = {"decode": [], "infer": [], "postprocess": []}  # batch-1 latency calls
        self.batched_stages: dict[str, list[float]] = {"decode": [], "infer": [], "postprocess": []}  # throughput rounds

    def prepare(self, rgba: bytes, width: int, height: int) -> np.ndarray:
        from service.frames import decode_raw, fit_to_input

        return fit_to_input(decode_raw(rgba, width, height, 0, "RGBA8"), self.manifest.input.height, self.manifest.input.width)

    def pipelined(self, batches: list[list[tuple[bytes, int, int]]]) -> int:
        """Batches with decoding on a second thread, overlapping the previous batch's inference: what
        an engine that converts each readback as it arrives gets. Returns the frames processed."""
        import queue
        import threading

        from service.requests import verdicts

        ready: queue.Queue = queue.Queue(maxsize=2)

        def decode() -> None:
            for frames in batches:
                ready.put(np.stack([self.prepare(*f) for f in frames]))
            ready.put(None)

        threading.Thread(target=decode, daemon=True).start()
        done = 0
        while (batch := ready.get()) is not None:
            scores, heatmaps = self.session.run(None, {self.input_name: batch})
            for i in range(len(batch)):
                verdicts(self.manifest, scores[i], heatmaps[i])
            done += len(batch)
        return done

    def detect(self, frames: list[tuple[bytes, int, int]], record: dict[str, list[float]] | None = None) -> list[tuple[list[bool], Any]]:
        from service.requests import verdicts

        t0 = time.perf_counter()
        pixels = [self.prepare(*f) for f in frames]
        batch = pixels[0][None] if len(pixels) == 1 else np.stack(pixels)
        t1 = time.perf_counter()
        scores, heatmaps = self.session.run(None, {self.input_name: batch})
        t2 = time.perf_counter()
        out = [verdicts(self.manifest, scores[i], heatmaps[i]) for i in range(len(frames))]
        if record is not None:
            for name, value in (("decode", t1 - t0), ("infer", t2 - t1), ("postprocess", time.perf_counter() - t2)):
                record[name].append(value)
        return out


class ServerProbe:
    """Reads the spawned server's Prometheus endpoint and CPU time, to split its time by stage."""

    _LINE = re.compile(r"^([a-z_]+)(\{[^}]*\})? (\S+)$")

    def __init__(self, metrics_port: int, pid: int) -> None:
        self.url, self.pid = f"http://127.0.0.1:{metrics_port}/metrics", pid

    def sample(self) -> dict[str, float]:
        values: dict[str, float] = {}
        for line in urllib.request.urlopen(self.url, timeout=10).read().decode().splitlines():
            match = self._LINE.match(line)
            if match:
                values[match.group(1) + (match.group(2) or "")] = float(match.group(3))
        values["cpu_s"] = self.cpu_seconds()
        return values

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process, all threads (Linux /proc; NaN elsewhere)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _delta(after: dict[str, float], before: dict[str, float], key: str) -> float:
    return after.get(key, 0.0) - before.get(key, 0.0)


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def measure_latency(sides: dict[str, Callable[[int], Any]], iterations: int, block: int,
                    around: dict[str, tuple[Callable[[], Any], Callable[[Any], None]]]) -> dict[str, list[float]]:
    """Time each side's batch-1 call in alternating blocks of ``block`` calls (2 untimed first).

    Blocks, not single calls, because alternating call by call measured something else: every gRPC
    call then began right after an in-process inference in the client process had evicted the
    caches both processes share, which on this 2-core machine added ~0.7 ms to the gRPC side alone.
    Blocks still spread the machine's other load over both sides alike. ``around[name]`` =
    (before, after(before_result)) hooks run outside the timed region of each block.
    """
    times: dict[str, list[float]] = {name: [] for name in sides}
    index = 0
    while len(next(iter(times.values()))) < iterations:
        for name, call in sides.items():
            call(index)
            call(index + 1)
            token = around[name][0]() if name in around else None
            for i in range(block):
                started = time.perf_counter()
                call(index + i)
                times[name].append((time.perf_counter() - started) * 1000)
            if name in around:
                around[name][1](token)
        index += block
    return times


def measure(package: Path, frames: list[np.ndarray], iterations: int, stream_frames: int, max_batch: int, rounds: int = 3,
            block: int = 20, server_flags: tuple[str, ...] = (), client_threads: int = 8, tritonclient: bool = False) -> dict[str, Any]:
    """All measurements on one model and one list of RGB frames (sent as raw RGBA8, as read back).

    ``tritonclient`` adds the tritonclient gRPC/HTTP rounds; off by default because importing
    tritonclient.grpc into a process that also hosts the service (a test session) breaks the latter."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from service.client import DetectionClient, SpawnedServer, pb, raw_frame
    from service.frames import fit_to_input
    from service.model_package import load_manifest
    from service.requests import verdicts

    from bugdet.bench import service_tritonclient as bench_tritonclient

    manifest = load_manifest(package)
    height, width = frames[0].shape[:2]
    rgba = [np.concatenate([f, np.full((height, width, 1), 255, np.uint8)], axis=2).tobytes() for f in frames]
    engine = [(data, width, height) for data in rgba]
    requests = [pb.Frame(id=str(i), raw=pb.RawImage(data=data, width=width, height=height, format=pb.RGBA8)) for i, data in enumerate(rgba)]
    model_size = [fit_to_input(f, manifest.input.height, manifest.input.width) for f in frames]
    model_size_requests = [raw_frame(f, str(i)) for i, f in enumerate(model_size)]
    n = len(frames)

    triton_missing = bench_tritonclient.available() if tritonclient else "not requested"
    with SpawnedServer(str(package.parent), "--max-batch", str(max_batch), "--metrics-port", "0", "--http-port", "0", *server_flags) as server:
        metrics_port = int(re.search(r"metrics on :(\d+)", "\n".join(server.log)).group(1))
        http_port = int(re.search(r"KServe v2 HTTP on :(\d+)", "\n".join(server.log)).group(1))
        triton_urls = {"grpc": server.address, "http": f"127.0.0.1:{http_port}"}
        probe = ServerProbe(metrics_port, server.process.pid)
        client = DetectionClient(server.address, timeout=60)
        health = health_pb2_grpc.HealthStub(client.channel)
        local = InProcessDetector(manifest)

        engine_blocks: list[tuple[dict, dict]] = []
        sides = {
            "inproc": lambda i: local.detect([engine[i % n]], record=local.stages),
            "grpc": lambda i: client.detect([requests[i % n]]),
            "inproc_model": lambda i: local.session.run(None, {manifest.input.name: model_size[i % n][None]}),
            "grpc_model": lambda i: client.detect([model_size_requests[i % n]]),
            "floor": lambda i: health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10),
        }
        latency = measure_latency(sides, iterations, block, {"grpc": (probe.sample, lambda before: engine_blocks.append((before, probe.sample())))})

        stream_input = [pb.DetectStreamRequest(frame=requests[i % n]) for i in range(stream_frames)]
        list(client.stream_requests(stream_input[: max_batch * 4]))  # warm the stream path
        batches = [[engine[(b * max_batch + j) % n] for j in range(max_batch)] for b in range(max(1, n // max_batch))]
        local.detect(batches[0])
        round_batches = [batches[k % len(batches)] for k in range(-(-stream_frames // max_batch))]
        local.pipelined(round_batches[:2])
        inproc_fps, pipelined_fps, stream_fps, inproc_cpu, stream_rounds = [], [], [], [], []
        triton_rounds: dict[str, list[dict[str, float]]] = {"grpc": [], "http": []}
        triton_score_diff: dict[str, float] = {}
        if triton_missing is None:
            first = local.prepare(*engine[0])[None]
            expected = local.session.run(None, {manifest.input.name: first})[0]
            for protocol, url in triton_urls.items():
                triton_score_diff[protocol] = bench_tritonclient.scores_agree(protocol, url, manifest.name, first, expected)
        for _ in range(rounds):
            done, cpu0, started = 0, _cpu_seconds(), time.perf_counter()
            for batch in round_batches:
                local.detect(batch, record=local.batched_stages)
                done += len(batch)
            inproc_fps.append(done / (time.perf_counter() - started))
            inproc_cpu.append((_cpu_seconds() - cpu0) / done)
            started = time.perf_counter()
            pipelined_fps.append(local.pipelined(round_batches) / (time.perf_counter() - started))
            before, cpu0, started = probe.sample(), _cpu_seconds(), time.perf_counter()
            received = sum(1 for r in client.stream_requests(stream_input, timeout=600) if not r.HasField("error"))
            wall = time.perf_counter() - started
            client_cpu = _cpu_seconds() - cpu0
            after = probe.sample()
            if received != stream_frames:
                raise RuntimeError(f"stream returned {received} good results for {stream_frames} frames")
            stream_fps.append(received / wall)
            stream_rounds.append((before, after, wall, client_cpu))
            if triton_missing is None:
                for protocol, url in triton_urls.items():
                    before = probe.sample()
                    measured = bench_tritonclient.run_clients(protocol, url, manifest.name, engine, local.prepare,
                                                              lambda s, h: verdicts(manifest, s, h), stream_frames, client_threads)
                    # server CPU over every request it answered, warm-ups included
                    measured["server_cpu_ms_per_frame"] = _delta(probe.sample(), before, "cpu_s") * 1000 / measured["requests"]
                    triton_rounds[protocol].append(measured)
        info = client.info()
        client.close()

    return _report(latency, engine_blocks, local.stages, local.batched_stages, inproc_fps, pipelined_fps, stream_fps, inproc_cpu, stream_rounds, stream_frames, {
        "iterations": iterations, "block": block, "stream_frames": stream_frames, "max_batch": max_batch,
        "frame": {"format": "RGBA8", "height": height, "width": width},
        "input_size": [manifest.input.height, manifest.input.width],
        "model": f"{manifest.name}-{manifest.version}",
        "execution_provider": info.execution_provider,
        "tritonclient": _triton_report(triton_rounds, triton_score_diff, triton_missing, client_threads,
                                       max(statistics.median(inproc_fps), statistics.median(pipelined_fps)),
                                       statistics.median(inproc_cpu) * 1000),
    })


def _triton_report(rounds: dict[str, list[dict[str, float]]], score_diff: dict[str, float], missing: str | None,
                   threads: int, inproc_rate: float, inproc_cpu_ms: float) -> dict[str, Any]:
    """tritonclient gRPC / HTTP frames/s against the better in-process plugin (the stream's baseline),
    and, as for the stream, the ratio once the cores are saturated (CPU per frame)."""
    if missing is not None:
        return {"skipped": missing}
    report: dict[str, Any] = {"client_threads": threads, "goal_throughput_ratio": 0.90, "inproc_fps": round(inproc_rate, 2)}
    for protocol, measured in rounds.items():
        fps = statistics.median([r["fps"] for r in measured])
        report[f"{protocol}_fps"] = round(fps, 2)
        report[f"{protocol}_throughput_ratio"] = round(fps / inproc_rate, 4)
        report[f"{protocol}_fps_rounds"] = [round(r["fps"], 1) for r in measured]
        client_cpu = statistics.median([r["client_cpu_ms_per_frame"] for r in measured])
        server_cpu = statistics.median([r["server_cpu_ms_per_frame"] for r in measured])
        report[f"{protocol}_client_cpu_ms_per_frame"] = round(client_cpu, 4)
        report[f"{protocol}_server_cpu_ms_per_frame"] = round(server_cpu, 4)
        report[f"{protocol}_throughput_ratio_cpu_bound"] = round(inproc_cpu_ms / (client_cpu + server_cpu), 4) if client_cpu + server_cpu else None
        report[f"{protocol}_max_abs_score_diff"] = score_diff[protocol]
    return report


def _report(latency: dict[str, list[float]], engine_blocks: list[tuple[dict, dict]], inproc_stages: dict[str, list[float]],
            batched_stages: dict[str, list[float]],
            inproc_fps: list[float], pipelined_fps: list[float], stream_fps: list[float], inproc_cpu: list[float], stream_rounds: list[tuple],
            stream_frames: int, context: dict[str, Any]) -> dict[str, Any]:
    inproc_p50, grpc_p50 = statistics.median(latency["inproc"]), statistics.median(latency["grpc"])
    floor_p50 = statistics.median(latency["floor"])
    serial_rate, pipelined_rate = statistics.median(inproc_fps), statistics.median(pipelined_fps)
    inproc_rate, stream_rate = max(serial_rate, pipelined_rate), statistics.median(stream_fps)  # the better plugin

    def server_mean(key_sum: str, key_count: str) -> float:
        total = sum(_delta(a, b, key_sum) for b, a in engine_blocks)
        count = sum(_delta(a, b, key_count) for b, a in engine_blocks)
        return total / count if count else float("nan")

    stage = lambda name: server_mean(f'bugdet_stage_seconds_sum{{stage="{name}"}}', f'bugdet_stage_seconds_count{{stage="{name}"}}')  # noqa: E731
    handler = server_mean('bugdet_request_latency_seconds_sum{method="Detect"}', 'bugdet_request_latency_seconds_count{method="Detect"}')
    decode, queue, respond = stage("decode"), stage("queue"), stage("respond")
    infer = server_mean("bugdet_inference_seconds_sum", "bugdet_inference_seconds_count")
    grpc_mean = statistics.mean(latency["grpc"]) / 1000
    floor_mean = statistics.mean(latency["floor"]) / 1000
    breakdown = {
        "client_grpc_and_transport": _ms(grpc_mean - handler),
        # ... of which an empty RPC costs this much; the rest is moving the frame's bytes and the
        # gRPC threads waking up on cores the model has just had to itself.
        "of_which_empty_rpc": _ms(floor_mean),
        "of_which_payload_and_wakeups": _ms(grpc_mean - handler - floor_mean),
        "server_decode": _ms(decode), "server_queue": _ms(queue), "server_infer": _ms(infer), "server_respond": _ms(respond),
        "server_handler_other": _ms(handler - decode - queue - infer - respond),
        "grpc_mean": _ms(grpc_mean),
    }
    # Means, to set beside the server's (its histograms give sums and counts); medians too, because
    # on a loaded machine a few preempted calls move a mean by more than the service costs.
    inproc_means = {name: _ms(statistics.mean(values)) for name, values in inproc_stages.items() if values}
    inproc_means["total_mean"] = _ms(statistics.mean(latency["inproc"]) / 1000)
    inproc_means.update({f"{name}_p50": _ms(statistics.median(values)) for name, values in inproc_stages.items() if values})

    per_round = []
    for before, after, wall, client_cpu in stream_rounds:
        batches = _delta(after, before, "bugdet_inference_seconds_count")
        per_round.append({
            "server_cpu_ms_per_frame": _ms(_delta(after, before, "cpu_s") / stream_frames),
            "client_cpu_ms_per_frame": _ms(client_cpu / stream_frames),
            "worker_busy_fraction": round(_delta(after, before, "bugdet_inference_seconds_sum") / wall, 3),
            "mean_batch": round(stream_frames / batches, 2) if batches else None,
            "server_infer_ms_per_frame": _ms(_delta(after, before, "bugdet_inference_seconds_sum") / stream_frames),
        })
    stream_breakdown = {key: statistics.median([r[key] for r in per_round if r[key] is not None]) for key in per_round[0]}
    stream_breakdown["inproc_cpu_ms_per_frame"] = _ms(statistics.median(inproc_cpu))
    # When every core is busy (a loaded machine, or a server at capacity) frames/s = cores / CPU per
    # frame, and the client shares the cores here: this is the throughput ratio at saturation.
    service_cpu = stream_breakdown["server_cpu_ms_per_frame"] + stream_breakdown["client_cpu_ms_per_frame"]
    stream_breakdown["throughput_ratio_cpu_bound"] = round(stream_breakdown["inproc_cpu_ms_per_frame"] / service_cpu, 4) if service_cpu else None
    frames_timed = len(batched_stages["infer"]) * int(context["max_batch"])
    for name in ("decode", "infer", "postprocess"):  # in-process time per frame in the throughput rounds
        stream_breakdown[f"inproc_{name}_ms_per_frame"] = _ms(sum(batched_stages[name]) / frames_timed)
    stream_breakdown["inproc_ms_per_frame_wall"] = round(1000 / inproc_rate, 4)
    stream_breakdown["stream_ms_per_frame_wall"] = round(1000 / stream_rate, 4)

    model_inproc, model_grpc = statistics.median(latency["inproc_model"]), statistics.median(latency["grpc_model"])
    return {
        "inproc_p50_ms": round(inproc_p50, 3),
        "inproc_p99_ms": round(_percentile(latency["inproc"], 99), 3),
        "grpc_p50_ms": round(grpc_p50, 3),
        "grpc_p99_ms": round(_percentile(latency["grpc"], 99), 3),
        "latency_ratio": round(grpc_p50 / inproc_p50, 4),
        "inproc_batched_fps": round(inproc_rate, 2),
        "stream_fps": round(stream_rate, 2),
        "throughput_ratio": round(stream_rate / inproc_rate, 4),
        "grpc_overhead_ms": round(grpc_p50 - inproc_p50, 3),
        "grpc_floor_p50_ms": round(floor_p50, 3),
        "latency_ratio_floor": round((inproc_p50 + floor_p50) / inproc_p50, 4),
        "latency_breakdown_ms": breakdown,
        "inproc_stages_ms": inproc_means,
        "stream_breakdown": stream_breakdown,
        "model_input_only": {
            "inproc_session_run_p50_ms": round(model_inproc, 3),
            "grpc_p50_ms": round(model_grpc, 3),
            "latency_ratio": round(model_grpc / model_inproc, 4),
        },
        "inproc_serial_fps": round(serial_rate, 2),
        "inproc_pipelined_fps": round(pipelined_rate, 2),
        "inproc_batched_fps_rounds": [round(v, 1) for v in inproc_fps],
        "inproc_pipelined_fps_rounds": [round(v, 1) for v in pipelined_fps],
        "stream_fps_rounds": [round(v, 1) for v in stream_fps],
        **context,
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "machine": platform.machine(),
    }


def bench_service(
    json_path: Path = typer.Option(..., "--json", help="Write the measurements here."),
    package: Optional[Path] = typer.Option(None, "--package", help="An exported model package (default: export compact_cnn, untrained)."),
    model_config: str = typer.Option("compact_cnn", "--model", help="Detector config to export when no --package is given."),
    iterations: int = typer.Option(200, "--iterations", min=10, help="Timed batch-1 calls per side, in process and over gRPC."),
    block: int = typer.Option(20, "--block", min=1, help="Calls per side before switching sides (latency)."),
    stream_frames: int = typer.Option(320, "--stream-frames", min=16, help="Frames per timed stream (and per in-process round)."),
    rounds: int = typer.Option(3, "--rounds", min=1, help="Alternating throughput rounds; medians are compared."),
    max_batch: int = typer.Option(8, "--max-batch", min=1, help="Batch size of the in-process baseline and the server's max batch."),
    client_threads: int = typer.Option(8, "--client-threads", min=1, help="Concurrent tritonclient threads (gRPC and HTTP rounds)."),
) -> None:
    """Service overhead: gRPC Detect latency, streaming and tritonclient (gRPC, HTTP) throughput vs in-process onnxruntime."""
    with tempfile.TemporaryDirectory(prefix="bugdet-bench-service-") as tmp:
        if package is None:
            package = _build_package(Path(tmp) / "models", model_config)
        elif len([p for p in package.parent.iterdir() if p.is_dir() and not p.name.startswith(".")]) != 1:
            staged = Path(tmp) / "models" / package.name
            staged.parent.mkdir()
            os.symlink(package.resolve(), staged)
            package = staged
        frames = _frames(24, *ENGINE_FRAME_HW)
        result = measure(package, frames, iterations, stream_frames, max_batch, rounds, block, client_threads=client_threads, tritonclient=True)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    typer.echo(json.dumps(result))


def register(bench_app: typer.Typer) -> None:
    bench_app.command("service")(bench_service)
