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
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.routing import Route

from bugdet.errors import InputError
from bugdet.refine.rules import decide_masks
from bugdet.review.api.common import Args, endpoint
from bugdet.review.history import SOURCE_MASK_NOTE, remember_replaced
from bugdet.review.images import data_uri, mask_rgba, png_bytes
from bugdet.review.state import ReviewState
from bugdet.segment.masks import mask_bbox
from bugdet.segment.prompts import LARGE_MASK_FRACTION, check_role_mask, frame_fraction, is_frame_filling, make_prompt
from bugdet.segment.store import PROMPT_BACKEND, role_masks, save_prompt_mask

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


@dataclass
class Prediction:
    mask: np.ndarray
    score: float
    spec: dict
    backend: str  # "engine" when the frame's object-ID map answered the click
    frame_cached: bool
    seconds: float

    def size_fields(self) -> dict[str, Any]:
        """Area, share of the frame, and the frame-filling flag the page warns with."""
        fraction = frame_fraction(self.mask)
        filling = fraction > LARGE_MASK_FRACTION
        return {
            "area": int(self.mask.sum()), "frame_fraction": round(fraction, 4), "frame_filling": filling,
            "warning": (f"this mask covers {100 * fraction:.0f}% of the frame: it is probably not one object; "
                        "add a background point or draw a box") if filling else None,
        }


def _predict(state: ReviewState, frame_id: int, args: Args) -> Prediction:
    points, labels, box = _prompt_values(args)
    started = time.perf_counter()
    cached_predictor, cached = state.predictor(frame_id)
    with cached_predictor.lock:
        predictor = cached_predictor.predictor
        mask, score = predictor.predict(points=points, labels=labels, box=box)
        spec = make_prompt(predictor.image_shape, points, labels, box).to_meta()
    return Prediction(mask, score, spec, predictor.name, cached, time.perf_counter() - started)


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
    cached_predictor, cached = state.predictor(frame_id)
    return {"frame_id": frame_id, "backend": cached_predictor.predictor.name, "cached": cached,
            "seconds": round(time.perf_counter() - started, 4)}


def predict(state: ReviewState, args: Args) -> dict:
    """A preview of the mask the prompt selects: a transparent PNG layer, score, size, and a warning
    (``frame_filling``) when it covers most of the frame."""
    frame_id = args.int("frame_id")
    p = _predict(state, frame_id, args)
    x, y, w, h = mask_bbox(p.mask)
    return {"frame_id": frame_id, "backend": p.backend, "score": round(p.score, 4), **p.size_fields(),
            "bbox": [x, y, w, h], "seconds": round(p.seconds, 4), "frame_cached": p.frame_cached,
            "overlay": data_uri(png_bytes(mask_rgba(p.mask)))}


def save(state: ReviewState, args: Args) -> dict:
    """Save the prompt's mask as a source mask or as the frame's weapon/viewmodel mask.

    A frame-filling weapon mask is refused (409) unless the body says ``"confirm": true``: it
    would teach FPPC training that the whole frame is the weapon.
    """
    frame_id = args.int("frame_id")
    role = args.str("role", choices=ROLES)
    who = args.who()
    label = args.str("label", "").strip()[:64] or None
    confirm = args.body.get("confirm", False)
    if not isinstance(confirm, bool):
        raise InputError(f"'confirm' must be true or false, got {confirm!r}")
    p = _predict(state, frame_id, args)
    stored_role = "weapon" if role == "weapon" else None
    check_role_mask(p.mask, stored_role, confirm, 'confirm (send "confirm": true)')
    p.spec.update(by="review", who=who)
    if confirm and is_frame_filling(p.mask):
        p.spec["confirmed_frame_filling"] = True
    with state.db() as conn:
        if stored_role:  # the frame keeps one mask per role: the one replaced stays in the history
            replaced = [m.id for m in role_masks(conn, stored_role, [frame_id]) if m.id is not None]
            remember_replaced(conn, replaced, f"replaced by a newer {stored_role} mask")
        record = save_prompt_mask(conn, frame_id, p.mask, p.score, model=p.backend, prompt=p.spec,
                                  role=stored_role, label=label)
    decision_id = None
    if role == "source":
        decision_id = decide_masks(state.project, [record.id], "keep", who, SOURCE_MASK_NOTE)[0].id
    return {"mask_id": record.id, "role": role, "area": record.area, "decision_id": decision_id,
            "history_key": f"mask:{record.id}", "frame_filling": is_frame_filling(p.mask)}


routes = [
    Route("/api/frames/{frame_id:int}/masks", endpoint(frame_masks)),
    Route("/api/frames/{frame_id:int}/prepare", endpoint(prepare), methods=["POST"]),
    Route("/api/frames/{frame_id:int}/predict", endpoint(predict), methods=["POST"]),
    Route("/api/frames/{frame_id:int}/save", endpoint(save), methods=["POST"]),
]
