"""Name a frame the way a user knows it: its file, its content hash, or its id.

Users of their own game know frames by file (``shots/train/0042.png``, or just ``0042.png``),
not by the project's SQLite ids. One resolver serves every command that takes a frame and the
labels importer, so a name means the same frame everywhere:

* an id (digits only): the frame with that id;
* a content sha256, or a unique prefix of at least 8 hex digits;
* a path: the frame whose ingested file (as given to ``bugdet ingest``, its absolute form, a
  later identical copy, or the stored ``frames/..`` path) ends with the given path components,
  so ``0042.png``, ``train/0042.png`` and ``/abs/shots/train/0042.png`` all work when they are
  unique. A name that fits several frames is ambiguous and says which ones it fits.
"""

from __future__ import annotations

import re
import sqlite3
from collections import defaultdict
from typing import Iterable, Sequence

from bugdet.errors import InputError
from bugdet.store.frames import ALSO_FILES_KEY, FILE_ABS_KEY, FILE_KEY, FrameRow, iter_frames

_HEX = re.compile(r"^[0-9a-fA-F]{8,64}$")
MIN_SHA_PREFIX = 8


class FrameRefError(InputError):
    """A frame name that matches no frame, or more than one."""


def _parts(path: str) -> tuple[str, ...]:
    return tuple(p for p in path.replace("\\", "/").split("/") if p and p != ".")


def frame_names(frame: FrameRow) -> list[str]:
    """Every path a frame answers to: stored path, ingested file (as given and absolute), copies."""
    aux = frame.aux or {}
    names = [frame.path, aux.get(FILE_KEY), aux.get(FILE_ABS_KEY), *aux.get(ALSO_FILES_KEY, [])]
    return [n for n in dict.fromkeys(names) if n]


def display_name(frame: FrameRow) -> str:
    """How exports and messages name a frame: the file it was ingested from, else its stored path."""
    return (frame.aux or {}).get(FILE_KEY) or frame.path


class FrameIndex:
    """All frames of a project, indexed for name lookups (build once, resolve many)."""

    def __init__(self, frames: Iterable[FrameRow]):
        self.frames = list(frames)
        self.by_id = {f.id: f for f in self.frames}
        self.by_sha = {f.sha256: f for f in self.frames}
        self._by_basename: dict[str, list[tuple[tuple[str, ...], FrameRow]]] = defaultdict(list)
        for f in self.frames:
            for name in frame_names(f):
                parts = _parts(name)
                if parts:
                    self._by_basename[parts[-1]].append((parts, f))

    @classmethod
    def of(cls, conn: sqlite3.Connection) -> "FrameIndex":
        return cls(iter_frames(conn))

    def candidates(self, ref: str) -> list[FrameRow]:
        """Frames ``ref`` may name (none, one, or several when ambiguous)."""
        ref = str(ref).strip()
        if not ref:
            return []
        if ref.isdigit() and int(ref) in self.by_id:
            return [self.by_id[int(ref)]]
        if _HEX.match(ref):
            lowered = ref.lower()
            if lowered in self.by_sha:
                return [self.by_sha[lowered]]
            hits = [f for sha, f in self.by_sha.items() if sha.startswith(lowered)]
            if hits:
                return hits
        parts = _parts(ref)
        if not parts:
            return []
        hits = {f.id: f for names, f in self._by_basename.get(parts[-1], []) if names[-len(parts):] == parts}
        return list(hits.values())

    def resolve(self, ref: str) -> FrameRow:
        """The one frame ``ref`` names; :class:`FrameRefError` when it names none or several."""
        found = self.candidates(ref)
        if len(found) == 1:
            return found[0]
        raise FrameRefError(describe_miss(ref, found))


def describe_miss(ref: str, found: Sequence[FrameRow]) -> str:
    if not found:
        return f"no such frame {ref!r} (give an ingested file path or name, a content sha256 or a frame id)"
    shown = ", ".join(display_name(f) for f in found[:2])
    return f"{ref!r} is ambiguous: {len(found)} frames match ({shown}{', ...' if len(found) > 2 else ''}); give more of the path"


def resolve_frames(conn: sqlite3.Connection, refs: Sequence[str], option: str = "--frame") -> list[FrameRow]:
    """The frames ``refs`` name, in order; the first bad name is one clear error."""
    index = FrameIndex.of(conn)
    out = []
    for ref in refs:
        try:
            out.append(index.resolve(ref))
        except FrameRefError as exc:
            raise FrameRefError(f"{option} {ref}: {exc}") from None
    return out
