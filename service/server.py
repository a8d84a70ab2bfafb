"""Assemble and run the detection server: gRPC services, health, reflection, reload watcher, metrics.

One port carries ``bugdet.v1.Detection``, ``inference.GRPCInferenceService`` (KServe v2),
``grpc.health.v1.Health`` and server reflection (v1 and v1alpha); ``http_port`` adds KServe v2
over HTTP/REST on a second port. Health is NOT_SERVING until a model package has
been verified, loaded and warmed, then SERVING. A watcher thread rescans the models directory
every ``poll_s`` seconds for hot reload.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from concurrent import futures
from typing import Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from service import protos, reflection
from service.allocator import keep_frame_buffers_mapped, reexec_with_malloc_env
from service.auth import BearerTokenInterceptor
from service.batcher import DynamicBatcher
from service.config import ServerConfig
from service.idle_release import IdleMemoryRelease
from service.kserve import KServeModels
from service.metrics import Metrics, serve_metrics
from service.registry import ModelRegistry
from service.wire import MalformedRequestInterceptor

log = logging.getLogger("bugdet.service")

DETECTION_SERVICE = "bugdet.v1.Detection"
INFERENCE_SERVICE = "inference.GRPCInferenceService"


class DetectionServer:
    """A running server; ``start()`` returns the bound port, ``stop()`` drains and shuts down."""

    def __init__(self, config: ServerConfig):
        from service.detection_servicer import DetectionServicer
        from service.oip_servicer import InferenceServicer

        self.config = config
        self.metrics = Metrics()
        self.registry = ModelRegistry(config.models_dir, config.device, warm_batches=tuple(sorted({1, config.max_batch})),
                                      on_change=self._update_health, intra_op_threads=config.intra_op_threads)
        self.batcher = DynamicBatcher(config.max_batch, config.max_queue, config.max_queue_delay_ms, self.metrics,
                                      on_health=lambda _: self._update_health())
        self.health = health.HealthServicer()
        interceptors = [BearerTokenInterceptor(config.token)] if config.token else []
        interceptors.append(MalformedRequestInterceptor())  # unparseable bytes: INVALID_ARGUMENT, not grpcio's leaking INTERNAL
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="bugdet-rpc"),
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", config.max_message_bytes),
                ("grpc.max_send_message_length", config.max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=config.workers * 4,
        )
        detection_pb, detection_grpc = protos.detection()
        inference_pb, inference_grpc = protos.inference()
        detection_grpc.add_DetectionServicer_to_server(DetectionServicer(self.registry, self.batcher, self.metrics, config), self.server)
        self.kserve = KServeModels(self.registry, self.batcher, config)  # shared by the gRPC and HTTP front ends
        inference_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(self.kserve, self.metrics, config), self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = (
            detection_pb.DESCRIPTOR.services_by_name["Detection"].full_name,
            inference_pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        )
        reflection.enable_server_reflection(list(names), self.server)
        for name in ("", DETECTION_SERVICE, INFERENCE_SERVICE):
            self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._metrics_http = None
        self._kserve_http = None
        self.idle_release: IdleMemoryRelease | None = None
        self.port = 0
        self.metrics_port: int | None = None
        self.http_port: int | None = None

    def _update_health(self) -> None:
        """SERVING while a model is loaded and the batcher's threads are up (one that died is
        restarted by the batcher, which calls this again)."""
        serving = self.registry.models() and self.batcher.healthy and not self._stop.is_set()
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", DETECTION_SERVICE, INFERENCE_SERVICE):
            self.health.set(name, status)

    def _scan(self) -> None:
        try:
            before = self.registry.refusals
            report = self.registry.scan()
            self.metrics.reloads.inc(len(report.loaded), result="loaded")
            self.metrics.reloads.inc(self.registry.refusals - before, result="refused")
        except Exception:  # noqa: BLE001 - a broken directory must not stop the watcher
            log.exception("scanning %s failed", self.config.models_dir)

    def _watch(self) -> None:
        while not self._stop.is_set():
            self._scan()
            self._stop.wait(self.config.poll_s)

    def start(self) -> int:
        address = f"{self.config.host}:{self.config.port}"
        if self.config.tls:
            tls = self.config.tls
            credentials = grpc.ssl_server_credentials(
                [(tls.key.read_bytes(), tls.cert.read_bytes())],
                root_certificates=tls.client_ca.read_bytes() if tls.client_ca else None,
                require_client_auth=tls.client_ca is not None,
            )
            self.port = self.server.add_secure_port(address, credentials)
        else:
            self.port = self.server.add_insecure_port(address)
        if not self.port:
            raise OSError(f"cannot bind {address}")
        self.server.start()
        if self.config.metrics_port is not None:
            self._metrics_http = serve_metrics(self.metrics, self.config.host, self.config.metrics_port, lambda: bool(self.registry.models()) and self.batcher.healthy)
            self.metrics_port = self._metrics_http.server_port
        if self.config.http_port is not None:
            from service.http_api import KServeHttpApi, KServeHttpServer

            api = KServeHttpApi(self.kserve, self.metrics, self.config, lambda: bool(self.registry.models()) and self.batcher.healthy)
            self._kserve_http = KServeHttpServer(api, self.config)
            self.http_port = self._kserve_http.start(self.config.host, self.config.http_port)
        self._watcher = threading.Thread(target=self._watch, name="bugdet-model-watcher", daemon=True)
        self._watcher.start()
        if self.config.idle_release_s > 0:
            self.idle_release = IdleMemoryRelease(self.metrics.requests.total, self.config.idle_release_s)
            self.idle_release.start()
        return self.port

    def wait_until_serving(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.registry.models():
                return True
            time.sleep(0.02)
        return False

    def stop(self, grace: float = 2.0) -> None:
        self._stop.set()
        for name in ("", DETECTION_SERVICE, INFERENCE_SERVICE):
            self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        if self._kserve_http is not None:
            self._kserve_http.stop()
        self.server.stop(grace).wait()
        self.batcher.stop()
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        if self.idle_release is not None:
            self.idle_release.stop()


def run_forever(config: ServerConfig, announce: Callable[[str], None] = print) -> None:
    """Start, print where it listens, serve until SIGINT/SIGTERM, then drain."""
    reexec_with_malloc_env()  # the arena cap must hold before grpc's and onnxruntime's threads exist
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    keep_frame_buffers_mapped()  # this process only serves: no page faults per frame
    if not config.models_dir.is_dir():
        raise FileNotFoundError(f"{config.models_dir}: no such models directory")
    server = DetectionServer(config)
    port = server.start()
    announce(f"bugdet service listening on {config.host}:{port}" + (f", metrics on :{server.metrics_port}/metrics" if server.metrics_port else "")
             + (f", KServe v2 HTTP on :{server.http_port}" if server.http_port else ""))
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    if not server.wait_until_serving(120):
        announce(f"warning: no loadable model package in {config.models_dir} yet; health stays NOT_SERVING")
    else:
        announce("serving " + ", ".join(m.key for m in server.registry.models()))
    done.wait()
    server.stop()
