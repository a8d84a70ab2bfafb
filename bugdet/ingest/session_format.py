"""The capture-session format: how a capture source hands frames and ground truth to bugdet.

The playtest world writes it, engine integrations may write it, and ``bugdet ingest`` reads it.
A session is a directory::

    session.json      SessionInfo: format tag, seed, scene, size, fps, bug types, status
    frames.jsonl      one FrameEntry per line, appended and flushed as frames are written
    frames/           the frames (PNG or JPEG), paths relative to the session directory
    masks/            per-frame masks (bug ground truth, the viewmodel mask), 8-bit PNG, 255 = set
    ids/              optional per-frame object-ID maps, 16-bit PNG (0 = background/sky)

``frames.jsonl`` is appended line by line, so a session cut short by a crash is still readable:
a torn last line is reported and skipped. Everything is plain JSON with sorted keys and no
wall-clock times, so the same seed produces the same bytes.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np

from bugdet.errors import InputError

SESSION_FORMAT = "bugdet.capture-session/1"
SESSION_FILE = "session.json"
FRAMES_FILE = "frames.jsonl"

#: Bug types the format knows; a session lists the subset it records ground truth for.
BUG_TYPES = (
    "fppc",
    "camera_clipping",
    "missing_texture",
    "low_res_texture",
    "stretched_texture",
    "z_fighting",
    "floating_object",
    "black_frame",
)


@dataclass
class Pose:
    """Camera pose in world units (metres) and degrees: heading, pitch, roll."""

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    h: float = 0.0
    p: float = 0.0
    r: float = 0.0


@dataclass
class BugTruth:
    """Exact ground truth of one bug type on one frame."""

    present: bool = False
    severity: float = 0.0
    mask: str | None = None  # relative path of an 8-bit mask PNG, when the bug has a location


@dataclass
class FrameEntry:
    index: int
    time: float
    file: str
    scene: str = ""
    pose: Pose | None = None
    fov: float | None = None
    weapon: str | None = None
    ids: str | None = None  # relative path of a 16-bit object-ID PNG
    weapon_mask: str | None = None  # relative path of the visible viewmodel mask (correct render)
    bugs: dict[str, BugTruth] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FrameEntry":
        data = dict(data)
        pose = data.pop("pose", None)
        bugs = data.pop("bugs", None) or {}
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(
            **known,
            pose=Pose(**pose) if pose else None,
            bugs={name: BugTruth(**truth) for name, truth in bugs.items()},
        )

    @property
    def is_bug(self) -> bool:
        return any(t.present for t in self.bugs.values())


@dataclass
class SessionInfo:
    session_id: str
    seed: int | None = None
    scene: str = ""
    width: int = 0
    height: int = 0
    fps: float = 30.0
    bug_types: list[str] = field(default_factory=list)
    prevalence: float | None = None
    split: str = ""  # train / val / test, so held-out scenes and seeds stay held out
    status: str = "recording"  # recording -> complete
    frame_count: int = 0
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)  # object id -> {name, category}
    generator: dict[str, Any] = field(default_factory=dict)
    format: str = SESSION_FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, indent=1) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SessionInfo":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def is_session_dir(path: Path) -> bool:
    return (Path(path) / SESSION_FILE).is_file()


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class SessionWriter:
    """Writes a capture session incrementally; :meth:`close` marks it complete."""

    def __init__(self, root: Path, info: SessionInfo, image_ext: str = ".png"):
        self.root = Path(root)
        if (self.root / SESSION_FILE).exists():
            raise InputError(f"{self.root}: a capture session already exists here")
        for sub in ("frames", "masks", "ids"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.info = info
        self.image_ext = image_ext
        self.info.status = "recording"
        self.info.frame_count = 0
        _atomic_write_text(self.root / SESSION_FILE, self.info.to_json())
        self._frames = open(self.root / FRAMES_FILE, "w", encoding="utf-8")

    def _write_image(self, rel: str, image: np.ndarray) -> str:
        path = self.root / rel
        if not cv2.imwrite(str(path), image):
            raise OSError(f"could not write {path}")
        return rel

    def write_frame_image(self, index: int, bgr: np.ndarray) -> str:
        return self._write_image(f"frames/{index:06d}{self.image_ext}", bgr)

    def write_mask(self, index: int, name: str, mask: np.ndarray) -> str:
        return self._write_image(f"masks/{index:06d}_{name}.png", (mask > 0).astype(np.uint8) * 255)

    def write_ids(self, index: int, ids: np.ndarray) -> str:
        return self._write_image(f"ids/{index:06d}.png", ids.astype(np.uint16))

    def append(self, entry: FrameEntry) -> None:
        self._frames.write(entry.to_json() + "\n")
        self._frames.flush()
        self.info.frame_count += 1

    def close(self) -> None:
        self._frames.close()
        self.info.status = "complete"
        _atomic_write_text(self.root / SESSION_FILE, self.info.to_json())

    def __enter__(self) -> "SessionWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._frames.close()


@dataclass
class SessionReader:
    root: Path
    info: SessionInfo
    problems: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, root: Path) -> "SessionReader":
        root = Path(root)
        path = root / SESSION_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{root}: not a capture session (no {SESSION_FILE})") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: corrupt session file: {exc}") from None
        if not isinstance(data, dict) or not str(data.get("format", "")).startswith("bugdet.capture-session/"):
            raise InputError(f"{path}: unknown session format {data.get('format') if isinstance(data, dict) else data!r}")
        return cls(root=root, info=SessionInfo.from_dict(data))

    def frames(self) -> Iterator[FrameEntry]:
        """Frame entries in order; torn or invalid lines are recorded in ``problems`` and skipped."""
        path = self.root / FRAMES_FILE
        if not path.exists():
            raise InputError(f"{self.root}: capture session has no {FRAMES_FILE}")
        with open(path, encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    yield FrameEntry.from_dict(json.loads(line))
                except (json.JSONDecodeError, TypeError, ValueError) as exc:
                    self.problems.append(f"{path}:{lineno}: skipped unreadable frame entry ({exc})")

    def resolve(self, rel: str | None) -> Path | None:
        return None if rel is None else self.root / rel


def check_capture_request(frames: int, prevalence: float, bugs: tuple[str, ...] | list[str]) -> None:
    """The checks every world's recorder makes on what it is asked to record (one ``InputError``
    each): at least one frame, a prevalence in [0, 0.5], and bug types to inject when it is above 0."""
    if frames < 1:
        raise InputError("--frames must be at least 1")
    if not 0.0 <= prevalence <= 0.5:
        raise InputError(f"prevalence must be in [0, 0.5], got {prevalence}")
    if prevalence > 0 and not bugs:
        raise InputError("a prevalence above 0 needs at least one bug type (--bugs)")
