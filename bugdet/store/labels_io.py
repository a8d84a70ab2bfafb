"""Labels files: a studio's frame labels in and out as CSV or JSON lines, no SQL.

One row per judgement::

    frame,label,split,box
    shots/train/0042.png,missing_texture,train,"10,20,80,64"
    0043.png,good,,
    3f1c9a2e...,none,,

``frame`` names a frame as :mod:`bugdet.store.resolve` understands it (the ingested path, a file
name when unique, a content sha256); ``label`` is a bug type, ``good`` (no bug of any type) or
``none`` (remove the frame's labels); ``split`` (optional) puts the frame in that split; ``box``
(optional, bug labels only) is ``x0,y0,x1,y1`` in pixels, where the bug is, stored with the label.

Import is all-or-nothing: every row is checked first, and any bad row (unknown or ambiguous
frame, unknown bug type, malformed value, contradicting rows) fails the whole file with one
message naming the first offending lines; nothing is written. The rows a file gives a frame
become that frame's labels: a standing judgement the file no longer gives is retracted (history
kept), an unchanged one is left alone, so importing an edited file again applies the edit.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from bugdet.errors import InputError
from bugdet.store.database import transaction
from bugdet.store.frames import FrameRow, set_frame_split
from bugdet.store.labels import GOOD, current_label_rows, ensure_labels_schema, insert_labels, retract_labels
from bugdet.store.resolve import FrameIndex, FrameRefError, display_name

#: ``label`` value that removes every label of the frame.
NONE = "none"
COLUMNS = ("frame", "label", "split", "box")
REQUIRED = ("frame", "label")
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
_SPLIT = re.compile(r"^[A-Za-z0-9_.-]+$")
#: How many offending lines the one error message names.
ERRORS_SHOWN = 3


@dataclass
class LabelRow:
    """One row of a labels file, as written (``line`` is its line number in the file)."""

    line: int
    frame: str
    label: str
    split: str = ""
    box: str | list | None = None


@dataclass
class ImportPlan:
    """What an import will write, checked in full before anything is written."""

    labels: dict[int, dict[str, tuple[int, int, int, int] | None]] = field(default_factory=dict)  # frame -> type -> box
    splits: dict[int, str] = field(default_factory=dict)
    rows: int = 0


@dataclass
class ImportReport:
    rows: int
    frames: int
    added: int
    unchanged: int
    removed: int
    split_changes: int
    ignored_columns: list[str] = field(default_factory=list)

    def describe(self) -> str:
        text = (f"{self.rows} rows for {self.frames} frames: {self.added} labels added, {self.unchanged} unchanged, "
                f"{self.removed} removed, {self.split_changes} frames moved to another split")
        if self.ignored_columns:
            text += f" (ignored columns: {', '.join(self.ignored_columns)})"
        return text


def is_json_lines(path: Path) -> bool:
    return Path(path).suffix.lower() in JSON_SUFFIXES


def read_label_file(path: Path) -> tuple[list[LabelRow], list[str]]:
    """The rows of a CSV or JSON-lines labels file and the columns it has that bugdet ignores."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: no such labels file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read as UTF-8 text: {exc}") from None
    return _read_json_lines(path, text) if is_json_lines(path) else _read_csv(path, text)


def _read_csv(path: Path, text: str) -> tuple[list[LabelRow], list[str]]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputError(f"{path}: line 1: the header needs columns {', '.join(REQUIRED)} (missing {', '.join(missing)}; "
                         f"optional: split, box)")
    reader.fieldnames = header
    rows = []
    for record in reader:
        values = {k: (v or "").strip() if isinstance(v, str) else v for k, v in record.items() if k is not None}
        if not any(values.values()) and None not in record:
            continue  # a blank line
        extra = record.get(None)  # more cells than header columns
        rows.append(LabelRow(reader.line_num, values.get("frame", ""), values.get("label", ""), values.get("split", ""),
                             values.get("box") or ("<extra cells>" if extra else None)))
    return rows, [h for h in header if h not in COLUMNS]


def _read_json_lines(path: Path, text: str) -> tuple[list[LabelRow], list[str]]:
    rows, ignored = [], set()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            record = {"frame": "", "label": "", "box": f"<not JSON: {exc.msg}>"}
        if not isinstance(record, dict):
            record = {"frame": "", "label": "", "box": "<not a JSON object>"}
        ignored.update(k for k in record if k not in COLUMNS)
        rows.append(LabelRow(number, str(record.get("frame", "") or "").strip(), str(record.get("label", "") or "").strip(),
                             str(record.get("split", "") or "").strip(), record.get("box")))
    return rows, sorted(ignored)


def parse_box(value: str | list | None, frame: FrameRow) -> tuple[int, int, int, int] | None:
    """``x0,y0,x1,y1`` (a string, or a list of four numbers) inside the frame, or None when empty."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, str):
        if value.startswith("<"):
            raise ValueError(value.strip("<>"))
        parts = [p for p in re.split(r"[,\s;]+", value.strip().strip("[]()")) if p]
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        raise ValueError(f"box {value!r}: expected x0,y0,x1,y1")
    try:
        x0, y0, x1, y1 = (int(round(float(p))) for p in parts)
    except (TypeError, ValueError):
        raise ValueError(f"box {value!r}: expected four numbers x0,y0,x1,y1") from None
    if not (0 <= x0 < x1 <= frame.width and 0 <= y0 < y1 <= frame.height):
        raise ValueError(f"box {x0},{y0},{x1},{y1} is not inside the {frame.width}x{frame.height} frame "
                         "with x0 < x1 and y0 < y1")
    return x0, y0, x1, y1


def plan_import(rows: Sequence[LabelRow], index: FrameIndex, bug_types: Sequence[str]) -> ImportPlan:
    """Check every row and build what the import writes; one :class:`InputError` for all problems."""
    plan = ImportPlan(rows=len(rows))
    errors: list[str] = []
    removes: set[int] = set()
    for row in rows:
        try:
            _plan_row(row, index, bug_types, plan, removes)
        except (ValueError, FrameRefError) as exc:
            errors.append(f"line {row.line}: {exc}")
    if errors:
        more = f" (and {len(errors) - ERRORS_SHOWN} more bad rows)" if len(errors) > ERRORS_SHOWN else ""
        raise InputError(f"{len(errors)} bad rows, nothing imported: {'; '.join(errors[:ERRORS_SHOWN])}{more}")
    return plan


def _plan_row(row: LabelRow, index: FrameIndex, bug_types: Sequence[str], plan: ImportPlan, removes: set[int]) -> None:
    if not row.frame:
        raise ValueError("no frame given")
    label = row.label.strip()
    if not label:
        raise ValueError("no label given (a bug type, good or none)")
    if label not in (GOOD, NONE) and label not in bug_types:
        raise ValueError(f"unknown bug type {label!r} (known: {', '.join(bug_types) or 'none'}; "
                         "add yours to detect.bug_types in bugdet.yaml)")
    if row.split and not _SPLIT.match(row.split):
        raise ValueError(f"split {row.split!r}: use letters, digits, '_', '-' or '.'")
    frame = index.resolve(row.frame)
    box = parse_box(row.box, frame)
    if box is not None and label in (GOOD, NONE):
        raise ValueError(f"a box only goes with a bug label, not {label!r}")
    if row.split:
        if plan.splits.setdefault(frame.id, row.split) != row.split:
            raise ValueError(f"{row.frame} is given splits {plan.splits[frame.id]!r} and {row.split!r}")
    given = plan.labels.setdefault(frame.id, {})
    if label == NONE:
        if given:
            raise ValueError(f"{row.frame} is given 'none' and labels ({', '.join(given)})")
        removes.add(frame.id)
        return
    if frame.id in removes:
        raise ValueError(f"{row.frame} is given 'none' and {label!r}")
    if (label == GOOD and any(t != GOOD for t in given)) or (label != GOOD and GOOD in given):
        raise ValueError(f"{row.frame} is labeled both good and a bug ({', '.join([*given, label])})")
    if label in given and given[label] != box and given[label] is not None and box is not None:
        raise ValueError(f"{row.frame} has two different boxes for {label}")
    given[label] = box or given.get(label)


def apply_import(conn: sqlite3.Connection, plan: ImportPlan, who: str = "", source: str = "import") -> tuple[int, int, int, int]:
    """Write a checked plan in one transaction: (added, unchanged, removed, split changes)."""
    ensure_labels_schema(conn)
    standing: dict[int, dict[str, tuple[int, tuple | None]]] = {}
    for r in current_label_rows(conn):
        standing.setdefault(r["frame_id"], {})[r["bug_type"]] = (r["label"], tuple(json.loads(r["box"])) if r["box"] else None)
    added = unchanged = removed = 0
    with transaction(conn):
        new_rows, boxes, stale = [], [], []
        for frame_id, wanted in plan.labels.items():
            have = standing.get(frame_id, {})
            stale.extend((frame_id, t) for t in have if t not in wanted)
            for bug_type, box in wanted.items():
                if have.get(bug_type) == (1, box):
                    unchanged += 1
                    continue
                new_rows.append((frame_id, bug_type, 1))
                boxes.append(box)
        removed = retract_labels(conn, stale, who=who, source=source)
        added = len(insert_labels(conn, new_rows, who=who, source=source, boxes=boxes))
        current_split = {r["id"]: r["split"] for r in conn.execute("SELECT id, split FROM frames")}
        moves: dict[str, list[int]] = {}
        for frame_id, split in plan.splits.items():
            if current_split.get(frame_id) != split:
                moves.setdefault(split, []).append(frame_id)
        for split, ids in moves.items():
            set_frame_split(conn, ids, split)
    return added, unchanged, removed, sum(len(v) for v in moves.values())


def import_labels(conn: sqlite3.Connection, path: Path, bug_types: Sequence[str], who: str = "") -> ImportReport:
    """Read, check and apply a labels file (all-or-nothing)."""
    rows, ignored = read_label_file(path)
    if not rows:
        raise InputError(f"{path}: no label rows")
    plan = plan_import(rows, FrameIndex.of(conn), bug_types)
    added, unchanged, removed, moved = apply_import(conn, plan, who=who)
    return ImportReport(len(rows), len(plan.labels), added, unchanged, removed, moved, ignored)


def export_rows(conn: sqlite3.Connection) -> tuple[list[dict], int]:
    """Standing "yes" judgements as labels-file rows, and how many "no" judgements the format
    cannot carry (a tester's "not this bug type" from the review app)."""
    index = FrameIndex.of(conn)
    out, skipped_no = [], 0
    for r in current_label_rows(conn):
        if r["label"] != 1:
            skipped_no += 1
            continue
        frame = index.by_id.get(r["frame_id"])
        if frame is None:
            continue
        out.append({"frame": unique_name(frame, index), "label": r["bug_type"], "split": frame.split,
                    "box": ",".join(str(v) for v in json.loads(r["box"])) if r["box"] else ""})
    return out, skipped_no


def unique_name(frame: FrameRow, index: FrameIndex) -> str:
    """The friendliest name that resolves back to exactly this frame."""
    for name in (display_name(frame), (frame.aux or {}).get("file_abs"), frame.path):
        if name and [f.id for f in index.candidates(name)] == [frame.id]:
            return name
    return frame.sha256


def write_label_file(path: Path, rows: Iterable[dict]) -> int:
    """Write rows as CSV or JSON lines (by the file's suffix); how many."""
    path = Path(path)
    rows = list(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        if is_json_lines(path):
            for row in rows:
                fh.write(json.dumps({k: v for k, v in row.items() if v != ""}, sort_keys=True) + "\n")
        else:
            writer = csv.DictWriter(fh, fieldnames=list(COLUMNS))
            writer.writeheader()
            writer.writerows(rows)
    return len(rows)
