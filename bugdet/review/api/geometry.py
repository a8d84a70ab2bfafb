"""Geometry prompts: click object/background points or drag a box on a frame, preview, save.

The first prompt on a frame pays for the backend's per-frame work (``set_image``); the frame's
predictor is then cached (:class:`~bugdet.review.state.ReviewState`) so every further click is
answered from that work. A saved mask goes through :func:`bugdet.segment.store.save_prompt_mask`,
exactly like ``bugdet prompt --save``: role ``weapon`` is the viewmodel mask the augment stage
composites against (``augment.weapon_source: prompt``), otherwise it is a source mask, stored
with a keep decision so filtering keeps it; the nightly ``bugdet embed`` embeds it.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from starlette.routing import Route

from bugdet.errors import InputError
from bugdet.refine.rules import decide_masks
from bugdet.review.api.common import Args, endpoint, png_response
from bugdet.review.history import SOURCE_MASK_NOTE
from bugdet.review.images import data_uri, mask_rgba, png_bytes
from bugdet.review.state import ReviewState
from bugdet.segment.masks import mask_bbox
from bugdet.segment.prompts import make_prompt
from bugdet.segment.store import PROMPT_BACKEND, save_prompt_mask
from bugdet.store.frames import ensure_frames_schema

ROLES = ("source", "weapon")
MAX_POINTS = 64


def _prompt_values(args: Args) -> tuple[list[list[float]] | None, list[int] | None, list[float] | None]:
    """Points, labels and box from the JSON body, with messages naming what is wrong."""
    points, labels, box = args.body.get("points") or None, args.body.get("labels") or None, args.body.get("box") or None

    def numbers(value: Any, what: str) -> list[float]:
        if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise InputError(f"{what} must be a list of numbers, got {value!r}")
        return [float(v) for v in value]

    if points is not None:
        if not isinstance(points, list) or len(points) > MAX_POINTS:
            raise InputError(f"'points' must be a list of at most {MAX_POINTS} [x, y] pairs")
        points = [numbers(p, "each point") for p in points]
    if labels is not None:
        if not isinstance(labels, list) or not all(v in (0, 1) and not isinstance(v, bool) for v in labels):
            raise InputError("'labels' must be a list of 1 (object) or 0 (background)")
    if box is not None:
        box = numbers(box, "'box'")
    return points, labels, box


def _predict(state: ReviewState, frame_id: int, args: Args) -> tuple[np.ndarray, float, dict, bool, float]:
    points, labels, box = _prompt_values(args)
    started = time.perf_counter()
    cached_predictor, cached = state.predictor(frame_id)
    with cached_predictor.lock:
        predictor = cached_predictor.predictor
        mask, score = predictor.predict(points=points, labels=labels, box=box)
        spec = make_prompt(predictor.image_shape, points, labels, box).to_meta()
    return mask, score, spec, cached, time.perf_counter() - started


def list_frames(state: ReviewState, args: Args) -> dict:
    """One page of the project's frames in id order, with the total (the frame picker pages through them)."""
    offset, limit = args.int("offset", 0, lo=0), args.int("limit", 60, lo=1, hi=500)
    with state.db() as conn:
        ensure_frames_schema(conn)
        total = conn.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
        rows = conn.execute("SELECT id, width, height, scene, split FROM frames ORDER BY id LIMIT ? OFFSET ?",
                            (limit, offset)).fetchall()
    return {"total": total, "offset": offset, "limit": limit,
            "frames": [{"frame_id": r["id"], "width": r["width"], "height": r["height"], "scene": r["scene"],
                        "split": r["split"]} for r in rows]}


def frame_image(state: ReviewState, args: Args):
    _, rgb = state.frame(args.int("frame_id"))
    return png_response(png_bytes(rgb), cache_seconds=3600)


def frame_masks(state: ReviewState, args: Args) -> dict:
    """Masks already saved on this frame with prompts (so the tester sees the weapon mask is there)."""
    frame_id = args.int("frame_id")
    state.frame(frame_id)
    with state.db() as conn:
        from bugdet.segment.masks import iter_masks

        masks = list(iter_masks(conn, frame_ids=[frame_id], backend=PROMPT_BACKEND))
    return {"frame_id": frame_id, "masks": [{"mask_id": m.id, "role": m.meta.get("role") or "source", "area": m.area}
                                            for m in masks]}


def prepare(state: ReviewState, args: Args) -> dict:
    """Do the frame's per-frame work now (the page asks when a frame is opened), so the first click is quick."""
    frame_id = args.int("frame_id")
    started = time.perf_counter()
    _, cached = state.predictor(frame_id)
    return {"frame_id": frame_id, "backend": state.segment_backend(), "cached": cached,
            "seconds": round(time.perf_counter() - started, 4)}


def predict(state: ReviewState, args: Args) -> dict:
    """A preview of the mask the prompt selects: a transparent PNG layer plus score and size."""
    frame_id = args.int("frame_id")
    mask, score, _, cached, seconds = _predict(state, frame_id, args)
    x, y, w, h = mask_bbox(mask)
    return {"frame_id": frame_id, "backend": state.segment_backend(), "score": round(score, 4),
            "area": int(mask.sum()), "bbox": [x, y, w, h], "seconds": round(seconds, 4), "frame_cached": cached,
            "overlay": data_uri(png_bytes(mask_rgba(mask)))}


def save(state: ReviewState, args: Args) -> dict:
    """Save the prompt's mask as a source mask or as the frame's weapon/viewmodel mask."""
    frame_id = args.int("frame_id")
    role = args.str("role", choices=ROLES)
    who = args.who()
    label = args.str("label", "").strip()[:64] or None
    mask, score, spec, _, _ = _predict(state, frame_id, args)
    spec.update(by="review", who=who)
    with state.db() as conn:
        record = save_prompt_mask(conn, frame_id, mask, score, model=state.segment_backend(), prompt=spec,
                                  role="weapon" if role == "weapon" else None, label=label)
    decision_id = None
    if role == "source":
        decision_id = decide_masks(state.project, [record.id], "keep", who, SOURCE_MASK_NOTE)[0].id
    return {"mask_id": record.id, "role": role, "area": record.area, "decision_id": decision_id,
            "history_key": f"mask:{record.id}"}


routes = [
    Route("/api/frames", endpoint(list_frames)),
    Route("/api/frames/{frame_id:int}/image.png", endpoint(frame_image)),
    Route("/api/frames/{frame_id:int}/masks", endpoint(frame_masks)),
    Route("/api/frames/{frame_id:int}/prepare", endpoint(prepare), methods=["POST"]),
    Route("/api/frames/{frame_id:int}/predict", endpoint(predict), methods=["POST"]),
    Route("/api/frames/{frame_id:int}/save", endpoint(save), methods=["POST"]),
]
