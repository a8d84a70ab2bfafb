"""SQLite connection handling shared by every stage.

WAL mode lets readers (the review app, the service's reports) run while a writer (ingest, the
nightly job) commits; ``synchronous=NORMAL`` under WAL keeps committed transactions across a
process kill. Each stage declares its tables with :func:`ensure_schema`, keyed by a name and a
version, so stages stay independent and a newer stage can migrate its own tables.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

BUSY_TIMEOUT_MS = 30_000


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the project database with the settings every stage relies on."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_versions (name TEXT PRIMARY KEY, version INTEGER NOT NULL)"
    )
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``: take the write lock up front so two writers queue
    instead of failing half-way with ``database is locked``."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def require_transaction(conn: sqlite3.Connection, what: str) -> None:
    """Refuse a write meant to be one part of a caller's transaction when none is open: alone,
    it would commit by itself and break the caller's all-or-nothing promise."""
    if not conn.in_transaction:
        raise RuntimeError(f"{what} writes inside the caller's transaction; open one with "
                           "bugdet.store.database.transaction(conn) first")


def ensure_schema(conn: sqlite3.Connection, name: str, migrations: Sequence[str]) -> None:
    """Bring the tables named ``name`` up to ``len(migrations)``.

    ``migrations[i]`` is the SQL script that moves the schema from version ``i`` to ``i + 1``;
    append to the list, never edit an entry that has shipped.
    """
    with transaction(conn):
        row = conn.execute("SELECT version FROM schema_versions WHERE name = ?", (name,)).fetchone()
        current = row["version"] if row else 0
        for script in migrations[current:]:
            for statement in _split_sql(script):
                conn.execute(statement)
        if current < len(migrations):
            conn.execute(
                "INSERT INTO schema_versions(name, version) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET version = excluded.version",
                (name, len(migrations)),
            )


def where_clause(
    equals: dict[str, object] | None = None,
    one_of: dict[str, Sequence[object]] | None = None,
    min_id: int | None = None,
) -> tuple[str, list[object]]:
    """``WHERE ...`` and its parameters for the optional filters every table listing takes:
    ``column = value`` (None values are skipped), ``column IN (...)`` (an empty list matches
    nothing) and ``id >= min_id`` (incremental jobs read only new rows)."""
    clauses: list[str] = []
    params: list[object] = []
    for column, value in (equals or {}).items():
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    for column, values in (one_of or {}).items():
        if values is not None:
            values = list(values)
            clauses.append(f"{column} IN ({','.join('?' * len(values))})" if values else "0")
            params.extend(values)
    if min_id is not None:
        clauses.append("id >= ?")
        params.append(min_id)
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params


def _split_sql(script: str) -> list[str]:
    # executescript() would COMMIT our transaction; split on ';' instead (no ';' inside our DDL strings).
    return [s.strip() for s in script.split(";") if s.strip()]
