"""Every keep/reject decision, persisted: the library API the CLI, review app and nightly job share.

Three scopes of decision:

* ``prompt`` rules: "keep: car, truck" / "reject: tree, grass, sky" at a cosine threshold. The prompt
  texts' embeddings are stored with the rule, so replaying it on new captures needs no text tower.
* ``cluster`` rules: accept or reject a whole cluster of one clustering run; new masks join the
  cluster whose centroid is nearest.
* ``mask`` decisions: one mask. Made by a person (``rule_id`` NULL) or derived from a rule when the
  rule was evaluated on that mask (``rule_id`` set, ``score`` = the similarity that decided it;
  ``pass`` = evaluated, rule has no opinion).

A mask's effective status (:func:`mask_status`), strongest first: the latest manual decision on
the mask; the latest cluster rule covering it; prompt rules, where any matching reject wins, and
where keep rules exist a mask must match at least one of them (keep lists are OR-ed). Revoked
rules and their derived decisions are ignored. The order of prompt rules therefore never matters,
which keeps replay on new masks deterministic.
"""

from __future__ import annotations

import getpass
import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence, Union

import numpy as np

from bugdet.errors import InputError
from bugdet.store.database import ensure_schema, require_transaction, transaction

if TYPE_CHECKING:
    from bugdet.project import Project

#: Every public function takes an open connection or a :class:`~bugdet.project.Project`.
Store = Union[sqlite3.Connection, "Project"]

ACTIONS = ("keep", "reject", "pass")
SCOPES = ("prompt", "cluster", "mask")
#: Ids per ``IN (...)`` query, well under SQLite's bound-parameter limit.
_ID_CHUNK = 500

SCHEMA = [
    """
    CREATE TABLE decisions (
        id INTEGER PRIMARY KEY,
        scope TEXT NOT NULL,              -- prompt / cluster / mask
        action TEXT NOT NULL,             -- keep / reject / pass (pass: rule evaluated, no opinion)
        who TEXT NOT NULL,
        created_at REAL NOT NULL,
        mask_id INTEGER,                  -- scope mask
        cluster_run INTEGER,              -- scope cluster: the clustering run ...
        cluster INTEGER,                  -- ... and the cluster in it
        prompt TEXT,                      -- scope prompt: JSON list of prompt texts
        threshold REAL,                   -- cosine threshold of a prompt rule
        score REAL,                       -- similarity that decided a derived mask decision
        model_key TEXT,                   -- embedding space the rule's vectors live in
        vectors BLOB,                     -- float32 prompt embeddings (rows = prompts)
        rule_id INTEGER REFERENCES decisions(id),
        note TEXT,
        revoked_at REAL
    );
    CREATE INDEX decisions_mask ON decisions(mask_id, scope);
    CREATE INDEX decisions_rule ON decisions(rule_id, mask_id);
    """,
]


@dataclass
class Decision:
    id: int
    scope: str
    action: str
    who: str
    created_at: float
    mask_id: int | None = None
    cluster_run: int | None = None
    cluster: int | None = None
    prompts: list[str] | None = None
    threshold: float | None = None
    score: float | None = None
    model_key: str | None = None
    rule_id: int | None = None
    note: str | None = None
    revoked_at: float | None = None
    dim: int = 0
    _vectors: bytes | None = None

    @property
    def is_rule(self) -> bool:
        return self.scope in ("prompt", "cluster")

    @property
    def vectors(self) -> np.ndarray | None:
        if self._vectors is None:
            return None
        return np.frombuffer(self._vectors, np.float32).reshape(len(self.prompts or []), -1)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Decision":
        return cls(
            id=row["id"], scope=row["scope"], action=row["action"], who=row["who"], created_at=row["created_at"],
            mask_id=row["mask_id"], cluster_run=row["cluster_run"], cluster=row["cluster"],
            prompts=json.loads(row["prompt"]) if row["prompt"] else None, threshold=row["threshold"],
            score=row["score"], model_key=row["model_key"], rule_id=row["rule_id"], note=row["note"],
            revoked_at=row["revoked_at"], _vectors=row["vectors"],
        )

    def to_dict(self) -> dict:
        """JSON-ready fields (prompt vectors left out), for the review app and reports."""
        return {k: getattr(self, k) for k in (
            "id", "scope", "action", "who", "created_at", "mask_id", "cluster_run", "cluster", "prompts",
            "threshold", "score", "model_key", "rule_id", "note", "revoked_at")}

    def describe(self) -> str:
        what = {"prompt": f"prompts {self.prompts} >= {self.threshold}",
                "cluster": f"cluster {self.cluster} of run {self.cluster_run}",
                "mask": f"mask {self.mask_id}"}[self.scope]
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.created_at))
        revoked = " (revoked)" if self.revoked_at else ""
        return f"#{self.id} {self.action} {what} by {self.who} at {when}Z{revoked}"


def ensure_decisions_schema(conn: sqlite3.Connection) -> None:
    ensure_schema(conn, "decisions", SCHEMA)


@contextmanager
def connection(store: Store) -> Iterator[sqlite3.Connection]:
    """Use ``store`` if it is a connection, else open (and afterwards close) the project's database."""
    if isinstance(store, sqlite3.Connection):
        yield store
        return
    conn = store.connect()
    try:
        yield conn
    finally:
        conn.close()


def default_who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass
class NewDecision:
    """A decision about to be recorded: what the caller decides (id, time and revocation are the store's).

    Several of these go to :func:`record_decisions` together when one action of a person covers
    many masks ("reject the selected results"), so the action lands whole or not at all.
    """

    scope: str
    action: str
    who: str | None = None
    mask_id: int | None = None
    cluster_run: int | None = None
    cluster: int | None = None
    prompts: Sequence[str] | None = None
    threshold: float | None = None
    score: float | None = None
    model_key: str | None = None
    vectors: np.ndarray | None = None
    rule_id: int | None = None
    note: str | None = None

    def validate(self) -> None:
        """Raise :class:`InputError` naming what a person (or a caller) got wrong."""
        if self.scope not in SCOPES:
            raise InputError(f"decision scope must be one of {', '.join(SCOPES)}, got {self.scope!r}")
        if self.action not in ACTIONS:
            raise InputError(f"decision action must be one of {', '.join(ACTIONS)}, got {self.action!r}")
        if self.scope == "mask" and self.mask_id is None:
            raise InputError("a mask decision needs a mask id")
        if self.scope == "cluster" and (self.cluster_run is None or self.cluster is None):
            raise InputError("a cluster decision needs a clustering run and a cluster")
        if self.scope == "prompt":
            if not self.prompts or self.threshold is None or self.vectors is None:
                raise InputError("a prompt rule needs prompts, a threshold and their embeddings")
            if self.action == "pass":
                raise InputError("a prompt rule must keep or reject")

    def row(self, created_at: float) -> tuple:
        """Values for :data:`_INSERT`, in its column order."""
        blob = np.ascontiguousarray(self.vectors, np.float32).tobytes() if self.vectors is not None else None
        return (self.scope, self.action, self.who or default_who(), created_at,
                None if self.mask_id is None else int(self.mask_id), self.cluster_run, self.cluster,
                json.dumps(list(self.prompts)) if self.prompts is not None else None, self.threshold, self.score,
                self.model_key, blob, self.rule_id, self.note)


#: The one statement every decision is written with (single, batched and derived alike).
_INSERT = (
    "INSERT INTO decisions(scope, action, who, created_at, mask_id, cluster_run, cluster, prompt, threshold, "
    "score, model_key, vectors, rule_id, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def insert_decisions(conn: sqlite3.Connection, decisions: Iterable[NewDecision]) -> list[int]:
    """Validate and insert ``decisions`` inside the caller's open transaction; their ids, in order.

    For callers that write decisions together with rows of their own (e.g. checking that masks
    still exist in the same transaction). A row that fails validation raises :class:`InputError`
    after earlier rows were inserted: the caller's transaction must roll back, which
    :func:`bugdet.store.database.transaction` does. Call :func:`ensure_decisions_schema` first
    (schema changes take their own transaction).
    """
    require_transaction(conn, "insert_decisions")
    now = time.time()
    ids: list[int] = []
    for decision in decisions:
        decision.validate()
        ids.append(int(conn.execute(_INSERT, decision.row(now)).lastrowid))
    return ids


def record_decisions(store: Store, decisions: Iterable[NewDecision]) -> list[Decision]:
    """Persist ``decisions`` in ONE transaction (all of them or, on any error, none); returns them with ids.

    One action of a person is one batch: a failure half-way (an invalid row, a full disk, a killed
    process) must not leave the first half of "reject these 40 masks" standing.
    """
    with connection(store) as conn:
        ensure_decisions_schema(conn)
        with transaction(conn):
            ids = insert_decisions(conn, decisions)
        return get_decisions(conn, ids)


def record_decision(
    store: Store,
    *,
    scope: str,
    action: str,
    who: str | None = None,
    mask_id: int | None = None,
    cluster_run: int | None = None,
    cluster: int | None = None,
    prompts: Sequence[str] | None = None,
    threshold: float | None = None,
    score: float | None = None,
    model_key: str | None = None,
    vectors: np.ndarray | None = None,
    rule_id: int | None = None,
    note: str | None = None,
) -> Decision:
    """Validate and persist one decision (a batch of one, see :func:`record_decisions`); returns it with its id."""
    decision = NewDecision(scope=scope, action=action, who=who, mask_id=mask_id, cluster_run=cluster_run,
                           cluster=cluster, prompts=prompts, threshold=threshold, score=score, model_key=model_key,
                           vectors=vectors, rule_id=rule_id, note=note)
    return record_decisions(store, [decision])[0]


def record_derived(store: Store, rule: Decision, outcomes: Iterable[tuple[int, str, float | None]]) -> int:
    """Persist a rule's per-mask outcomes ``(mask_id, action, score)`` in one transaction.

    Same statement and row layout as :func:`insert_decisions`; ``executemany`` because a rule is
    evaluated on every embedded mask and nobody needs the derived rows' ids.
    """
    with connection(store) as conn:
        ensure_decisions_schema(conn)
        now = time.time()
        rows = []
        for mask_id, action, score in outcomes:
            derived = NewDecision(scope="mask", action=action, who=rule.who, mask_id=int(mask_id), score=score,
                                  model_key=rule.model_key, rule_id=rule.id)
            derived.validate()
            rows.append(derived.row(now))
        with transaction(conn):
            conn.executemany(_INSERT, rows)
        return len(rows)


def get_decision(store: Store, decision_id: int) -> Decision:
    with connection(store) as conn:
        ensure_decisions_schema(conn)
        row = conn.execute("SELECT * FROM decisions WHERE id = ?", (decision_id,)).fetchone()
        if row is None:
            raise InputError(f"no decision #{decision_id}")
        return Decision.from_row(row)


def get_decisions(store: Store, decision_ids: Sequence[int]) -> list[Decision]:
    """Decisions by id, in the order asked; an unknown id raises :class:`InputError`."""
    with connection(store) as conn:
        ensure_decisions_schema(conn)
        return _fetch(conn, decision_ids)


def _fetch(conn: sqlite3.Connection, decision_ids: Sequence[int]) -> list[Decision]:
    # No schema check: also called inside an open transaction, where ensure_schema cannot begin its own.
    found: dict[int, Decision] = {}
    wanted = [int(i) for i in decision_ids]
    for start in range(0, len(wanted), _ID_CHUNK):
        chunk = wanted[start:start + _ID_CHUNK]
        for row in conn.execute(f"SELECT * FROM decisions WHERE id IN ({','.join('?' * len(chunk))})", chunk):
            found[row["id"]] = Decision.from_row(row)
    missing = [i for i in wanted if i not in found]
    if missing:
        raise InputError(f"no decision #{missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    return [found[i] for i in wanted]


def list_decisions(
    store: Store,
    *,
    scope: str | None = None,
    mask_id: int | None = None,
    rules_only: bool = False,
    include_derived: bool = True,
    include_revoked: bool = True,
) -> list[Decision]:
    """Decisions in the order they were made, filtered."""
    with connection(store) as conn:
        ensure_decisions_schema(conn)
        clauses, params = [], []
        if scope is not None:
            clauses.append("scope = ?")
            params.append(scope)
        if mask_id is not None:
            clauses.append("mask_id = ?")
            params.append(mask_id)
        if rules_only:
            clauses.append("scope IN ('prompt', 'cluster')")
        if not include_derived:
            clauses.append("rule_id IS NULL")
        if not include_revoked:
            clauses.append("revoked_at IS NULL")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return [Decision.from_row(r) for r in conn.execute(f"SELECT * FROM decisions {where} ORDER BY id", params)]


def mark_revoked(conn: sqlite3.Connection, decision_ids: Sequence[int]) -> None:
    """Withdraw decisions inside the caller's open transaction (already revoked ones keep their time).

    Unknown ids raise :class:`InputError`, which rolls the caller's transaction back. Call
    :func:`ensure_decisions_schema` first.
    """
    require_transaction(conn, "mark_revoked")
    _fetch(conn, decision_ids)  # raises InputError for an unknown id
    now = time.time()
    conn.executemany("UPDATE decisions SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                     [(now, int(i)) for i in decision_ids])


def revoke_decisions(store: Store, decision_ids: Sequence[int]) -> list[Decision]:
    """Withdraw several decisions in one transaction (undoing one batch action is one undo)."""
    with connection(store) as conn:
        ensure_decisions_schema(conn)
        with transaction(conn):
            mark_revoked(conn, decision_ids)
        return get_decisions(conn, decision_ids)


def revoke_decision(store: Store, decision_id: int) -> Decision:
    """Withdraw a decision (and with a rule, everything derived from it); the rows stay as history."""
    return revoke_decisions(store, [decision_id])[0]


def evaluated_masks(store: Store, rule_id: int) -> set[int]:
    """Masks a rule has already been evaluated on."""
    with connection(store) as conn:
        ensure_decisions_schema(conn)
        return {r[0] for r in conn.execute("SELECT mask_id FROM decisions WHERE rule_id = ?", (rule_id,))}


def mask_status(store: Store, mask_ids: Iterable[int] | None = None) -> dict[int, str]:
    """Effective ``keep`` / ``reject`` per mask (masks without any decision are absent)."""
    with connection(store) as conn:
        ensure_decisions_schema(conn)
        rows = conn.execute(
            """SELECT d.id, d.mask_id, d.action, d.rule_id, r.scope AS rule_scope, r.action AS rule_action
               FROM decisions d LEFT JOIN decisions r ON r.id = d.rule_id
               WHERE d.scope = 'mask' AND d.revoked_at IS NULL AND (r.id IS NULL OR r.revoked_at IS NULL)
               ORDER BY d.id"""
        ).fetchall()
        keep_rules_exist = conn.execute(
            "SELECT 1 FROM decisions WHERE scope = 'prompt' AND action = 'keep' AND revoked_at IS NULL LIMIT 1"
        ).fetchone() is not None
        manual: dict[int, str] = {}
        by_cluster: dict[int, str] = {}
        prompt_reject: set[int] = set()
        prompt_keep: set[int] = set()
        evaluated: set[int] = set()
        for r in rows:
            m = r["mask_id"]
            if r["rule_id"] is None:
                if r["action"] != "pass":
                    manual[m] = r["action"]
            elif r["rule_scope"] == "cluster":
                if r["action"] != "pass":
                    by_cluster[m] = r["action"]
            elif r["rule_scope"] == "prompt":
                evaluated.add(m)
                if r["rule_action"] == "reject" and r["action"] == "reject":
                    prompt_reject.add(m)
                elif r["rule_action"] == "keep" and r["action"] == "keep":
                    prompt_keep.add(m)
        status: dict[int, str] = {}
        for m in evaluated:
            if m in prompt_reject:
                status[m] = "reject"
            elif keep_rules_exist:
                status[m] = "keep" if m in prompt_keep else "reject"
            else:
                status[m] = "keep"
        status.update(by_cluster)
        status.update(manual)
        if mask_ids is not None:
            wanted = set(int(i) for i in mask_ids)
            status = {m: s for m, s in status.items() if m in wanted}
        return status
