"""Ingest captures into a project: decode, sample, hash, store, and record in the manifest.

Crash safety: a frame's image (and its ground-truth files) is written atomically *before* its
row is inserted, rows are committed in small batches, and frames are keyed by the hash of their
pixels. Killed at any point, the project holds only complete frames; the rerun decodes the
capture again, finds the stored hashes, and adds exactly the frames that were missing.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from bugdet.errors import InputError
from bugdet.imageio import pixel_sha256, read_ids, write_rgb
from bugdet.ingest.sampling import FrameSampler
from bugdet.ingest.session_format import FrameEntry
from bugdet.ingest.sources import CaptureSource, CapturedFrame, SessionSource, open_source
from bugdet.progress import NullProgress, Progress
from bugdet.project import Project
from bugdet.store.frames import (
    FILE_ABS_KEY, FILE_KEY, FrameRow, add_frame_alias, ensure_frames_schema, get_frame_by_sha, insert_frame,
)


@dataclass
class SourceReport:
    path: str
    kind: str = ""
    status: str = ""  # added / already-ingested / failed
    frames_seen: int = 0
    frames_added: int = 0
    frames_existing: int = 0
    near_duplicates: int = 0
    #: Frames whose identical pixels were already stored in another split: they keep that first
    #: split (the rule, see docs/own-game.md), and the report says how many and which.
    split_conflicts: int = 0
    split_conflict_examples: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass
class IngestReport:
    sources: list[SourceReport] = field(default_factory=list)

    @property
    def frames_added(self) -> int:
        return sum(s.frames_added for s in self.sources)

    @property
    def failed(self) -> list[SourceReport]:
        return [s for s in self.sources if s.status == "failed"]

    @property
    def split_conflicts(self) -> int:
        return sum(s.split_conflicts for s in self.sources)

    def to_dict(self) -> dict:
        return {"frames_added": self.frames_added, "split_conflicts": self.split_conflicts,
                "sources": [asdict(s) for s in self.sources]}


#: How many conflicting files a report names (the count is always complete).
CONFLICT_EXAMPLES = 5


def _copy_atomic(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


class Ingester:
    """Ingests any number of captures into one project."""

    def __init__(self, project: Project, split: str = "", progress: Progress | None = None):
        self.project = project
        self.config = project.config.ingest
        self.split = split
        self.progress = progress or NullProgress()
        self.conn = project.connect()
        ensure_frames_schema(self.conn)

    def run(self, paths: Sequence[Path]) -> IngestReport:
        missing = [str(p) for p in paths if not Path(p).exists()]
        if missing:
            raise InputError(f"{missing[0]}: no such file or directory")
        report = IngestReport()
        for path in paths:
            report.sources.append(self.ingest_one(Path(path)))
        return report

    # -- one capture -------------------------------------------------------------------------
    def ingest_one(self, path: Path) -> SourceReport:
        rep = SourceReport(path=str(path))
        try:
            source = open_source(path, folder_fps=self.config.folder_fps)
            rep.kind = source.kind
            fingerprint = source.fingerprint()
        except (InputError, OSError) as exc:
            rep.status = "failed"
            rep.problems.append(str(exc))
            return rep
        row = self.conn.execute("SELECT id, status FROM sources WHERE fingerprint = ?", (fingerprint,)).fetchone()
        if row is not None and row["status"] == "complete":
            rep.status = "already-ingested"
            return rep
        source_id = row["id"] if row is not None else self._create_source(source, fingerprint)
        try:
            self._ingest_frames(source, source_id, rep)
        except InputError as exc:
            rep.problems.append(str(exc))
            rep.status = "failed"
        else:
            rep.status = "added"
        rep.problems[:0] = source.problems
        self._finish_source(source_id, source, rep)
        return rep

    def _create_source(self, source: CaptureSource, fingerprint: str) -> int:
        now = time.time()
        cur = self.conn.execute(
            "INSERT INTO sources (kind, uri, fingerprint, status, meta, created_at, updated_at) VALUES (?, ?, ?, 'ingesting', ?, ?, ?)",
            (source.kind, str(source.path), fingerprint, json.dumps(source.meta(), sort_keys=True, default=str), now, now),
        )
        return int(cur.lastrowid)

    def _finish_source(self, source_id: int, source: CaptureSource, rep: SourceReport) -> None:
        added = self.conn.execute("SELECT COUNT(*) FROM frames WHERE source_id = ?", (source_id,)).fetchone()[0]
        self.conn.execute(
            "UPDATE sources SET status = ?, frames_seen = ?, frames_added = ?, problems = ?, meta = ?, updated_at = ? WHERE id = ?",
            (
                "complete" if rep.status == "added" else "failed",
                rep.frames_seen,
                added,
                json.dumps(rep.problems),
                json.dumps(source.meta(), sort_keys=True, default=str),
                time.time(),
                source_id,
            ),
        )

    def _ingest_frames(self, source: CaptureSource, source_id: int, rep: SourceReport) -> None:
        sampler = FrameSampler(self.config)
        self.progress.start(f"ingest {source.path.name}", source.estimated_frames())
        pending = 0
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for frame in source.frames():
                self.progress.advance()
                rep.frames_seen += 1
                if not sampler.by_schedule(frame.index, frame.timestamp):
                    if sampler.done():
                        break
                    continue
                if sampler.is_near_duplicate(frame.rgb):
                    continue
                sampler.kept += 1
                if self._store(frame, source, source_id, rep):
                    rep.frames_added += 1
                    pending += 1
                else:
                    rep.frames_existing += 1
                if pending >= self.config.commit_every:
                    self.conn.execute("COMMIT")
                    self.conn.execute("BEGIN IMMEDIATE")
                    pending = 0
        except BaseException:
            self.conn.execute("COMMIT")  # keep every complete frame stored so far
            raise
        self.conn.execute("COMMIT")
        rep.near_duplicates = sampler.near_duplicates

    def _store(self, frame: CapturedFrame, source: CaptureSource, source_id: int, rep: SourceReport) -> bool:
        sha = pixel_sha256(frame.rgb)
        existing = get_frame_by_sha(self.conn, sha)
        if existing is not None:
            self._note_duplicate(existing, frame, rep)
            return False
        rel = Path("frames") / sha[:2] / f"{sha}.png"
        dest = self.project.root / rel
        if not dest.exists():
            write_rgb(dest, frame.rgb)
        row = {
            "sha256": sha,
            "source_id": source_id,
            "source_index": frame.index,
            "timestamp": float(frame.timestamp),
            "path": rel.as_posix(),
            "width": int(frame.rgb.shape[1]),
            "height": int(frame.rgb.shape[0]),
            "split": self.split,
        }
        if frame.entry is not None and isinstance(source, SessionSource):
            row.update(self._session_fields(frame.entry, source, sha))
        if frame.file is not None:
            aux = json.loads(row.get("aux", "{}"))
            aux[FILE_KEY] = Path(frame.file).as_posix()
            aux[FILE_ABS_KEY] = Path(frame.file).resolve().as_posix()
            row["aux"] = json.dumps(aux, sort_keys=True)
        return insert_frame(self.conn, row)

    def _note_duplicate(self, existing: FrameRow, frame: CapturedFrame, rep: SourceReport) -> None:
        """Identical pixels are one frame (content addressing). Rule: the frame keeps the split it
        was first ingested into; a copy arriving for another split is counted and named in the
        report, never moved silently, and its file becomes another name of the stored frame."""
        if frame.file is not None:
            add_frame_alias(self.conn, existing, Path(frame.file).resolve().as_posix())
        if self.split and existing.split != self.split:
            rep.split_conflicts += 1
            if len(rep.split_conflict_examples) < CONFLICT_EXAMPLES:
                name = Path(frame.file).as_posix() if frame.file is not None else f"frame {frame.index}"
                rep.split_conflict_examples.append(f"{name} (kept in {existing.split or 'no split'})")

    def _session_fields(self, entry: FrameEntry, source: SessionSource, sha: str) -> dict:
        """Carry a session frame's metadata and ground truth in, copying its mask files."""
        gt_dir = Path("groundtruth") / sha[:2] / sha

        def carry(rel: str | None, name: str) -> str | None:
            if rel is None:
                return None
            src = source.reader.resolve(rel)
            if src is None or not src.exists():
                source.problems.append(f"{source.path}: frame {entry.index}: missing {rel}")
                return None
            dst_rel = gt_dir / f"{name}{src.suffix}"
            _copy_atomic(src, self.project.root / dst_rel)
            return dst_rel.as_posix()

        truth = {
            bug: {"present": t.present, "severity": t.severity, "mask": carry(t.mask, bug)}
            for bug, t in entry.bugs.items()
        }
        aux = {"weapon": entry.weapon, "extra": entry.extra}
        aux["weapon_mask"] = carry(entry.weapon_mask, "weapon_mask")
        aux["ids"] = carry(entry.ids, "ids")
        if aux["ids"] is not None and source.reader.info.objects:
            present = np.unique(read_ids(self.project.root / aux["ids"]))
            legend = source.reader.info.objects
            aux["objects"] = {str(i): legend[str(i)] for i in present.tolist() if str(i) in legend}
        return {
            "scene": entry.scene or source.reader.info.scene,
            "split": self.split or source.reader.info.split,
            "pose": json.dumps(asdict(entry.pose)) if entry.pose else None,
            "fov": entry.fov,
            "ground_truth": json.dumps(truth, sort_keys=True) if entry.bugs else None,
            "aux": json.dumps(aux, sort_keys=True),
        }


def ingest(project: Project, paths: Sequence[Path], split: str = "", progress: Progress | None = None) -> IngestReport:
    """Ingest ``paths`` (videos, frame folders, capture sessions) into ``project``."""
    return Ingester(project, split=split, progress=progress).run(paths)
