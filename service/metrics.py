"""Prometheus metrics in the text exposition format, served over a tiny HTTP endpoint.

Hand-rolled (a few counters, gauges and histograms) so the service needs no extra dependency;
``GET /metrics`` on ``--metrics-port`` returns them, ``GET /healthz`` answers 200 when serving.
"""

from __future__ import annotations

import bisect
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
#: Finer at the low end: decoding a frame or building a reply takes tens to hundreds of microseconds.
STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    body = ",".join(f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for k, v in labels)
    return "{" + body + "}"


class Counter:
    def __init__(self, name: str, help_text: str):
        self.name, self.help, self._values, self._lock = name, help_text, {}, threading.Lock()

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        return self._values.get(tuple(sorted(labels.items())), 0.0)

    def total(self) -> float:
        """The sum over every label set (e.g. all requests, whatever their method and code)."""
        with self._lock:
            return sum(self._values.values())

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        lines += [f"{self.name}{_labels(k)} {v:g}" for k, v in sorted(self._values.items())]
        return lines


class Gauge:
    def __init__(self, name: str, help_text: str):
        self.name, self.help, self._value = name, help_text, 0.0

    def set(self, value: float) -> None:
        self._value = float(value)

    def render(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} gauge", f"{self.name} {self._value:g}"]


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...]):
        self.name, self.help, self.buckets = name, help_text, buckets
        self._series: dict[tuple, list] = {}
        self._lock = threading.Lock()

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._series.setdefault(key, [[0] * len(self.buckets), 0, 0.0])
            index = bisect.bisect_left(self.buckets, value)
            if index < len(self.buckets):
                series[0][index] += 1
            series[1] += 1
            series[2] += value

    def count(self, **labels: str) -> int:
        series = self._series.get(tuple(sorted(labels.items())))
        return series[1] if series else 0

    def total(self, **labels: str) -> float:
        series = self._series.get(tuple(sorted(labels.items())))
        return series[2] if series else 0.0

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for key, (counts, total, acc) in sorted(self._series.items()):
            running = 0
            for bound, count in zip(self.buckets, counts):
                running += count
                lines.append(f"{self.name}_bucket{_labels(key + (('le', f'{bound:g}'),))} {running}")
            lines.append(f"{self.name}_bucket{_labels(key + (('le', '+Inf'),))} {total}")
            lines.append(f"{self.name}_sum{_labels(key)} {acc:g}")
            lines.append(f"{self.name}_count{_labels(key)} {total}")
        return lines


class Metrics:
    """Everything the service counts."""

    def __init__(self) -> None:
        self.requests = Counter("bugdet_requests_total", "RPCs handled, by method and status code.")
        self.frames = Counter("bugdet_frames_total", "Frames inferred, by model.")
        self.latency = Histogram("bugdet_request_latency_seconds", "RPC latency (stream: per frame), by method.", LATENCY_BUCKETS)
        self.inference_seconds = Histogram("bugdet_inference_seconds", "onnxruntime time per batch.", LATENCY_BUCKETS)
        self.batch_size = Histogram("bugdet_batch_size", "Frames per inference batch.", BATCH_BUCKETS)
        self.queue_depth = Gauge("bugdet_queue_depth", "Frames waiting in the batching queue.")
        # Where a request's server time goes, so "why is gRPC slower than in-process?" has an answer
        # from a live server: decode (bytes -> model input), queue (waiting for the batch worker;
        # 0 when run inline), respond (model output -> protobuf). Inference is bugdet_inference_seconds.
        self.stage_seconds = Histogram("bugdet_stage_seconds", "Server time per request (stream: per frame) by stage.", STAGE_BUCKETS)
        self.inline_batches = Counter("bugdet_inline_batches_total", "Batches run on the request's own thread (batcher idle, no hand-off).")
        self.reloads = Counter("bugdet_model_reloads_total", "Packages loaded, by result (loaded/refused).")
        self.thread_restarts = Counter("bugdet_batcher_restarts_total", "Batcher threads that died and were restarted, by thread.")

    def render(self) -> str:
        parts = [self.requests, self.frames, self.latency, self.inference_seconds, self.batch_size, self.queue_depth,
                 self.stage_seconds, self.inline_batches, self.reloads, self.thread_restarts]
        return "\n".join(line for metric in parts for line in metric.render()) + "\n"


def serve_metrics(metrics: Metrics, host: str, port: int, is_serving: Callable[[], bool]) -> ThreadingHTTPServer:
    """Start the HTTP endpoint in a daemon thread; returns the server (``.server_port``, ``.shutdown()``)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.split("?")[0] == "/metrics":
                body, status, kind = metrics.render().encode(), 200, "text/plain; version=0.0.4; charset=utf-8"
            elif self.path == "/healthz":
                ok = is_serving()
                body, status, kind = (b"serving\n" if ok else b"not serving\n"), (200 if ok else 503), "text/plain"
            else:
                body, status, kind = b"not found\n", 404, "text/plain"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="bugdet-metrics", daemon=True).start()
    return server
