"""Server settings: plain dataclasses so the service needs neither bugdet's config nor pydantic."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: Reported by ServerMetadata; bumped with the wire contract, not with bugdet's library version.
SERVICE_VERSION = "1.0"


@dataclass(frozen=True)
class TlsConfig:
    cert: Path
    key: Path
    client_ca: Path | None = None  # set: clients must present a certificate signed by it (mTLS)


@dataclass(frozen=True)
class ServerConfig:
    models_dir: Path
    host: str = "127.0.0.1"
    port: int = 0
    metrics_port: int | None = None
    http_port: int | None = None  # KServe v2 over HTTP/REST on this port (0 = pick a free one); None = off
    max_batch: int = 8  # CPU convnets gain little beyond 4-8 (activations leave the cache); raise it on GPU
    max_queue_delay_ms: float = 0.0
    max_queue: int = 256
    max_message_bytes: int = 64 << 20
    max_frame_bytes: int = 48 << 20
    max_frames_per_request: int = 64
    # Declared pixels (from the raw fields or the PNG/JPEG header, checked before decoding): one
    # frame, and all frames of one request. 4096x4096 covers 4K/5K captures; decoding one costs
    # ~0.3-0.5 s of CPU, so a request's budget (64 full-HD frames) bounds it to a few seconds.
    max_pixels: int = 4096 * 4096
    max_request_pixels: int = 64 * 1920 * 1080
    workers: int = 32
    device: str = "auto"
    intra_op_threads: int = 0  # onnxruntime threads per inference; 0 = all cores
    token: str | None = None
    tls: TlsConfig | None = None
    poll_s: float = 2.0
    # Seconds without a completed request after which freed memory goes back to the kernel
    # (service/idle_release.py); 0 = never (resident size stays at its peak).
    idle_release_s: float = 0.5
    stream_window: int = 32  # frames one DetectStream may have in flight before reading pauses
    # DetectStream's temporal window (service/temporal.py): a bug type is flagged on a frame when at
    # least `flag_window_min` of the last `flag_window` frames of the same stream, model and
    # session were over its threshold. 1 and 1 = off (each frame on its own). On, a bug is flagged
    # up to flag_window - 1 frames later and results leave in the order their frames came in.
    flag_window: int = 1
    flag_window_min: int = 1
