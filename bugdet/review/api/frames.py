"""The frame strip of the Draw tab: frames filtered and searched on the server, a page at a time.

A project can hold tens of thousands of frames, so the page never lists them all: it asks for
one page of thumbnails matching the tester's filters (split, labeled, flagged, has masks, a
piece of the file name) and the total, and pages on from there.
"""

from __future__ import annotations

from pathlib import PurePosixPath

import cv2
from starlette.routing import Route

from bugdet.review.api.common import Args, endpoint, png_response
from bugdet.review.flags import ensure_flags_schema
from bugdet.review.images import png_bytes
from bugdet.review.state import ReviewState
from bugdet.segment.masks import ensure_masks_schema
from bugdet.store.labels import ensure_labels_schema

#: Longest side of a frame thumbnail in the strip, in pixels.
FRAME_THUMB = 160
#: Tri-state filters: "yes" keeps frames that have the thing, "no" those without; absent means either.
FLAG_FILTERS = {
    "labeled": "EXISTS (SELECT 1 FROM frame_labels l WHERE l.frame_id = f.id)",
    "flagged": "EXISTS (SELECT 1 FROM flags g WHERE g.frame_id = f.id)",
    "has_masks": "EXISTS (SELECT 1 FROM masks m WHERE m.frame_id = f.id)",
}


def _like_pattern(text: str) -> str:
    """``text`` as a LIKE pattern matching it anywhere, with LIKE's wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _where(args: Args) -> tuple[str, list]:
    clauses, params = [], []
    split = args.str("split", "")
    if split:
        clauses.append("f.split = ?")
        params.append("" if split == "(none)" else split)
    for name, exists in FLAG_FILTERS.items():
        wanted = args.str(name, "any", choices=("any", "yes", "no"))
        if wanted != "any":
            clauses.append(exists if wanted == "yes" else f"NOT {exists}")
    search = args.str("q", "").strip()
    if search:
        clauses.append("f.path LIKE ? ESCAPE '\\'")
        params.append(_like_pattern(search))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def list_frames(state: ReviewState, args: Args) -> dict:
    """One page of the frames matching the filters, in id order, with the matching total and the
    project's splits (the split filter offers them). ``split=(none)`` means frames without a split."""
    offset, limit = args.int("offset", 0, lo=0), args.int("limit", 60, lo=1, hi=500)
    where, params = _where(args)
    with state.db() as conn:
        ensure_labels_schema(conn)
        ensure_flags_schema(conn)
        ensure_masks_schema(conn)
        total = conn.execute(f"SELECT COUNT(*) FROM frames f{where}", params).fetchone()[0]
        rows = conn.execute(
            f"""SELECT f.id, f.width, f.height, f.scene, f.split, f.path,
                       (SELECT COUNT(*) FROM masks m WHERE m.frame_id = f.id) AS n_masks,
                       (SELECT COUNT(*) FROM flags g WHERE g.frame_id = f.id) AS n_flags,
                       {FLAG_FILTERS['labeled']} AS labeled
                FROM frames f{where} ORDER BY f.id LIMIT ? OFFSET ?""",
            [*params, limit, offset]).fetchall()
        splits = [r[0] for r in conn.execute("SELECT DISTINCT split FROM frames ORDER BY split")]
    return {"total": total, "offset": offset, "limit": limit, "splits": splits,
            "frames": [{"frame_id": r["id"], "width": r["width"], "height": r["height"], "scene": r["scene"],
                        "split": r["split"], "name": PurePosixPath(r["path"]).name, "masks": r["n_masks"],
                        "flags": r["n_flags"], "labeled": bool(r["labeled"])} for r in rows]}


def frame_image(state: ReviewState, args: Args):
    _, rgb = state.frame(args.int("frame_id"))
    return png_response(png_bytes(rgb), cache_seconds=3600)


def frame_thumb(state: ReviewState, args: Args):
    """The frame shrunk to at most FRAME_THUMB pixels a side, for the strip."""
    _, rgb = state.frame(args.int("frame_id"))
    scale = min(1.0, FRAME_THUMB / max(rgb.shape[:2]))
    if scale < 1.0:
        size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return png_response(png_bytes(rgb), cache_seconds=3600)


routes = [
    Route("/api/frames", endpoint(list_frames)),
    Route("/api/frames/{frame_id:int}/image.png", endpoint(frame_image)),
    Route("/api/frames/{frame_id:int}/thumb.png", endpoint(frame_thumb)),
]
