"""A small Python client for ``bugdet.v1.Detection``: what the load tool, the benchmark and the
playtest harness use, and an example for engine integrators.

Frames are sent as raw RGB8 (what an engine's readback gives, no encode cost) or JPEG/PNG.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import cv2
import grpc
import numpy as np

from service import protos

pb, pb_grpc = protos.detection()


def loopback_only(target: str) -> str:
    """``target`` unchanged if it is a loopback HOST:PORT; the load and fuzz tools exit otherwise,
    so they can never be pointed at anyone else's server."""
    host = target.rsplit(":", 1)[0].strip("[]")
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise SystemExit(f"refusing to load {target}: only loopback addresses (127.0.0.0/8, ::1, localhost) are allowed")
    return target


def raw_frame(rgb: np.ndarray, frame_id: str = "", metadata: Any = None) -> Any:
    """An RGB8 raw frame (tightly packed rows)."""
    h, w = rgb.shape[:2]
    frame = pb.Frame(id=frame_id, raw=pb.RawImage(data=np.ascontiguousarray(rgb).tobytes(), width=w, height=h, format=pb.RGB8))
    if metadata is not None:
        frame.metadata.CopyFrom(metadata)
    return frame


def encoded_frame(rgb: np.ndarray, frame_id: str = "", kind: str = ".jpg", quality: int = 90, metadata: Any = None) -> Any:
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if kind == ".jpg" else []
    ok, buf = cv2.imencode(kind, np.ascontiguousarray(rgb[..., ::-1]), params)
    if not ok:
        raise ValueError(f"cannot encode frame as {kind}")
    frame = pb.Frame(id=frame_id, encoded=buf.tobytes())
    if metadata is not None:
        frame.metadata.CopyFrom(metadata)
    return frame


def metadata(session: str = "", frame_index: int = 0, timestamp_s: float = 0.0, level: str = "", build: str = "",
             pose: tuple[float, ...] | None = None) -> Any:
    """FrameMetadata; ``pose`` is (x, y, z, yaw, pitch, roll)."""
    meta = pb.FrameMetadata(session=session, frame_index=frame_index, timestamp_s=timestamp_s, level=level, build=build)
    if pose is not None:
        x, y, z, yaw, pitch, roll = (list(pose) + [0.0] * 6)[:6]
        meta.camera_pose.CopyFrom(pb.Pose(x=x, y=y, z=z, yaw=yaw, pitch=pitch, roll=roll))
    return meta


@dataclass
class DetectionClient:
    """Thin wrapper over the generated stub that adds the bearer token to every call."""

    address: str
    token: str | None = None
    timeout: float = 30.0
    root_certificates: bytes | None = None

    def __post_init__(self) -> None:
        options = [("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
        if self.root_certificates is not None:
            credentials = grpc.ssl_channel_credentials(root_certificates=self.root_certificates)
            self.channel = grpc.secure_channel(self.address, credentials, options=options)
        else:
            self.channel = grpc.insecure_channel(self.address, options=options)
        self.stub = pb_grpc.DetectionStub(self.channel)
        self._metadata = [("authorization", f"Bearer {self.token}")] if self.token else None

    def detect(self, frames: list[Any], model: str = "", include_heatmaps: bool = False) -> list[Any]:
        request = pb.DetectRequest(model=model, frames=frames, include_heatmaps=include_heatmaps)
        return list(self.stub.Detect(request, timeout=self.timeout, metadata=self._metadata).results)

    def stream(self, frames: Iterable[Any], model: str = "", include_heatmaps: bool = False, timeout: float | None = None) -> Iterator[Any]:
        """Results of a DetectStream (completion order; match them by ``id``)."""
        requests = (pb.DetectStreamRequest(model=model, frame=f, include_heatmaps=include_heatmaps) for f in frames)
        return self.stream_requests(requests, timeout)

    def stream_requests(self, requests: Iterable[Any], timeout: float | None = None) -> Iterator[Any]:
        """DetectStream of prepared ``DetectStreamRequest`` messages."""
        return self.stub.DetectStream(iter(requests), timeout=timeout or self.timeout, metadata=self._metadata)

    def info(self, model: str = "") -> Any:
        return self.stub.GetModelInfo(pb.ModelInfoRequest(model=model), timeout=self.timeout, metadata=self._metadata)

    def close(self) -> None:
        self.channel.close()


class SpawnedServer:
    """``python -m service`` in a child process on 127.0.0.1 with an ephemeral port.

    Used by the benchmark, the load tool and the playtest harness so that the server has its own
    interpreter (and GIL), as in production. ``with SpawnedServer(dir) as server: server.address``.
    """

    def __init__(self, models_dir: str, *flags: str, startup_timeout: float = 120.0):
        self.models_dir, self.flags, self.startup_timeout = str(models_dir), flags, startup_timeout
        self.process = None
        self.address = ""

    def __enter__(self) -> "SpawnedServer":
        import subprocess
        import sys
        import threading

        self.process = subprocess.Popen(
            [sys.executable, "-m", "service", "--models", self.models_dir, "--port", "0", *self.flags],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        ready = threading.Event()
        self.log: list[str] = []

        def pump() -> None:
            for line in self.process.stdout:
                self.log.append(line.rstrip())
                if line.startswith("bugdet service listening on "):
                    self.address = line.split(" on ", 1)[1].split(",")[0].strip()
                if line.startswith("serving ") or line.startswith("warning: no loadable"):
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(self.startup_timeout) or not self.address or self.process.poll() is not None:
            self.__exit__()
            raise RuntimeError("service did not start:\n" + "\n".join(self.log[-20:]))
        return self

    def __exit__(self, *exc_info) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except Exception:  # noqa: BLE001 - still alive after SIGTERM: kill our own child
                self.process.kill()
