"""Decision history, undo, and export of decisions and labels as JSON or CSV."""

from __future__ import annotations

import json
import time

from starlette.responses import Response
from starlette.routing import Route

from bugdet.review import history as store
from bugdet.review.api.common import Args, endpoint
from bugdet.review.state import NotFound, ReviewState

EXPORTS = ("decisions", "labels", "masks")


def history(state: ReviewState, args: Args) -> dict:
    limit = args.int("limit", 200, lo=1, hi=10000)
    with state.db() as conn:
        entries = store.history(conn)
    return {"total": len(entries), "entries": [e.to_dict() for e in entries[:limit]]}


def undo(state: ReviewState, args: Args) -> dict:
    """Undo the entry ``key`` (e.g. ``decision:12``), or with ``last`` the tester's newest standing action."""
    with state.db() as conn:
        if args.body.get("last"):
            key = store.last_undoable(conn, args.who()).key
        else:
            key = args.str("key")
            store.parse_key(key)
            if key not in {e.key for e in store.history(conn)}:
                raise NotFound(f"no history entry {key!r}")
        entry = store.undo(conn, key)
    return {"undone": key, "entry": entry.to_dict()}


def export(state: ReviewState, args: Args) -> Response:
    what = args.str("what", "decisions", choices=EXPORTS)
    fmt = args.str("format", "json", choices=("json", "csv"))
    with state.db() as conn:
        rows = store.export_rows(conn, what)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    name = f"bugdet-review-{what}-{stamp}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if fmt == "csv":
        return Response(store.to_csv(rows), media_type="text/csv; charset=utf-8", headers=headers)
    body = json.dumps({"project": state.project.config.name, "what": what, "exported_at": time.time(), "rows": rows},
                      indent=1)
    return Response(body, media_type="application/json", headers=headers)


routes = [
    Route("/api/history", endpoint(history)),
    Route("/api/undo", endpoint(undo), methods=["POST"]),
    Route("/api/export", endpoint(export)),
]
