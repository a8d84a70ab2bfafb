"""The engine harness: an automated playtest streams its frames to the detection service.

The playtest world plays the part of an engine plugin: every rendered frame is read back as raw
RGBA (as a GPU readback would be), sent over ``DetectStream`` with its session, frame index,
time, level and camera pose, and the detections coming back (matched by frame id) are joined
with the world's exact ground truth. The result is a :class:`PlaytestRun`, which
:mod:`bugdet.harness.report` turns into the HTML playtest report.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Iterator

import cv2
import numpy as np

from bugdet.errors import BugdetError

THUMB_WIDTH = 192


@dataclass
class FrameRecord:
    """One played frame: where the camera was, what was really wrong, what the service said."""

    index: int
    time: float
    pose: tuple[float, float, float, float, float, float]  # x, y, z, heading, pitch, roll
    truth: dict[str, bool]
    thumbnail: np.ndarray  # RGB, THUMB_WIDTH wide
    scores: dict[str, float] = field(default_factory=dict)
    flagged: dict[str, bool] = field(default_factory=dict)
    boxes: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)
    error: str = ""
    rgb: np.ndarray | None = None  # full frame, kept only while flagged: `bugdet review` imports flagged frames

    @property
    def is_flagged(self) -> bool:
        return any(self.flagged.values())

    @property
    def has_bug(self) -> bool:
        return any(self.truth.values())


@dataclass
class PlaytestRun:
    scene: str
    seed: int
    session_id: str
    model: str
    bug_types: list[str]  # the model's
    thresholds: dict[str, float]
    world_bounds: tuple[float, float, float, float]
    obstacles: list[dict[str, Any]]
    frames: list[FrameRecord]

    def evaluated_types(self) -> list[str]:
        """Bug types both the model detects and the playtest can inject (so have ground truth)."""
        known = set().union(*(f.truth for f in self.frames)) if self.frames else set()
        return [b for b in self.bug_types if b in known]

    def precision_recall(self) -> dict[str, dict[str, float | int | None]]:
        """Frame-level precision / recall per evaluated bug type, and for 'any' of them."""
        out: dict[str, dict[str, float | int | None]] = {}
        types = self.evaluated_types()
        for name in [*types, "any"]:
            tp = fp = fn = 0
            for f in self.frames:
                if f.error:
                    continue
                if name == "any":
                    predicted, actual = any(f.flagged.get(b, False) for b in types), any(f.truth.get(b, False) for b in types)
                else:
                    predicted, actual = f.flagged.get(name, False), f.truth.get(name, False)
                tp += predicted and actual
                fp += predicted and not actual
                fn += actual and not predicted
            out[name] = {
                "tp": tp, "fp": fp, "fn": fn,
                "precision": tp / (tp + fp) if tp + fp else None,
                "recall": tp / (tp + fn) if tp + fn else None,
            }
        return out


def _obstacles(world) -> list[dict[str, Any]]:
    shapes = []
    for c in world.colliders:
        if hasattr(c, "r"):
            shapes.append({"kind": "circle", "x": c.x, "y": c.y, "r": c.r})
        else:
            shapes.append({"kind": "box", "x": c.x, "y": c.y, "hx": c.hx, "hy": c.hy, "heading": c.heading})
    return shapes


def run_playtest(address: str, scene: str = "park", seed: int = 0, frames: int = 120, width: int = 320, height: int = 240,
                 bugs: tuple[str, ...] = (), prevalence: float = 0.2, token: str | None = None, model: str = "",
                 build: str = "bugdet-playtest") -> PlaytestRun:
    """Play ``frames`` frames of ``scene`` and stream each to the service at ``address``."""
    import grpc

    from bugdet.playtest.recorder import session_id
    from bugdet.playtest.session import PlaytestSession, PlaytestSpec
    from service.client import DetectionClient, metadata, pb

    spec = PlaytestSpec(scene=scene, seed=seed, frames=frames, width=width, height=height, prevalence=prevalence, bugs=tuple(bugs))
    session = PlaytestSession(spec)
    client = DetectionClient(address, token=token, timeout=max(60.0, frames * 2.0))
    try:
        info = client.info(model)
    except grpc.RpcError as exc:
        raise BugdetError(f"{address}: cannot reach the detection service ({exc.code().name}: {exc.details()})") from None
    sid = session_id(spec)
    records: dict[str, FrameRecord] = {}
    lock = threading.Lock()

    def requests() -> Iterator[Any]:
        for frame in session.frames():
            p = frame.pose
            rgba = np.dstack([frame.rgb, np.full(frame.rgb.shape[:2], 255, np.uint8)])
            thumb_h = round(frame.rgb.shape[0] * THUMB_WIDTH / frame.rgb.shape[1])
            record = FrameRecord(
                index=frame.index, time=frame.time, pose=(p.x, p.y, p.z, p.h, p.p, p.r),
                truth={name: bool(t.present) for name, t in frame.truths.items()},
                thumbnail=cv2.resize(frame.rgb, (THUMB_WIDTH, thumb_h), interpolation=cv2.INTER_AREA),
                rgb=frame.rgb,
            )
            frame_id = f"{sid}/{frame.index}"
            with lock:
                records[frame_id] = record
            meta = metadata(session=sid, frame_index=frame.index, timestamp_s=frame.time, level=scene, build=build,
                            pose=(p.x, p.y, p.z, p.h, p.p, p.r))
            raw = pb.RawImage(data=rgba.tobytes(), width=rgba.shape[1], height=rgba.shape[0], stride=rgba.shape[1] * 4, format=pb.RGBA8)
            yield pb.DetectStreamRequest(model=model, frame=pb.Frame(id=frame_id, raw=raw, metadata=meta))

    try:
        for result in client.stream_requests(requests(), timeout=max(60.0, frames * 2.0)):
            with lock:
                record = records[result.id]
            if result.HasField("error"):
                record.error = result.error.message
                continue
            for s in result.scores:
                record.scores[s.bug_type] = s.score
                record.flagged[s.bug_type] = s.is_bug
                if s.HasField("box"):
                    record.boxes[s.bug_type] = (s.box.x_min, s.box.y_min, s.box.x_max, s.box.y_max)
            record.rgb = record.rgb if record.is_flagged else None  # keep memory flat on long playtests
    except grpc.RpcError as exc:
        raise BugdetError(f"{address}: the playtest stream failed ({exc.code().name}: {exc.details()})") from None
    finally:
        client.close()
    ordered = sorted(records.values(), key=lambda r: r.index)
    return PlaytestRun(
        scene=scene, seed=seed, session_id=sid, model=f"{info.name}-{info.version}", bug_types=list(info.bug_types),
        thresholds=dict(info.thresholds), world_bounds=tuple(session.world.bounds), obstacles=_obstacles(session.world),
        frames=ordered,
    )
