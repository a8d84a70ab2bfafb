"""Flag review: frames the detector flagged in playtests, confirmed or rejected by a tester."""

from __future__ import annotations

from starlette.routing import Route

from bugdet.errors import InputError
from bugdet.review.api.common import Args, endpoint
from bugdet.review.flags import VERDICTS, decide_flag, get_flag, list_flags
from bugdet.review.state import NotFound, ReviewState

STATUSES = ("pending", "confirmed", "rejected", "all")


def flags(state: ReviewState, args: Args) -> dict:
    status = args.str("status", "pending", choices=STATUSES)
    with state.db() as conn:
        found = list_flags(conn, status)
        counts = {s: 0 for s in STATUSES}
        for f in list_flags(conn):
            counts[f.status] += 1
            counts["all"] += 1
    return {"status": status, "counts": counts, "flags": [f.to_dict() for f in found]}


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
