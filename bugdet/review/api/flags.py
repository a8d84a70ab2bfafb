"""Flag review: frames the detector flagged in playtests, confirmed or rejected by a tester, a page at a time."""

from __future__ import annotations

from starlette.routing import Route

from bugdet.errors import InputError
from bugdet.review.api.common import Args, endpoint
from bugdet.review.flags import VERDICTS, count_flags, decide_flag, get_flag, list_flags
from bugdet.review.state import NotFound, ReviewState

STATUSES = ("pending", "confirmed", "rejected", "all")
#: Flags per page by default, and at most: each card shows a whole frame.
PAGE = 24
MAX_PAGE = 200


def flags(state: ReviewState, args: Args) -> dict:
    """One page of the flags with ``status``, plus every status's count (the filter buttons show them)."""
    status = args.str("status", "pending", choices=STATUSES)
    offset, limit = args.int("offset", 0, lo=0), args.int("limit", PAGE, lo=1, hi=MAX_PAGE)
    with state.db() as conn:
        counts = count_flags(conn)
        found = list_flags(conn, status, offset, limit)
    return {"status": status, "counts": counts, "total": counts[status], "offset": offset, "limit": limit,
            "flags": [f.to_dict() for f in found]}


def decision(state: ReviewState, args: Args) -> dict:
    """Confirm or reject; the frame label for the nightly retraining is on disk when this answers."""
    verdict = args.str("verdict", choices=VERDICTS)
    who = args.who()
    flag_id = args.int("flag_id")
    with state.db() as conn:
        try:
            get_flag(conn, flag_id)
        except InputError as exc:
            raise NotFound(str(exc)) from None
        flag = decide_flag(conn, flag_id, verdict, who)
    return {"flag": flag.to_dict(), "history_key": f"flag:{flag.review_id}"}


routes = [
    Route("/api/flags", endpoint(flags)),
    Route("/api/flags/{flag_id:int}/decision", endpoint(decision), methods=["POST"]),
]
