#!/usr/bin/env python3
"""Bounded fuzzer for the bugdet detection service: malformed requests, then a health verdict.

    python tools/fuzz_service.py --models P/packages                 # spawns `python -m service` on 127.0.0.1
    python tools/fuzz_service.py --target 127.0.0.1:50051 --pid 1234 # a server already running here

Sends ``--count`` requests (default 5000; at most ``--seconds``) from ``--concurrency`` threads,
drawn from a seeded generator, across ``Detect``, ``DetectStream`` and KServe ``ModelInfer``:
random bytes, truncated or bit-flipped PNG/JPEG, headers declaring huge dimensions, unknown and
missing pixel formats, wrong strides and sizes, empty frames, 1-100 KB names and ids, wrong
tensor shapes and datatypes, unparseable messages, tiny deadlines, and valid frames in between.
It then checks health and compares the server's RSS with its value after a warm-up.

Prints (and with ``--json`` writes) a JSON report: status codes per method, per-frame codes of the
streams, ``internal`` (INTERNAL statuses: must be 0; unparseable messages too, which grpcio alone
would answer with INTERNAL and a leaked call), ``hangs`` (calls that ran past their deadline plus ``--slack-s``, DEADLINE_EXCEEDED on a
generous deadline, or streams that lost results: must be 0), ``health_after`` and the server's RSS
after a valid warm-up (``rss_fresh_mb``), after ``--warm-up`` uncounted fuzz requests
(``rss_start_mb``, the baseline) and at the end, both read after ``--settle-s`` idle seconds (the
server returns freed memory once idle; ``rss_*_busy_mb`` are the readings before that wait); for a server it spawned, how long SIGTERM took to
stop it (``sigterm_exit_s``, ``needed_sigkill``). Exit status 1 when internal > 0, hangs > 0,
health is not SERVING or the spawned server needed SIGKILL. Only loopback targets are accepted.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service import protos
from service.client import SpawnedServer, loopback_only

pb, pb_grpc = protos.detection()
ipb, ipb_grpc = protos.inference()

GENEROUS_S = 20.0  # deadline of the calls that must never time out


def rss_bytes(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def png_header(width: int, height: int, tail: bytes = b"") -> bytes:
    """A PNG signature + IHDR chunk declaring ``width`` x ``height`` (RGB, 8 bit), then ``tail``."""
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + len(ihdr).to_bytes(4, "big") + chunk + zlib.crc32(chunk).to_bytes(4, "big") + tail


def jpeg_header(width: int, height: int, tail: bytes = b"") -> bytes:
    """SOI + a baseline SOF0 segment declaring ``width`` x ``height``, then ``tail``."""
    sof = bytes([8]) + height.to_bytes(2, "big") + width.to_bytes(2, "big") + bytes([3, 1, 0x11, 0, 2, 0x11, 1, 3, 0x11, 1])
    return b"\xff\xd8\xff\xc0" + (len(sof) + 2).to_bytes(2, "big") + sof + tail


class Corpus:
    """Seeded generators of frames, Detect / DetectStream / ModelInfer requests."""

    def __init__(self, input_hw: tuple[int, int], rng: random.Random, model: str):
        self.rng = rng
        self.h, self.w = input_hw
        self.model = model  # the served model's name (KServe requests must name it)
        nrng = np.random.default_rng(rng.randrange(1 << 30))
        self.images = [nrng.integers(0, 255, (self.h * k, self.w * k, 3), dtype=np.uint8) for k in (1, 2)]
        self.pngs = [cv2.imencode(".png", im)[1].tobytes() for im in self.images]
        self.jpegs = [cv2.imencode(".jpg", im)[1].tobytes() for im in self.images]
        # Real, decodable, above the default --max-pixels (4096x4096): refused from the header.
        self.big_png = cv2.imencode(".png", np.zeros((4500, 4500, 3), np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()

    def name(self) -> str:
        return self.rng.choice("mx\u00e9\u2603") * self.rng.choice([1_000, 10_000, 100_000])

    def frame(self) -> pb.Frame:
        r, rng = self.rng, self.rng
        fid = self.name() if r.random() < 0.05 else f"f{r.randrange(1 << 20)}"
        kind = r.randrange(17)
        valid_png = r.choice(self.pngs + self.jpegs)
        if kind == 0:
            return pb.Frame(id=fid, encoded=rng.randbytes(rng.randrange(1, 4096)))
        if kind == 1:
            return pb.Frame(id=fid, encoded=valid_png[: rng.randrange(1, len(valid_png))])
        if kind == 2:
            data = bytearray(valid_png)
            for _ in range(rng.randrange(1, 16)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            return pb.Frame(id=fid, encoded=bytes(data))
        if kind == 3:
            w, h = rng.choice([(8192, 8192), (1 << 31, 1 << 31), (0, 100), (100000, 1), (4097, 4097), (50000, 2)])
            return pb.Frame(id=fid, encoded=png_header(w, h, rng.randbytes(rng.randrange(0, 512))))
        if kind == 4:
            w, h = rng.choice([(65535, 65535), (8192, 8192), (0, 0), (4097, 4097)])
            return pb.Frame(id=fid, encoded=jpeg_header(w, h, rng.randbytes(rng.randrange(0, 512))))
        if kind == 5:
            return pb.Frame(id=fid, encoded=self.big_png)
        if kind == 6:
            return pb.Frame(id=fid, encoded=b"")
        if kind == 7:
            return pb.Frame(id=fid)
        if kind == 8:
            fmt = rng.choice([4, 5, 99, 1 << 20, -1, -(1 << 31)])
            return pb.Frame(id=fid, raw=pb.RawImage(data=bytes(48), width=4, height=4, format=fmt))
        if kind == 9:
            return pb.Frame(id=fid, raw=pb.RawImage(data=bytes(48), width=4, height=4))
        if kind == 10:
            w, h = self.w, self.h
            stride = rng.choice([1, w * 3 - 1, w * 3 + rng.randrange(1, 512), (1 << 32) - 1, 0])
            size = rng.choice([w * 3 * h, stride * h if stride < 1 << 20 else 64, rng.randrange(0, 100000)])
            return pb.Frame(id=fid, raw=pb.RawImage(data=bytes(size), width=w, height=h, stride=stride, format=rng.choice([1, 2, 3])))
        if kind == 11:
            w, h = rng.choice([(0, 0), (0, 5), ((1 << 32) - 1, 1), (1, (1 << 32) - 1), (8192, 8192), (4096, 4097)])
            return pb.Frame(id=fid, raw=pb.RawImage(data=rng.randbytes(rng.randrange(0, 2048)), width=w, height=h, format=rng.choice([1, 2, 3])))
        image = r.choice(self.images)
        if kind in (12, 13):
            return pb.Frame(id=fid, encoded=valid_png)
        h, w = image.shape[:2]
        fmt = rng.choice([1, 2, 3])
        bpp = 3 if fmt == 3 else 4
        pixels = np.dstack([image, np.full((h, w), 255, np.uint8)]) if bpp == 4 else image
        return pb.Frame(id=fid, raw=pb.RawImage(data=pixels.tobytes(), width=w, height=h, format=fmt))

    def timeout(self) -> float:
        return self.rng.choice([0.001, 0.005, 0.02, 0.05]) if self.rng.random() < 0.15 else GENEROUS_S

    def detect(self) -> pb.DetectRequest:
        r = self.rng.random()
        model = self.name() if r < 0.05 else ("nope" if r < 0.08 else "")
        count = self.rng.choice([0, 65]) if self.rng.random() < 0.04 else self.rng.randint(1, 4)
        if self.rng.random() < 0.03:  # many valid but large frames: the request pixel budget
            return pb.DetectRequest(model=model, frames=[pb.Frame(id="hd", encoded=png_header(4096, 4096))] * 16)
        return pb.DetectRequest(model=model, frames=[self.frame() for _ in range(count)], include_heatmaps=self.rng.random() < 0.3)

    def stream(self) -> list[pb.DetectStreamRequest]:
        model = self.name() if self.rng.random() < 0.05 else ""
        return [pb.DetectStreamRequest(model=model, frame=self.frame()) for _ in range(self.rng.randint(1, 6))]

    def infer(self) -> ipb.ModelInferRequest:
        rng, h, w = self.rng, self.h, self.w
        n = rng.randint(1, 3)
        shape, datatype, name = [n, h, w, 3], "UINT8", "images"
        data = rng.randbytes(n * h * w * 3)
        kind = rng.randrange(10)
        request = ipb.ModelInferRequest(model_name=self.model, id=f"r{rng.randrange(1 << 20)}")
        if kind == 0:
            shape = rng.choice([[], [n], [n, h, w], [n, w, h, 3], [-1, h, w, 3], [0, h, w, 3], [1 << 40, h, w, 3], [n, h, w, 3, 1], [65, h, w, 3]])
        elif kind == 1:
            datatype = rng.choice(["FP32", "INT8", "BYTES", "", "uint8", "U" * rng.choice([300, 50_000])])
        elif kind == 2:
            data = data[: rng.randrange(len(data))]
        elif kind == 3:
            name = rng.choice(["", "input", self.name()])
        elif kind == 4:
            request.model_name = rng.choice(["", "nope", self.name()])
        elif kind == 5:
            request.model_version = rng.choice(["0", "999", self.name()])
        elif kind == 6:
            request.outputs.add(name=rng.choice(["scores", "nope", self.name()]))
        tensor = request.inputs.add(name=name, datatype=datatype, shape=shape)
        if kind == 7:
            tensor.contents.uint_contents.extend(rng.choice([[256] * 8, [1, 2, 3], list(rng.randbytes(n * h * w * 3))]))
        elif kind == 8:
            request.raw_input_contents.extend([data, data])
            request.inputs.add(name="images", datatype="UINT8", shape=shape)
        else:
            request.raw_input_contents.append(data)
        return request


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    by_method: dict[str, Counter] = field(default_factory=dict)
    stream_frames: Counter = field(default_factory=Counter)
    internal: list[str] = field(default_factory=list)
    hangs: list[str] = field(default_factory=list)
    requests: int = 0

    def record(self, method: str, code: str, details: str, elapsed: float, timeout: float, slack: float) -> None:
        with self.lock:
            self.requests += 1
            self.by_method.setdefault(method, Counter())[code] += 1
            if code == "INTERNAL":
                self.internal.append(f"{method}: {details[:300]}")
            if elapsed > timeout + slack:
                self.hangs.append(f"{method}: {elapsed:.2f} s against a {timeout} s deadline ({code})")
            elif code == "DEADLINE_EXCEEDED" and timeout >= GENEROUS_S:
                self.hangs.append(f"{method}: DEADLINE_EXCEEDED on a {timeout} s deadline")


def run_case(channel: grpc.Channel, corpus: Corpus, tally: Tally, slack: float, metadata) -> None:
    detection = pb_grpc.DetectionStub(channel)
    inference = ipb_grpc.GRPCInferenceServiceStub(channel)
    with tally.lock:  # the generator is shared: draw the case under the lock so runs are reproducible per seed
        pick = corpus.rng.random()
        timeout = corpus.timeout()
        if pick < 0.45:
            method, request = "Detect", corpus.detect()
        elif pick < 0.70:
            method, request = "DetectStream", corpus.stream()
        elif pick < 0.97:
            method, request = "ModelInfer", corpus.infer()
        else:
            method = corpus.rng.choice(["Detect", "DetectStream", "ModelInfer"])
            request = b"\xff\xff" + corpus.rng.randbytes(corpus.rng.randrange(0, 256))  # not protobuf (0xff is no valid tag)
    started = time.monotonic()
    code, details = "OK", ""
    try:
        if isinstance(request, bytes) and method == "DetectStream":
            list(channel.stream_stream("/bugdet.v1.Detection/DetectStream")(iter([request]), timeout=timeout, metadata=metadata))
        elif isinstance(request, bytes):
            path = "/bugdet.v1.Detection/Detect" if method == "Detect" else "/inference.GRPCInferenceService/ModelInfer"
            channel.unary_unary(path)(request, timeout=timeout, metadata=metadata)
        elif method == "Detect":
            detection.Detect(request, timeout=timeout, metadata=metadata)
        elif method == "ModelInfer":
            inference.ModelInfer(request, timeout=timeout, metadata=metadata)
        else:
            results = list(detection.DetectStream(iter(request), timeout=timeout, metadata=metadata))
            with tally.lock:
                for result in results:
                    tally.stream_frames[grpc.StatusCode.OK.name if not result.HasField("error") else _code_name(result.error.code)] += 1
            if len(results) != len(request):
                code, details = "LOST_RESULTS", f"{len(results)} results for {len(request)} frames"
                with tally.lock:
                    tally.hangs.append(f"DetectStream: {details}")
    except grpc.RpcError as exc:
        code, details = exc.code().name, exc.details() or ""
    tally.record(method, code, details, time.monotonic() - started, timeout, slack)


def _code_name(value: int) -> str:
    return next((c.name for c in grpc.StatusCode if c.value[0] == value), str(value))


def warm_up(channel: grpc.Channel, corpus: Corpus, metadata) -> None:
    """Valid traffic of every kind first, so the RSS baseline includes the server's working set."""
    detection = pb_grpc.DetectionStub(channel)
    inference = ipb_grpc.GRPCInferenceServiceStub(channel)
    frames = [pb.Frame(id=str(i), encoded=data) for i, data in enumerate(corpus.pngs + corpus.jpegs)]
    for _ in range(10):
        detection.Detect(pb.DetectRequest(frames=frames, include_heatmaps=True), timeout=GENEROUS_S, metadata=metadata)
        list(detection.DetectStream(iter([pb.DetectStreamRequest(frame=f) for f in frames]), timeout=GENEROUS_S, metadata=metadata))
        tensor = ipb.ModelInferRequest.InferInputTensor(name="images", datatype="UINT8", shape=[2, corpus.h, corpus.w, 3])
        inference.ModelInfer(ipb.ModelInferRequest(model_name=corpus.model, inputs=[tensor], raw_input_contents=[bytes(2 * corpus.h * corpus.w * 3)]),
                             timeout=GENEROUS_S, metadata=metadata)


def health(channel: grpc.Channel) -> str:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status
    except grpc.RpcError as exc:
        return f"error {exc.code().name}"
    return health_pb2.HealthCheckResponse.ServingStatus.Name(status)


def fuzz(address: str, pid: int | None, count: int, seconds: float, concurrency: int, seed: int, slack: float, token: str | None,
         progress: Callable[[str], None], warm_up_count: int = 500, settle_s: float = 2.0) -> dict:
    options = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
    channel = grpc.insecure_channel(address, options=options)
    metadata = [("authorization", f"Bearer {token}")] if token else None
    info = pb_grpc.DetectionStub(channel).GetModelInfo(pb.ModelInfoRequest(), timeout=GENEROUS_S, metadata=metadata)
    corpus = Corpus((info.input_height, info.input_width), random.Random(seed), info.name)
    warm_up(channel, corpus, metadata)
    rss_fresh = rss_bytes(pid)
    if warm_up_count:  # every error path once (lazy initialisation, decoder state), not counted
        send(channel, Corpus((info.input_height, info.input_width), random.Random(seed + 1 << 20), info.name), Tally(), warm_up_count,
             time.monotonic() + seconds, concurrency, slack, metadata, lambda line: None)
        warm_up(channel, corpus, metadata)
    rss_start_busy = rss_bytes(pid)
    time.sleep(settle_s)  # both baselines idle: the server hands freed memory back once idle
    rss_start = rss_bytes(pid)
    tally = Tally()
    started = time.monotonic()
    send(channel, corpus, tally, count, started + seconds, concurrency, slack, metadata, progress)
    elapsed = time.monotonic() - started
    time.sleep(1.0)  # let the server finish streams the clients abandoned
    verdict = health(channel)
    # A valid call of each kind must still work after the fuzzing.
    warm_up(channel, corpus, metadata)
    rss_end_busy = rss_bytes(pid)
    time.sleep(settle_s)
    rss_end = rss_bytes(pid)
    channel.close()
    codes = Counter()
    for counter in tally.by_method.values():
        codes.update(counter)
    change = None if not (rss_start and rss_end) else round(rss_end / rss_start - 1.0, 4)
    mb = lambda value: None if value is None else round(value / 2**20, 1)
    return {
        "target": address, "seed": seed, "count": count, "concurrency": concurrency,
        "requests": tally.requests, "seconds": round(elapsed, 2), "requests_per_s": round(tally.requests / max(elapsed, 1e-9), 1),
        "codes": dict(sorted(codes.items())), "by_method": {m: dict(sorted(c.items())) for m, c in sorted(tally.by_method.items())},
        "stream_frame_codes": dict(sorted(tally.stream_frames.items())),
        "internal": len(tally.internal), "internal_samples": tally.internal[:10],
        "hangs": len(tally.hangs), "hang_samples": tally.hangs[:10],
        "health_after": verdict,
        "server_pid": pid, "warm_up_requests": warm_up_count,
        "rss_fresh_mb": mb(rss_fresh), "rss_start_mb": mb(rss_start), "rss_end_mb": mb(rss_end),
        "settle_s": settle_s, "rss_start_busy_mb": mb(rss_start_busy), "rss_end_busy_mb": mb(rss_end_busy),
        "rss_change": change, "rss_within_10pct": None if change is None else abs(change) <= 0.10,
    }


def send(channel: grpc.Channel, corpus: Corpus, tally: Tally, count: int, stop_at: float, concurrency: int, slack: float, metadata,
         progress: Callable[[str], None]) -> None:
    """``count`` cases from ``concurrency`` threads, or fewer if ``stop_at`` (monotonic) comes first."""
    started = time.monotonic()
    next_report = [started + 10]
    in_flight = [0]

    def worker() -> None:
        while time.monotonic() < stop_at:
            with tally.lock:
                if tally.requests + in_flight[0] >= count:
                    return
                in_flight[0] += 1
            try:
                run_case(channel, corpus, tally, slack, metadata)
            finally:
                with tally.lock:
                    in_flight[0] -= 1
            if time.monotonic() > next_report[0]:
                next_report[0] = time.monotonic() + 10
                done = tally.requests
                eta = (count - done) * (time.monotonic() - started) / max(done, 1)
                progress(f"{done}/{count} requests, ETA {min(eta, stop_at - time.monotonic()):.0f} s")

    with ThreadPoolExecutor(concurrency) as pool:
        for f in [pool.submit(worker) for _ in range(concurrency)]:
            f.result()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--models", type=Path, help="model packages: spawn `python -m service` on 127.0.0.1")
    where.add_argument("--target", help="HOST:PORT of a running server (loopback only)")
    parser.add_argument("--pid", type=int, help="with --target: the server's process id, to measure its RSS")
    parser.add_argument("--token", help="bearer token of the target")
    parser.add_argument("--count", type=int, default=5000, help="requests to send (default 5000)")
    parser.add_argument("--seconds", type=float, default=600.0, help="stop after this long even if --count is not reached")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warm-up", type=int, default=500,
                        help="fuzz requests sent (not counted) before the RSS baseline, so one-time initialisation is not read as growth")
    parser.add_argument("--slack-s", type=float, default=2.0, help="a call this far past its deadline counts as a hang")
    parser.add_argument("--settle-s", type=float, default=2.0,
                        help="idle seconds before each RSS baseline is read (start and end alike)")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--server-flag", action="append", default=[], help="extra flag for the spawned server (repeatable)")
    args = parser.parse_args(argv)
    if args.count < 1 or args.seconds <= 0 or args.concurrency < 1:
        parser.error("--count, --seconds and --concurrency must be positive")

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.models is not None:
        if not args.models.is_dir():
            parser.error(f"{args.models}: no such models directory")
        with SpawnedServer(str(args.models), *args.server_flag) as server:
            report = fuzz(loopback_only(server.address), server.process.pid, args.count, args.seconds, args.concurrency, args.seed,
                          args.slack_s, None, progress, args.warm_up, args.settle_s)
            stopping = time.monotonic()
        # SpawnedServer sends SIGTERM and waits up to 10 s before SIGKILL: a wedged server needed the kill.
        report["sigterm_exit_s"] = round(time.monotonic() - stopping, 2)
        report["needed_sigkill"] = server.process.returncode == -9
    else:
        report = fuzz(loopback_only(args.target), args.pid, args.count, args.seconds, args.concurrency, args.seed, args.slack_s,
                      args.token, progress, args.warm_up, args.settle_s)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    ok = report["internal"] == 0 and report["hangs"] == 0 and report["health_after"] == "SERVING" and not report.get("needed_sigkill")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
