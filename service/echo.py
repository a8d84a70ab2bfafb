"""Quote strings a client sent back into error messages, capped.

Error details travel in the ``grpc-message`` trailer, and clients refuse trailers above their
metadata limit (8-16 KiB by default): echoing a 100 KB model name whole turns the intended
NOT_FOUND into a RESOURCE_EXHAUSTED on the client. Every client-supplied string that an error
message repeats goes through :func:`echo`, so the limit holds everywhere at once.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Characters of one client string repeated in an error message.
ECHO_LIMIT = 200
#: Items of a client list (e.g. input names) repeated in an error message.
ECHO_ITEMS = 5


def echo(value: str, limit: int = ECHO_LIMIT) -> str:
    """``repr(value)``, or its first ``limit`` characters with an ellipsis and the full length."""
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}... ({len(value)} characters)"


def echo_list(values: Iterable[str], items: int = ECHO_ITEMS, limit: int = ECHO_LIMIT) -> str:
    """``[a, b, ...]`` of the first ``items`` values, each capped, with how many were left out."""
    values = list(values)
    shown = ", ".join(echo(v, limit) for v in values[:items])
    more = f", ... {len(values) - items} more" if len(values) > items else ""
    return f"[{shown}{more}]"
