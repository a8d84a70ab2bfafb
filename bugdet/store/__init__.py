"""The project's embedded database: one SQLite file in WAL mode shared by every stage."""

from bugdet.store.database import connect, ensure_schema, transaction

__all__ = ["connect", "ensure_schema", "transaction"]
