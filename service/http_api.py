"""KServe v2 / Open Inference Protocol over HTTP/REST, on its own port (``--http-port``).

For engines whose HTTP client is easier to ship than gRPC (Unreal's HTTP module, UnityWebRequest,
curl). Same models, batcher, statistics and errors as the gRPC front end (both call
:mod:`service.kserve`); ``tritonclient.http`` works unchanged. Routes::

    GET  /v2/health/live | /v2/health/ready                 200, or 503 while no model is ready
    GET  /v2                                                server metadata
    GET  /v2/models/{m}[/versions/{v}]                      model metadata
    GET  /v2/models/{m}[/versions/{v}]/ready                200, or the reason as an error
    GET  /v2/models/{m}[/versions/{v}]/config               Triton model configuration
    GET  /v2/models[/{m}[/versions/{v}]]/stats              inference statistics
    POST /v2/models/{m}[/versions/{v}]/infer                inference
    POST /v2/repository/index                               models in the directory, with state
    POST /v2/repository/models/{m}/load | unload            explicit model control

``infer`` takes JSON tensors (``data``: flat or nested, row-major) and Triton's binary-data
extension: with an ``Inference-Header-Content-Length: N`` header the first N bytes of the body are
the JSON request and each input with ``parameters.binary_data_size`` takes its bytes from what
follows, in input order; an output requested with ``parameters.binary_data: true`` (or all, with
the request parameter ``binary_data_output``) comes back the same way after the JSON answer.
A request parameter ``timeout`` (microseconds, as tritonclient sends it) is the request's deadline.

Errors are ``{"error": "..."}`` with the status from :func:`service.errors.status_for` mapped to
HTTP: 400 bad input, 401 token, 404 unknown model, 413 body too large, 429 queue full, 503 not
ready, 504 deadline. The bearer token (``Authorization: Bearer ...``) is required everywhere
except liveness and readiness. The standard library's threading HTTP server keeps the service
free of web-framework dependencies; HTTP/1.1 keep-alive lets one client connection carry many
requests.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import ssl
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import unquote, urlsplit

import grpc

from service.config import ServerConfig
from service.errors import InvalidRequest, status_for
from service.kserve import InputTensor, KServeModels, model_metadata, server_metadata
from service.metrics import Metrics

log = logging.getLogger("bugdet.service")

HEADER_LENGTH = "Inference-Header-Content-Length"

#: gRPC status -> HTTP status, for every code the service produces.
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.FAILED_PRECONDITION: 400, grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401, grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.CANCELLED: 499, grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}

_MODEL = r"/v2/models/(?P<model>[^/]+)(?:/versions/(?P<version>[^/]+))?"


class HttpError(Exception):
    """An HTTP-level refusal (routing, auth, framing) with its status."""

    def __init__(self, status: int, message: str, close: bool = False):
        super().__init__(message)
        self.status, self.close = status, close


class KServeHttpApi:
    """The routes; :meth:`handle` answers one request on a handler thread."""

    def __init__(self, models: KServeModels, metrics: Metrics, config: ServerConfig, ready: Callable[[], bool]):
        self.models, self.metrics, self.config, self.ready = models, metrics, config, ready
        self._token = f"Bearer {config.token}".encode() if config.token else None
        # (method, pattern, handler, needs token)
        self.routes: list[tuple[str, re.Pattern, Callable, bool]] = [
            ("GET", re.compile(r"/v2/health/live"), self.live, False),
            ("GET", re.compile(r"/v2/health/ready"), self.server_ready, False),
            ("GET", re.compile(r"/v2"), self.server_metadata, True),
            ("GET", re.compile(r"/v2/models/stats"), self.stats, True),
            ("GET", re.compile(_MODEL), self.model_metadata, True),
            ("GET", re.compile(_MODEL + "/ready"), self.model_ready, False),
            ("GET", re.compile(_MODEL + "/config"), self.model_config, True),
            ("GET", re.compile(_MODEL + "/stats"), self.stats, True),
            ("POST", re.compile(_MODEL + "/infer"), self.infer, True),
            ("POST", re.compile(r"/v2/repository/index"), self.index, True),
            ("POST", re.compile(r"/v2/repository/models/(?P<model>[^/]+)/load"), self.load, True),
            ("POST", re.compile(r"/v2/repository/models/(?P<model>[^/]+)/unload"), self.unload, True),
        ]

    # -- framing
    def handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        started = time.perf_counter()
        name = "HTTP"
        headers: dict[str, str] = {}
        try:
            route, params, needs_token = self._route(method, urlsplit(handler.path).path)
            name = f"HTTP {route.__name__}"
            if needs_token:
                self._authorize(handler)
            body = self._read_body(handler)
            status, payload, headers = route(handler, params, body)
        except HttpError as exc:
            status, payload = exc.status, _error(str(exc))
            if exc.close:
                handler.close_connection = True
        except Exception as exc:  # noqa: BLE001 - mapped to a status, never a crash
            code, message = status_for(exc)
            status, payload = HTTP_STATUS.get(code, 500), _error(message)
            if status in (429, 503):
                headers = {"Retry-After": "1"}
        self._send(handler, status, payload, headers)
        self.metrics.requests.inc(method=name, code=str(status))
        if status == 200:
            self.metrics.latency.observe(time.perf_counter() - started, method=name)

    def _route(self, method: str, path: str) -> tuple[Callable, dict[str, str], bool]:
        other_method = False
        for verb, pattern, route, needs_token in self.routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if verb != method:
                other_method = True
                continue
            params = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
            return route, params, needs_token
        if other_method:
            raise HttpError(405, f"{method} is not allowed on {path[:200]}", close=True)
        raise HttpError(404, f"no such endpoint: {method} {path[:200]}", close=True)

    def _authorize(self, handler: BaseHTTPRequestHandler) -> None:
        if self._token is None:
            return
        given = handler.headers.get("Authorization")
        if given is None:
            raise HttpError(401, "missing 'Authorization: Bearer <token>' header", close=True)
        if not hmac.compare_digest(given.encode("latin-1", "replace"), self._token):
            raise HttpError(401, "invalid bearer token", close=True)

    def _read_body(self, handler: BaseHTTPRequestHandler) -> bytes:
        if handler.headers.get("Transfer-Encoding"):
            raise HttpError(411, "chunked bodies are not supported; send Content-Length", close=True)
        try:
            length = int(handler.headers.get("Content-Length") or 0)
        except ValueError:
            raise HttpError(400, "bad Content-Length", close=True) from None
        limit = self.config.max_message_bytes
        if length < 0 or length > limit:
            raise HttpError(413, f"body of {length} bytes exceeds the {limit}-byte limit", close=True)
        try:
            body = handler.rfile.read(length) if length else b""
        except OSError as exc:  # reset or timed out mid-body
            raise HttpError(400, f"body could not be read: {exc}", close=True) from None
        if len(body) != length:
            raise HttpError(400, f"body ended after {len(body)} of {length} bytes", close=True)
        encoding = (handler.headers.get("Content-Encoding") or "identity").lower()
        if encoding == "identity":
            return body
        if encoding not in ("gzip", "deflate"):
            raise HttpError(415, f"unsupported Content-Encoding {encoding[:40]!r} (gzip, deflate or none)")
        inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
        try:
            inflated = inflater.decompress(body, limit + 1)
        except zlib.error as exc:
            raise HttpError(400, f"body is not valid {encoding}: {exc}") from None
        if len(inflated) > limit or inflater.unconsumed_tail:
            raise HttpError(413, f"decompressed body exceeds the {limit}-byte limit")
        return inflated

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, payload: bytes | dict | None, headers: dict[str, str]) -> None:
        if isinstance(payload, dict):
            payload = json.dumps(payload, separators=(",", ":")).encode()
            headers = {"Content-Type": "application/json", **headers}
        payload = payload or b""
        try:
            handler.send_response(status)
            for key, value in headers.items():
                handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(payload)))
            if handler.close_connection:
                handler.send_header("Connection", "close")
            handler.end_headers()
            if payload:
                handler.wfile.write(payload)
        except OSError:  # the client went away
            handler.close_connection = True

    # -- routes: each returns (status, payload, extra headers)
    def live(self, handler, params, body):
        return 200, None, {}

    def server_ready(self, handler, params, body):
        if self.ready():
            return 200, None, {}
        return 503, _error("no model is ready yet"), {"Retry-After": "1"}

    def server_metadata(self, handler, params, body):
        return 200, server_metadata(), {}

    def model_metadata(self, handler, params, body):
        return 200, model_metadata(self.models.model(params["model"], params.get("version", ""))), {}

    def model_ready(self, handler, params, body):
        self.models.model(params["model"], params.get("version", ""))  # raises with the reason
        return 200, None, {}

    def model_config(self, handler, params, body):
        return 200, self.models.config_of(params["model"], params.get("version", "")), {}

    def stats(self, handler, params, body):
        rows = self.models.stats(params.get("model", ""), params.get("version", ""))
        return 200, {"model_stats": [row.as_dict() for row in rows]}, {}

    def index(self, handler, params, body):
        request = _json_object(body) if body.strip() else {}
        entries = self.models.index(bool(request.get("ready", False)))
        payload = [{"name": e.name, "version": e.version, "state": e.state, **({"reason": e.reason} if e.reason else {})}
                   for e in entries]
        return 200, json.dumps(payload, separators=(",", ":")).encode(), {"Content-Type": "application/json"}

    def load(self, handler, params, body):
        self.models.load(params["model"])
        return 200, None, {}

    def unload(self, handler, params, body):
        self.models.unload(params["model"])
        return 200, None, {}

    def infer(self, handler, params, body):
        header_length = handler.headers.get(HEADER_LENGTH)
        if header_length is None:
            json_part, binary = body, memoryview(b"")
        else:
            try:
                split = int(header_length)
            except ValueError:
                raise InvalidRequest(f"{HEADER_LENGTH} must be an integer") from None
            if not 0 <= split <= len(body):
                raise InvalidRequest(f"{HEADER_LENGTH} {split} is outside the {len(body)}-byte body")
            json_part, binary = body[:split], memoryview(body)[split:]
        request = _json_object(json_part)
        tensors = _input_tensors(request, binary)
        requested, binary_outputs = _requested_outputs(request)
        deadline = _deadline(request)
        request_id = request.get("id", "")
        if not isinstance(request_id, str):
            raise InvalidRequest("'id' must be a string")
        pending = self.models.prepare(params["model"], params.get("version", ""), tensors, requested, request_id)
        try:
            outputs = self.models.run(pending, deadline)
            payload, headers = _infer_response(pending, outputs, binary_outputs)
        except BaseException:
            pending.finish(False)
            raise
        pending.finish(True)
        self.metrics.frames.inc(len(pending.frames), model=pending.model.name)
        return 200, payload, headers


def _error(message: str) -> dict:
    return {"error": message}


def _json_object(data: bytes) -> dict:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest(f"request is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(value, dict):
        raise InvalidRequest("request must be a JSON object")
    return value


def _parameters(entry: dict, what: str) -> dict:
    parameters = entry.get("parameters", {})
    if not isinstance(parameters, dict):
        raise InvalidRequest(f"{what}: 'parameters' must be an object")
    return parameters


def _input_tensors(request: dict, binary: memoryview) -> list[InputTensor]:
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidRequest("request needs a non-empty 'inputs' list")
    tensors, offset = [], 0
    for index, entry in enumerate(inputs):
        if not isinstance(entry, dict):
            raise InvalidRequest(f"inputs[{index}] must be an object")
        name, datatype, shape = entry.get("name"), entry.get("datatype"), entry.get("shape")
        if not isinstance(name, str) or not isinstance(datatype, str):
            raise InvalidRequest(f"inputs[{index}] needs string 'name' and 'datatype'")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise InvalidRequest(f"inputs[{index}] needs 'shape', a list of integers")
        size = _parameters(entry, f"inputs[{index}]").get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(binary):
                raise InvalidRequest(f"inputs[{index}]: binary_data_size {size!r} does not fit the {len(binary) - offset} binary bytes left")
            tensors.append(InputTensor(name, datatype, shape, raw=binary[offset:offset + size]))
            offset += size
        else:
            if "data" not in entry:
                raise InvalidRequest(f"inputs[{index}] has neither 'data' nor a binary_data_size parameter")
            tensors.append(InputTensor(name, datatype, shape, values=entry["data"]))
    if offset != len(binary):
        raise InvalidRequest(f"{len(binary) - offset} bytes of binary data follow the inputs unclaimed")
    return tensors


def _requested_outputs(request: dict) -> tuple[list[str], set[str]]:
    """Requested output names (empty: all) and which of them to return as binary data."""
    all_binary = bool(_parameters(request, "request").get("binary_data_output", False))
    outputs = request.get("outputs", [])
    if not isinstance(outputs, list):
        raise InvalidRequest("'outputs' must be a list")
    names, binary = [], set()
    for index, entry in enumerate(outputs):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise InvalidRequest(f"outputs[{index}] needs a string 'name'")
        parameters = _parameters(entry, f"outputs[{index}]")
        if parameters.get("classification"):
            raise InvalidRequest("the classification extension is not supported; request the scores")
        names.append(entry["name"])
        if parameters.get("binary_data", all_binary):
            binary.add(entry["name"])
    if not outputs and all_binary:
        binary = {"*"}
    return names, binary


def _deadline(request: dict) -> float | None:
    timeout_us = _parameters(request, "request").get("timeout")
    if timeout_us is None:
        return None
    if not isinstance(timeout_us, (int, float)) or isinstance(timeout_us, bool) or timeout_us <= 0:
        raise InvalidRequest("parameter 'timeout' must be a positive number of microseconds")
    return time.monotonic() + timeout_us / 1e6


def _infer_response(pending, outputs: dict, binary_outputs: set[str]) -> tuple[bytes, dict[str, str]]:
    model = pending.model
    answer: dict = {"model_name": model.name, "model_version": model.version}
    if pending.request_id:
        answer["id"] = pending.request_id
    tensors, blobs = [], []
    for name, array in outputs.items():
        tensor = {"name": name, "datatype": "FP32", "shape": list(array.shape)}
        if "*" in binary_outputs or name in binary_outputs:
            blob = array.tobytes()
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = array.ravel().tolist()
        tensors.append(tensor)
    answer["outputs"] = tensors
    header = json.dumps(answer, separators=(",", ":")).encode()
    if not blobs:
        return header, {"Content-Type": "application/json"}
    return b"".join([header, *blobs]), {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(header))}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: one client connection carries many requests
    server_version = "bugdet"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms Nagle/delayed-ACK stall
    timeout = 120  # seconds a connection may sit idle or send a body slowly before its thread is freed
    api: KServeHttpApi

    def do_GET(self) -> None:  # noqa: N802
        self.api.handle(self, "GET")

    def do_POST(self) -> None:  # noqa: N802
        self.api.handle(self, "POST")

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        log.debug("http %s " + format, self.address_string(), *args)


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 drops SYNs when a few dozen clients connect at once


class KServeHttpServer:
    """The HTTP front end on its own port; :meth:`start` returns the bound port."""

    def __init__(self, api: KServeHttpApi, config: ServerConfig):
        self.api, self.config = api, config
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self, host: str, port: int) -> int:
        handler = type("KServeHandler", (_Handler,), {"api": self.api})
        server = _Server((host, port), handler)
        server.daemon_threads = True
        if self.config.tls:
            tls = self.config.tls
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls.cert), str(tls.key))
            if tls.client_ca:
                context.verify_mode = ssl.CERT_REQUIRED
                context.load_verify_locations(str(tls.client_ca))
            # The handshake runs on the connection's own thread, not in the accept loop.
            server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="bugdet-http", daemon=True)
        self._thread.start()
        return server.server_port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
