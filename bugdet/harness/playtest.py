"""The engine harness: an automated playtest streams its frames to the detection service.

The playtest world plays the part of an engine plugin: every rendered frame is read back as raw
RGBA (as a GPU readback would be), sent over ``DetectStream`` with its session, frame index,
time, level and camera pose, and the detections coming back (matched by frame id) are joined
with the world's exact ground truth. The result is a :class:`PlaytestRun`, which
:mod:`bugdet.harness.report` turns into the HTML playtest report.

Temporal window (``flag_window`` N, ``flag_window_min`` K; service/temporal.py): a bug type is
flagged on a frame when K of the last N frames were over its threshold, which drops one-frame
blips at a cost of up to N-1 frames of detection latency. ``bugdet harness --models`` starts its
service with ``--flag-window`` so the window runs where an engine's would, in the server's
DetectStream (``server_window=True`` here). Against an already running service (``--server``) the
harness cannot change the server's settings, so it applies the same window itself, from the raw
scores, in the order it sent the frames; the server's own flags are then replaced.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Iterator

import cv2
import numpy as np

from bugdet.errors import BugdetError
from service.temporal import TemporalWindow, check_window

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
    flag_window: tuple[int, int] = (1, 1)  # (N, K): flagged when K of the last N frames were over the threshold

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
                 build: str = "bugdet-playtest", flag_window: int = 1, flag_window_min: int = 1,
                 server_window: bool = False) -> PlaytestRun:
    """Play ``frames`` frames of ``scene`` and stream each to the service at ``address``.

    ``flag_window``/``flag_window_min`` (N, K): flag a bug type when K of the last N frames were
    over its threshold. ``server_window``: the service at ``address`` was started with the same
    window, so its flags are taken as they are; otherwise the harness applies the window itself
    (a no-op for N = 1, which keeps the service's per-frame flags).
    """
    import grpc

    from bugdet.playtest.recorder import session_id
    from bugdet.playtest.session import PlaytestSession, PlaytestSpec
    from service.client import DetectionClient, metadata, pb

    check_window(flag_window, flag_window_min)
    spec = PlaytestSpec(scene=scene, seed=seed, frames=frames, width=width, height=height, prevalence=prevalence, bugs=tuple(bugs))
    session = PlaytestSession(spec)
    client = DetectionClient(address, token=token, timeout=max(60.0, frames * 2.0))
    try:
        info = client.info(model)
    except grpc.RpcError as exc:
        raise BugdetError(f"{address}: cannot reach the detection service ({exc.code().name}: {exc.details()})") from None
    sid = session_id(spec)
    records: dict[str, FrameRecord] = {}
    sent: list[str] = []  # frame ids in the order they were sent
    lock = threading.Lock()
    # Client side: results come back in completion order, the window needs send order, so a result
    # waits in `arrived` until every frame sent before it has been answered.
    window = TemporalWindow(flag_window, flag_window_min) if flag_window > 1 and not server_window else None
    thresholds = {bug: float(t) for bug, t in info.thresholds.items()}
    arrived: set[str] = set()
    next_in_order = 0

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
                sent.append(frame_id)
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
            for s in result.scores:
                record.scores[s.bug_type] = s.score
                record.flagged[s.bug_type] = s.is_bug
                if s.HasField("box"):
                    record.boxes[s.bug_type] = (s.box.x_min, s.box.y_min, s.box.x_max, s.box.y_max)
            if window is None:
                record.rgb = record.rgb if record.is_flagged else None  # keep memory flat on long playtests
                continue
            with lock:
                arrived.add(result.id)
                while next_in_order < len(sent) and sent[next_in_order] in arrived:
                    frame_id = sent[next_in_order]
                    arrived.discard(frame_id)
                    next_in_order += 1
                    ready = records[frame_id]
                    if not ready.error:  # a failed frame has no score and does not enter the window
                        ready.flagged = window.update_scores(ready.scores, thresholds)
                        ready.boxes = {b: box for b, box in ready.boxes.items() if ready.flagged.get(b)}
                    ready.rgb = ready.rgb if ready.is_flagged else None
    except grpc.RpcError as exc:
        raise BugdetError(f"{address}: the playtest stream failed ({exc.code().name}: {exc.details()})") from None
    finally:
        client.close()
    ordered = sorted(records.values(), key=lambda r: r.index)
    return PlaytestRun(
        scene=scene, seed=seed, session_id=sid, model=f"{info.name}-{info.version}", bug_types=list(info.bug_types),
        thresholds=dict(info.thresholds), world_bounds=tuple(session.world.bounds), obstacles=_obstacles(session.world),
        frames=ordered, flag_window=(flag_window, flag_window_min),
    )
