"""One decision history over the three places review actions land, with undo and export.

A tester's action is one history entry, whatever it wrote:

* ``decision:<id>`` a keep/reject rule (text prompt, whole cluster) or a single-mask verdict in
  :mod:`bugdet.refine.decisions`; undo = :func:`revoke_decision` (a rule takes its derived
  per-mask decisions with it);
* ``batch:<token>`` several single-mask verdicts given in one click (e.g. "reject the selected
  results of 'sky'"), written in one transaction: :data:`BATCH_PREFIX` + token in their ``note``
  groups them; undo revokes all of them in one transaction;
* ``flag:<review id>`` a verdict on a detector flag (:mod:`bugdet.review.flags`);
* ``mask:<id>`` a mask drawn with geometry prompts and saved as a source or weapon mask; undo
  revokes the decisions on it and deletes the mask, in one transaction (nothing else refers to a
  fresh prompt mask until the nightly job embeds it), and records what was undone in
  ``review_undone_masks`` so the entry stays in the history.

Nothing is rewritten: revoked entries of every kind stay in the history, marked with when they
were undone (the page strikes them through).
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
from dataclasses import asdict, dataclass
from typing import Any

from bugdet.errors import InputError
from bugdet.refine.decisions import list_decisions, mark_revoked, revoke_decision, revoke_decisions
from bugdet.review.flags import ensure_flags_schema, list_flag_reviews, revoke_flag_review
from bugdet.segment.store import PROMPT_BACKEND, ensure_segment_schema
from bugdet.store.database import ensure_schema, transaction
from bugdet.store.labels import ensure_labels_schema

BATCH_PREFIX = "review batch "
#: ``note`` of the keep decision stored with a saved source mask (shown as the mask's own entry).
SOURCE_MASK_NOTE = "drawn with geometry prompts in the review app"
KINDS = ("decision", "batch", "flag", "mask")
#: ``mask:<id>@<n>`` names the n-th undone mask whose id SQLite has since given to a newer mask.
UNDONE_SEPARATOR = "@"

SCHEMA = [
    """
    CREATE TABLE review_undone_masks (
        id INTEGER PRIMARY KEY,
        mask_id INTEGER NOT NULL,      -- the deleted masks.id (SQLite may give it to the next new mask)
        frame_id INTEGER NOT NULL,
        role TEXT NOT NULL,
        area INTEGER NOT NULL,
        who TEXT NOT NULL,
        created_at REAL NOT NULL,      -- when the mask was saved
        revoked_at REAL NOT NULL,      -- when it was undone or replaced
        note TEXT NOT NULL DEFAULT ''  -- e.g. "replaced by a newer weapon mask"
    );
    """,
]


def ensure_history_schema(conn: sqlite3.Connection) -> None:
    ensure_segment_schema(conn)
    ensure_schema(conn, "review_history", SCHEMA)


@dataclass
class Entry:
    key: str                 # kind:id, what undo takes
    kind: str
    who: str
    at: float
    action: str              # keep / reject / confirm / save-source / save-weapon
    summary: str
    revoked_at: float | None = None
    count: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _decision_summary(d) -> str:
    if d.scope == "prompt":
        return f"{d.action} masks matching {', '.join(repr(p) for p in d.prompts or [])} (similarity >= {d.threshold:.3f})"
    if d.scope == "cluster":
        return f"{d.action} whole cluster {d.cluster} of clustering run {d.cluster_run}"
    return f"{d.action} mask {d.mask_id}"


def history(conn: sqlite3.Connection, limit: int | None = None) -> list[Entry]:
    """Every review action, newest first."""
    ensure_flags_schema(conn)
    ensure_history_schema(conn)
    entries: list[Entry] = []
    batches: dict[str, Entry] = {}
    for d in list_decisions(conn, include_derived=False):
        if d.scope == "mask" and d.note == SOURCE_MASK_NOTE:
            continue  # shown as the saved mask's entry
        if d.scope == "mask" and d.note and d.note.startswith(BATCH_PREFIX):
            token = d.note[len(BATCH_PREFIX):].split(":", 1)[0]
            entry = batches.get(token)
            if entry is None:
                label = d.note.split(":", 1)[1].strip() if ":" in d.note else ""
                entry = batches[token] = Entry(f"batch:{token}", "batch", d.who, d.created_at, d.action,
                                               label, d.revoked_at, 0)
                entries.append(entry)
            entry.count += 1
            entry.at = max(entry.at, d.created_at)
            if d.revoked_at is None:
                entry.revoked_at = None
            continue
        entries.append(Entry(f"decision:{d.id}", "decision", d.who, d.created_at, d.action, _decision_summary(d),
                             d.revoked_at))
    for b in batches.values():
        b.summary = f"{b.action} {b.count} selected masks" + (f" ({b.summary})" if b.summary else "")
    for r in list_flag_reviews(conn):
        entries.append(Entry(f"flag:{r['id']}", "flag", r["who"], r["created_at"], r["verdict"],
                             f"{r['verdict']} detector flag #{r['flag_id']}: {r['bug_type']} on frame {r['frame_id']} "
                             f"(score {r['score']:.2f})", r["revoked_at"]))
    for m in conn.execute("SELECT id, frame_id, area, meta, created_at FROM masks WHERE backend = ?", (PROMPT_BACKEND,)):
        meta = json.loads(m["meta"] or "{}")
        prompt = meta.get("prompt") or {}
        if prompt.get("by") != "review":
            continue  # drawn with `bugdet prompt`, not a review action
        role = meta.get("role") or "source"
        entries.append(Entry(f"mask:{m['id']}", "mask", prompt.get("who", ""), m["created_at"], f"save-{role}",
                             _mask_summary(m["id"], role, m["frame_id"], m["area"])))
    live = {e.key for e in entries if e.kind == "mask"}
    for u in conn.execute("SELECT * FROM review_undone_masks ORDER BY id"):
        key = f"mask:{u['mask_id']}"
        if key in live:  # the id went to a newer mask: keep both entries apart
            key = f"mask:{u['mask_id']}{UNDONE_SEPARATOR}{u['id']}"
        live.add(key)
        summary = _mask_summary(u["mask_id"], u["role"], u["frame_id"], u["area"]) + (f" ({u['note']})" if u["note"] else "")
        entries.append(Entry(key, "mask", u["who"], u["created_at"], f"save-{u['role']}", summary, u["revoked_at"]))
    entries.sort(key=lambda e: e.at, reverse=True)
    return entries[:limit] if limit else entries


def _mask_summary(mask_id: int, role: str, frame_id: int, area: int) -> str:
    return f"saved {role} mask {mask_id} on frame {frame_id} ({area} px)"


def parse_key(key: str) -> tuple[str, str]:
    kind, _, ident = str(key).partition(":")
    if kind not in KINDS or not ident:
        raise InputError(f"history entry must look like decision:12, batch:T, flag:3 or mask:40; got {key!r}")
    return kind, ident


def undo(conn: sqlite3.Connection, key: str) -> Entry:
    """Undo one history entry (idempotent: undoing twice changes nothing more)."""
    kind, ident = parse_key(key)
    if kind == "decision":
        revoke_decision(conn, _int(ident, key))
    elif kind == "batch":
        found = [d for d in list_decisions(conn, scope="mask", include_derived=False)
                 if d.note and d.note.startswith(f"{BATCH_PREFIX}{ident}:")]
        if not found:
            raise InputError(f"no batch {ident!r} in the history")
        revoke_decisions(conn, [d.id for d in found])  # one transaction: the batch is undone whole
    elif kind == "flag":
        revoke_flag_review(conn, _int(ident, key))
    elif UNDONE_SEPARATOR not in ident:  # with the separator it names a mask undone already
        _delete_review_mask(conn, _int(ident, key))
    for entry in history(conn):
        if entry.key == key:
            return entry
    return Entry(key, kind, "", time.time(), "undone", f"{key} undone", time.time())


def _int(ident: str, key: str) -> int:
    try:
        return int(ident)
    except ValueError:
        raise InputError(f"history entry {key!r}: {ident!r} is not a number") from None


def _review_mask(conn: sqlite3.Connection, mask_id: int) -> tuple[sqlite3.Row, dict] | None:
    """The mask row and its prompt meta when ``mask_id`` was saved in the review app, else None."""
    row = conn.execute("SELECT id, backend, frame_id, area, meta, created_at FROM masks WHERE id = ?", (mask_id,)).fetchone()
    if row is None:
        return None
    meta = json.loads(row["meta"] or "{}")
    if row["backend"] != PROMPT_BACKEND or (meta.get("prompt") or {}).get("by") != "review":
        return None
    return row, meta


def _remember(conn: sqlite3.Connection, row: sqlite3.Row, meta: dict, note: str = "") -> None:
    conn.execute(
        "INSERT INTO review_undone_masks (mask_id, frame_id, role, area, who, created_at, revoked_at, note) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (row["id"], row["frame_id"], meta.get("role") or "source", row["area"], (meta.get("prompt") or {}).get("who", ""),
         row["created_at"], time.time(), note),
    )


def remember_replaced(conn: sqlite3.Connection, mask_ids: list[int], note: str) -> None:
    """Keep the history entries of review masks a new save is about to replace (one weapon mask per frame)."""
    ensure_history_schema(conn)
    with transaction(conn):
        for mask_id in mask_ids:
            found = _review_mask(conn, mask_id)
            if found is not None:
                _remember(conn, *found, note=note)


def _delete_review_mask(conn: sqlite3.Connection, mask_id: int) -> None:
    """Delete a mask saved in the review app, revoke its decisions, and keep its history entry."""
    ensure_history_schema(conn)
    if conn.execute("SELECT 1 FROM masks WHERE id = ?", (mask_id,)).fetchone() is None:
        return  # already undone
    found = _review_mask(conn, mask_id)
    if found is None:
        raise InputError(f"mask {mask_id} was not saved in the review app; it cannot be undone here")
    standing = [d.id for d in list_decisions(conn, mask_id=mask_id, include_derived=False, include_revoked=False)]
    with transaction(conn):  # the mask, its keep decision and its history row go together
        mark_revoked(conn, standing)
        conn.execute("DELETE FROM masks WHERE id = ?", (mask_id,))
        _remember(conn, *found)


def last_undoable(conn: sqlite3.Connection, who: str) -> Entry:
    """The newest action of ``who`` that still stands."""
    for entry in history(conn):
        if entry.who == who and entry.revoked_at is None:
            return entry
    raise InputError(f"nothing of {who!r} left to undo")


# -- export -------------------------------------------------------------------------------------

def export_rows(conn: sqlite3.Connection, what: str) -> list[dict[str, Any]]:
    """Flat rows for ``decisions`` (review history), ``labels`` (frame labels) or ``masks`` (effective status)."""
    if what == "decisions":
        return [{"key": e.key, "kind": e.kind, "who": e.who, "at": e.at,
                 "at_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e.at)), "action": e.action,
                 "summary": e.summary, "count": e.count, "revoked_at": e.revoked_at} for e in reversed(history(conn))]
    if what == "labels":
        ensure_labels_schema(conn)
        return [dict(r) for r in conn.execute(
            "SELECT l.id, l.frame_id, f.path, l.bug_type, l.label, l.who, l.source, l.created_at "
            "FROM frame_labels l JOIN frames f ON f.id = l.frame_id ORDER BY l.id")]
    if what == "masks":
        from bugdet.refine.decisions import mask_status

        return [{"mask_id": m, "status": s} for m, s in sorted(mask_status(conn).items())]
    raise InputError(f"export what= must be decisions, labels or masks; got {what!r}")


def to_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    if not rows:
        return ""
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
