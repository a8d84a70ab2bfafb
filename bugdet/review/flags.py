"""Detector flags from playtests, persisted so testers can confirm or reject them in the review app.

A playtest (:func:`bugdet.harness.playtest.run_playtest`) yields a :class:`PlaytestRun` whose frames
carry the detector's scores, its per-type flags and a normalised localisation box. Only flagged
frames matter for review, and the playtest frames are not otherwise part of a project, so
importing a run stores each flagged frame as a project frame (content-addressed like ingest, split
from the playtest seed so held-out levels stay held out) and one ``flags`` row per (frame, flagged
bug type).

Runs reach a project two ways, sharing one code path:

* in-process: :func:`import_playtest_flags` (what the demo calls right after its playtest);
* through a directory: :func:`write_flag_session` writes the flagged frames as a capture session
  (``bugdet.capture-session/1`` with the detector output in each entry's ``extra.detector``), and
  :func:`import_flag_session` (``bugdet review import-flags``) loads it, e.g. on the QA machine.

A tester's verdict is a :data:`flag_reviews` row plus the frame label it points at (written with
:func:`bugdet.store.labels.insert_labels`, ``source="review"``, in the same transaction), which the
nightly retraining reads. Undoing a verdict marks the review revoked and deletes exactly the label
row it wrote, so the frame falls back to whatever judgement it had before.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import numpy as np

from bugdet.errors import InputError
from bugdet.imageio import pixel_sha256, read_rgb, write_rgb
from bugdet.ingest.session_format import SESSION_FILE, FrameEntry, Pose, SessionInfo, SessionReader, SessionWriter
from bugdet.store.database import ensure_schema, transaction
from bugdet.store.frames import ensure_frames_schema, insert_frame
from bugdet.store.labels import ensure_labels_schema, insert_labels

if TYPE_CHECKING:
    from bugdet.harness.playtest import PlaytestRun
    from bugdet.project import Project

VERDICTS = ("confirm", "reject")
LABEL_SOURCE = "review"
SESSION_GENERATOR = "bugdet.review.flags"

SCHEMA = [
    """
    CREATE TABLE flags (
        id INTEGER PRIMARY KEY,
        frame_id INTEGER NOT NULL REFERENCES frames(id),
        bug_type TEXT NOT NULL,
        score REAL NOT NULL,              -- detector score for bug_type
        threshold REAL,                   -- the operating point it was flagged at
        box TEXT,                         -- JSON [x0, y0, x1, y1] normalised to 0..1, or NULL
        model TEXT NOT NULL,              -- detector name-version
        playtest TEXT NOT NULL,           -- playtest session id
        frame_index INTEGER NOT NULL,     -- frame number within the playtest
        truth INTEGER,                    -- the playtest world's ground truth (1/0), NULL if unknown
        created_at REAL NOT NULL,
        UNIQUE (playtest, model, frame_index, bug_type)
    );
    CREATE TABLE flag_reviews (
        id INTEGER PRIMARY KEY,
        flag_id INTEGER NOT NULL REFERENCES flags(id),
        verdict TEXT NOT NULL,            -- confirm / reject
        who TEXT NOT NULL,
        created_at REAL NOT NULL,
        label_id INTEGER,                 -- the frame_labels row this verdict wrote
        revoked_at REAL
    );
    CREATE INDEX flag_reviews_flag ON flag_reviews(flag_id);
    """,
    # The Draw tab's frame strip filters frames by "has a flag": without this, every frame scans all flags.
    """
    CREATE INDEX flags_frame ON flags(frame_id);
    """,
]


def ensure_flags_schema(conn: sqlite3.Connection) -> None:
    ensure_labels_schema(conn)
    ensure_schema(conn, "review_flags", SCHEMA)


@dataclass
class FlaggedFrame:
    """One flagged playtest frame on its way into a project (from a run or a flag session)."""

    index: int
    time: float
    rgb: np.ndarray
    scene: str
    pose: dict[str, float] | None
    scores: dict[str, float]
    flagged: dict[str, bool]
    boxes: dict[str, list[float]]
    truth: dict[str, bool] = field(default_factory=dict)


@dataclass
class FlagImport:
    playtest: str
    model: str
    frames: int = 0          # flagged frames seen
    frames_added: int = 0    # of which new to the project
    flags_added: int = 0
    flags_existing: int = 0
    flag_ids: list[int] = field(default_factory=list)

    def describe(self) -> str:
        return (f"playtest {self.playtest} ({self.model}): {self.frames} flagged frames "
                f"({self.frames_added} new to the project), {self.flags_added} flags to review"
                + (f", {self.flags_existing} already imported" if self.flags_existing else ""))


@dataclass
class Flag:
    id: int
    frame_id: int
    bug_type: str
    score: float
    threshold: float | None
    box: list[float] | None
    model: str
    playtest: str
    frame_index: int
    truth: int | None
    created_at: float
    status: str = "pending"          # pending / confirmed / rejected
    review_id: int | None = None
    reviewed_by: str | None = None
    reviewed_at: float | None = None

    def to_dict(self, with_truth: bool = False) -> dict[str, Any]:
        """JSON for the app; the world's ground truth is left out unless asked (testers judge blind)."""
        out = {k: getattr(self, k) for k in ("id", "frame_id", "bug_type", "score", "threshold", "box", "model",
                                              "playtest", "frame_index", "created_at", "status", "review_id",
                                              "reviewed_by", "reviewed_at")}
        if with_truth:
            out["truth"] = self.truth
        return out


# -- writing and reading flag sessions ----------------------------------------------------------

def _run_frames(run: "PlaytestRun") -> Iterator[FlaggedFrame]:
    for r in run.frames:
        if r.error or not r.is_flagged:
            continue
        image = r.rgb if r.rgb is not None else r.thumbnail  # a run built by hand may carry thumbnails only
        x, y, z, h, p, roll = r.pose
        yield FlaggedFrame(
            index=r.index, time=r.time, rgb=np.ascontiguousarray(image), scene=run.scene,
            pose={"x": x, "y": y, "z": z, "h": h, "p": p, "r": roll}, scores=dict(r.scores), flagged=dict(r.flagged),
            boxes={k: [float(v) for v in b] for k, b in r.boxes.items()}, truth=dict(r.truth),
        )


def write_flag_session(run: "PlaytestRun", out_dir: Path) -> Path:
    """Write a run's flagged frames as a capture session carrying the detector output."""
    import cv2

    from bugdet.playtest.split import split_for_seed

    frames = list(_run_frames(run))
    height, width = frames[0].rgb.shape[:2] if frames else (0, 0)
    info = SessionInfo(
        session_id=run.session_id, seed=run.seed, scene=run.scene, width=width, height=height,
        bug_types=list(run.bug_types), split=split_for_seed(run.seed),
        generator={"kind": SESSION_GENERATOR, "model": run.model, "thresholds": dict(run.thresholds)},
    )
    out_dir = Path(out_dir)
    if (out_dir / SESSION_FILE).exists():  # re-running a playtest into the same folder replaces its flags
        old = SessionReader.open(out_dir).info.generator or {}
        if old.get("kind") != SESSION_GENERATOR:
            raise InputError(f"{out_dir}: holds a capture session that is not a flag session; not overwriting it")
        shutil.rmtree(out_dir)
    with SessionWriter(out_dir, info) as writer:
        for f in frames:
            rel = writer.write_frame_image(f.index, cv2.cvtColor(f.rgb, cv2.COLOR_RGB2BGR))
            writer.append(FrameEntry(
                index=f.index, time=f.time, file=rel, scene=f.scene, pose=Pose(**f.pose) if f.pose else None,
                extra={"detector": {"model": run.model, "scores": f.scores, "flagged": f.flagged, "boxes": f.boxes,
                                    "truth": f.truth}},
            ))
    return out_dir


def _session_frames(reader: SessionReader) -> Iterator[FlaggedFrame]:
    for entry in reader.frames():
        det = (entry.extra or {}).get("detector")
        if not isinstance(det, dict):
            raise InputError(f"{reader.root}: frame {entry.index} has no detector output (extra.detector); "
                             "write flag sessions with bugdet.review.flags.write_flag_session")
        path = reader.resolve(entry.file)
        if path is None or not path.exists():
            raise InputError(f"{reader.root}: frame {entry.index}: missing image {entry.file}")
        pose = entry.pose
        yield FlaggedFrame(
            index=entry.index, time=entry.time, rgb=read_rgb(path), scene=entry.scene or reader.info.scene,
            pose=None if pose is None else {"x": pose.x, "y": pose.y, "z": pose.z, "h": pose.h, "p": pose.p, "r": pose.r},
            scores={k: float(v) for k, v in (det.get("scores") or {}).items()},
            flagged={k: bool(v) for k, v in (det.get("flagged") or {}).items()},
            boxes={k: [float(x) for x in v] for k, v in (det.get("boxes") or {}).items()},
            truth={k: bool(v) for k, v in (det.get("truth") or {}).items()},
        )


# -- importing ------------------------------------------------------------------------------------

def _store(project: "Project", playtest: str, model: str, seed: int | None, thresholds: dict[str, float],
           frames: Iterable[FlaggedFrame]) -> FlagImport:
    """Store frames (content-addressed, like ingest) and their flags, in one transaction."""
    from bugdet.playtest.split import split_for_seed

    split = split_for_seed(seed) if seed is not None and seed >= 0 else ""
    report = FlagImport(playtest=playtest, model=model)
    conn = project.connect()
    try:
        ensure_frames_schema(conn)
        ensure_flags_schema(conn)
        now = time.time()
        with transaction(conn):
            fingerprint = f"review-flags:{playtest}:{model}"
            row = conn.execute("SELECT id FROM sources WHERE fingerprint = ?", (fingerprint,)).fetchone()
            if row is None:
                source_id = conn.execute(
                    "INSERT INTO sources (kind, uri, fingerprint, status, meta, created_at, updated_at) "
                    "VALUES ('session', ?, ?, 'complete', ?, ?, ?)",
                    (f"playtest {playtest}", fingerprint, json.dumps({"model": model, "generator": SESSION_GENERATOR}),
                     now, now),
                ).lastrowid
            else:
                source_id = row["id"]
            for f in frames:
                report.frames += 1
                sha = pixel_sha256(f.rgb)
                rel = Path("frames") / sha[:2] / f"{sha}.png"
                if not (project.root / rel).exists():
                    write_rgb(project.root / rel, f.rgb)
                truth = {k: {"present": bool(v), "severity": 0.0, "mask": None} for k, v in f.truth.items()}
                added = insert_frame(conn, {
                    "sha256": sha, "source_id": source_id, "source_index": f.index, "timestamp": float(f.time),
                    "path": rel.as_posix(), "width": int(f.rgb.shape[1]), "height": int(f.rgb.shape[0]),
                    "scene": f.scene, "split": split, "pose": json.dumps(f.pose) if f.pose else None,
                    "ground_truth": json.dumps(truth, sort_keys=True) if truth else None,
                    "aux": json.dumps({"extra": {"playtest": playtest, "model": model}}),
                })
                report.frames_added += int(added)
                frame_id = conn.execute("SELECT id FROM frames WHERE sha256 = ?", (sha,)).fetchone()["id"]
                for bug_type, is_flagged in sorted(f.flagged.items()):
                    if not is_flagged:
                        continue
                    box = f.boxes.get(bug_type)
                    cur = conn.execute(
                        "INSERT OR IGNORE INTO flags (frame_id, bug_type, score, threshold, box, model, playtest, "
                        "frame_index, truth, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (frame_id, bug_type, float(f.scores.get(bug_type, float("nan"))), thresholds.get(bug_type),
                         json.dumps(box) if box else None, model, playtest, int(f.index),
                         None if bug_type not in f.truth else int(f.truth[bug_type]), now),
                    )
                    if cur.rowcount:
                        report.flags_added += 1
                        report.flag_ids.append(int(cur.lastrowid))
                    else:
                        report.flags_existing += 1
    finally:
        conn.close()
    return report


def import_playtest_flags(project: "Project", run: "PlaytestRun") -> FlagImport:
    """Import a finished playtest run's flagged frames into ``project`` for review."""
    return _store(project, run.session_id, run.model, run.seed, dict(run.thresholds), _run_frames(run))


def import_flag_session(project: "Project", session_dir: Path) -> FlagImport:
    """Import a flag session written by :func:`write_flag_session`."""
    reader = SessionReader.open(Path(session_dir))
    gen = reader.info.generator or {}
    if gen.get("kind") != SESSION_GENERATOR:
        raise InputError(f"{session_dir}: not a flag session (its generator is {gen.get('kind')!r}, "
                         f"expected {SESSION_GENERATOR!r}); write one with write_flag_session")
    return _store(project, reader.info.session_id, str(gen.get("model", "")), reader.info.seed,
                  {k: float(v) for k, v in (gen.get("thresholds") or {}).items()}, _session_frames(reader))


# -- listing and deciding -------------------------------------------------------------------------

_FLAG_SELECT = """
    SELECT f.*, r.id AS review_id, r.verdict, r.who AS reviewed_by, r.created_at AS reviewed_at
    FROM flags f LEFT JOIN flag_reviews r ON r.id = (
        SELECT MAX(id) FROM flag_reviews WHERE flag_id = f.id AND revoked_at IS NULL)
"""
STATUS_OF_VERDICT = {None: "pending", "confirm": "confirmed", "reject": "rejected"}


def _flag(row: sqlite3.Row) -> Flag:
    return Flag(
        id=row["id"], frame_id=row["frame_id"], bug_type=row["bug_type"], score=row["score"], threshold=row["threshold"],
        box=json.loads(row["box"]) if row["box"] else None, model=row["model"], playtest=row["playtest"],
        frame_index=row["frame_index"], truth=row["truth"], created_at=row["created_at"],
        status=STATUS_OF_VERDICT[row["verdict"]], review_id=row["review_id"], reviewed_by=row["reviewed_by"],
        reviewed_at=row["reviewed_at"],
    )


#: SQL condition (over :data:`_FLAG_SELECT`'s columns) selecting the flags of each status.
_STATUS_CONDITION = {"pending": "r.id IS NULL", "confirmed": "r.verdict = 'confirm'", "rejected": "r.verdict = 'reject'"}


def list_flags(conn: sqlite3.Connection, status: str | None = None, offset: int = 0,
               limit: int | None = None) -> list[Flag]:
    """Flags, highest score first within each playtest; ``status`` filters pending/confirmed/rejected.

    ``offset``/``limit`` page through them in SQL (a night of playtests can raise thousands of
    flags; the app shows one page at a time). The order ends on the flag id, so pages are stable.
    """
    ensure_flags_schema(conn)
    if status not in (None, "all", *STATUS_OF_VERDICT.values()):
        raise InputError(f"flag status must be one of all, {', '.join(STATUS_OF_VERDICT.values())}; got {status!r}")
    where = f" WHERE {_STATUS_CONDITION[status]}" if status in _STATUS_CONDITION else ""
    rows = conn.execute(_FLAG_SELECT + where + " ORDER BY f.created_at, f.playtest, f.score DESC, f.id LIMIT ? OFFSET ?",
                        (-1 if limit is None else int(limit), int(offset)))
    return [_flag(r) for r in rows]


def count_flags(conn: sqlite3.Connection) -> dict[str, int]:
    """How many flags are pending, confirmed, rejected, and ``all`` of them (counted in SQL)."""
    ensure_flags_schema(conn)
    counts = {status: 0 for status in (*STATUS_OF_VERDICT.values(), "all")}
    for verdict, n in conn.execute(f"SELECT verdict, COUNT(*) FROM ({_FLAG_SELECT}) GROUP BY verdict"):
        counts[STATUS_OF_VERDICT[verdict]] = n
        counts["all"] += n
    return counts


def get_flag(conn: sqlite3.Connection, flag_id: int) -> Flag:
    ensure_flags_schema(conn)
    row = conn.execute(_FLAG_SELECT + " WHERE f.id = ?", (flag_id,)).fetchone()
    if row is None:
        raise InputError(f"no flag #{flag_id}")
    return _flag(row)


def decide_flag(conn: sqlite3.Connection, flag_id: int, verdict: str, who: str) -> Flag:
    """Confirm (the bug is there) or reject (false alarm) a flag; writes the frame label for retraining.

    The label row (through :func:`insert_labels`, the SQL :func:`record_labels` uses) and the
    review row that points at it are one transaction: a verdict is on disk whole when this
    returns, and a failure leaves neither a label without its review (which undo could not
    remove) nor a review without its label.
    """
    if verdict not in VERDICTS:
        raise InputError(f"verdict must be one of {', '.join(VERDICTS)}, got {verdict!r}")
    flag = get_flag(conn, flag_id)  # also brings the flag and label tables up to date
    with transaction(conn):
        [label_id] = insert_labels(conn, [(flag.frame_id, flag.bug_type, 1 if verdict == "confirm" else 0)],
                                   who=who, source=LABEL_SOURCE)
        conn.execute("INSERT INTO flag_reviews (flag_id, verdict, who, created_at, label_id) VALUES (?, ?, ?, ?, ?)",
                     (flag_id, verdict, who, time.time(), label_id))
    return get_flag(conn, flag_id)


def list_flag_reviews(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every verdict ever given (revoked ones too), oldest first, with its flag."""
    ensure_flags_schema(conn)
    rows = conn.execute(
        "SELECT r.*, f.frame_id, f.bug_type, f.score, f.playtest, f.model FROM flag_reviews r "
        "JOIN flags f ON f.id = r.flag_id ORDER BY r.id"
    )
    return [dict(r) for r in rows]


def revoke_flag_review(conn: sqlite3.Connection, review_id: int) -> dict[str, Any]:
    """Undo a verdict: mark it revoked and delete the label row it wrote, in one transaction."""
    ensure_flags_schema(conn)
    with transaction(conn):
        row = conn.execute("SELECT * FROM flag_reviews WHERE id = ?", (review_id,)).fetchone()
        if row is None:
            raise InputError(f"no flag review #{review_id}")
        if row["revoked_at"] is None:
            conn.execute("UPDATE flag_reviews SET revoked_at = ? WHERE id = ?", (time.time(), review_id))
            if row["label_id"] is not None:
                conn.execute("DELETE FROM frame_labels WHERE id = ? AND source = ?", (row["label_id"], LABEL_SOURCE))
    return dict(conn.execute("SELECT * FROM flag_reviews WHERE id = ?", (review_id,)).fetchone())
