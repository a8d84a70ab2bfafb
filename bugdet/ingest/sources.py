"""Capture sources: each turns one input path into a stream of decoded frames.

A source knows its kind, a content fingerprint of the whole capture (so a capture ingested
before, even under another path, is recognised), an estimate of its length for progress bars,
and the problems it met (a corrupt image, a truncated video). Problems are collected, not raised:
one bad file in a night's captures must not stop the rest.
"""

from __future__ import annotations

import hashlib
import os
import re
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

# FFmpeg's own console chatter ("moov atom not found") would bypass our one-line errors.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from bugdet.errors import InputError
from bugdet.ingest.session_format import FRAMES_FILE, SESSION_FILE, FrameEntry, SessionReader, is_session_dir

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
_CHUNK = 1 << 20


@dataclass
class CapturedFrame:
    index: int  # position in the capture, before sampling
    timestamp: float  # seconds from the capture's start
    rgb: np.ndarray
    entry: FrameEntry | None = None  # capture-session metadata and ground truth, when there is any
    file: Path | None = None  # the image file it was read from (folders, sessions): labels files name frames by it


@dataclass
class CaptureSource(ABC):
    path: Path
    kind: str = ""
    problems: list[str] = field(default_factory=list)

    @abstractmethod
    def fingerprint(self) -> str:
        """Content hash of the whole capture."""

    @abstractmethod
    def frames(self) -> Iterator[CapturedFrame]:
        """Decoded frames in capture order; unreadable frames are skipped and noted in ``problems``."""

    def estimated_frames(self) -> int | None:
        return None

    def meta(self) -> dict[str, Any]:
        return {}


def _hash_file(h: "hashlib._Hash", path: Path) -> None:
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)


def _natural_key(path: Path) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


class VideoSource(CaptureSource):
    """A video file decoded with OpenCV (mp4/avi/mkv and whatever the build's FFmpeg reads)."""

    def __init__(self, path: Path):
        super().__init__(path=path, kind="video")
        self._fps: float | None = None
        self._count: int | None = None

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise InputError(f"{self.path}: unreadable video (not a video file, or corrupt)")
        fps = cap.get(cv2.CAP_PROP_FPS)
        self._fps = fps if fps and fps > 0 and np.isfinite(fps) else 30.0
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self._count = count if count > 0 else None
        return cap

    def fingerprint(self) -> str:
        h = hashlib.sha256(b"video\0")
        _hash_file(h, self.path)
        return h.hexdigest()

    def estimated_frames(self) -> int | None:
        if self._count is None:
            self._open().release()
        return self._count

    def meta(self) -> dict[str, Any]:
        return {"fps": self._fps, "frame_count": self._count}

    def frames(self) -> Iterator[CapturedFrame]:
        cap = self._open()
        index = 0
        try:
            while True:
                ok, bgr = cap.read()
                if not ok or bgr is None:
                    break
                yield CapturedFrame(index=index, timestamp=index / self._fps, rgb=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                index += 1
        finally:
            cap.release()
        if index == 0:
            raise InputError(f"{self.path}: video has no decodable frames (corrupt or truncated)")
        if self._count is not None and index < self._count:
            self.problems.append(f"{self.path}: truncated video: decoded {index} of {self._count} frames")


class FolderSource(CaptureSource):
    """A folder of PNG/JPEG frames in natural order (frame2 before frame10)."""

    def __init__(self, path: Path, fps: float):
        super().__init__(path=path, kind="folder")
        self.fps = fps
        self.files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()), key=_natural_key)
        if not self.files:
            raise InputError(f"{path}: folder has no PNG or JPEG frames")

    def fingerprint(self) -> str:
        h = hashlib.sha256(b"folder\0")
        for f in self.files:
            h.update(f.name.encode() + b"\0")
            _hash_file(h, f)
        return h.hexdigest()

    def estimated_frames(self) -> int:
        return len(self.files)

    def frames(self) -> Iterator[CapturedFrame]:
        for index, f in enumerate(self.files):
            bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if bgr is None:
                self.problems.append(f"{f}: unreadable image, skipped")
                continue
            yield CapturedFrame(index=index, timestamp=index / self.fps, rgb=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), file=f)


class SessionSource(CaptureSource):
    """A capture session (the playtest world's output, or an engine integration's)."""

    def __init__(self, path: Path):
        super().__init__(path=path, kind="session")
        self.reader = SessionReader.open(path)
        if self.reader.info.status != "complete":
            self.problems.append(f"{path}: session was not closed (status {self.reader.info.status!r}); ingesting what it holds")

    def fingerprint(self) -> str:
        h = hashlib.sha256(b"session\0")
        for name in (SESSION_FILE, FRAMES_FILE):
            if (self.path / name).exists():
                _hash_file(h, self.path / name)
        return h.hexdigest()

    def estimated_frames(self) -> int | None:
        return self.reader.info.frame_count or None

    def meta(self) -> dict[str, Any]:
        info = asdict(self.reader.info)
        info.pop("objects", None)  # stored per frame, restricted to the IDs each frame shows
        return info

    def frames(self) -> Iterator[CapturedFrame]:
        for entry in self.reader.frames():
            path = self.reader.resolve(entry.file)
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                self.problems.append(f"{path}: unreadable frame {entry.index}, skipped")
                continue
            yield CapturedFrame(index=entry.index, timestamp=entry.time, rgb=cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), entry=entry,
                                file=path)
        self.problems.extend(self.reader.problems)


def open_source(path: Path, folder_fps: float = 30.0) -> CaptureSource:
    """Recognise what ``path`` is and open the matching source."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if path.is_dir():
        if is_session_dir(path):
            return SessionSource(path)
        return FolderSource(path, fps=folder_fps)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return VideoSource(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise InputError(f"{path}: a single image; put frames in a folder and ingest the folder")
    raise InputError(f"{path}: unsupported capture (expected a video {sorted(VIDEO_SUFFIXES)}, a frame folder or a capture session)")
