"""Cluster gallery and single masks: sizes, exemplars, paging through members, keep/reject verdicts."""

from __future__ import annotations

import time
import uuid

from starlette.routing import Route

from bugdet.cluster.runs import ClusterRun, ensure_cluster_schema, get_run, run_members
from bugdet.embed.store import get_model
from bugdet.errors import InputError
from bugdet.refine.decisions import list_decisions, mask_status
from bugdet.refine.rules import decide_cluster, decide_masks
from bugdet.review.api.common import Args, endpoint, png_response
from bugdet.review.history import BATCH_PREFIX
from bugdet.review.images import mask_on_frame, mask_thumbnail, png_bytes
from bugdet.review.state import NotFound, ReviewState
from bugdet.segment.masks import MaskRecord, ensure_masks_schema

EXEMPLARS = 8
ACTIONS = ("keep", "reject")
#: What an opened cluster lists: every mask, or only those without a decision yet.
SHOW = ("all", "undecided")


def _run(conn, args: Args) -> ClusterRun:
    run_id = args.optional_int("run")
    try:
        return get_run(conn, run_id)
    except InputError as exc:
        raise NotFound(str(exc)) from None


def load_mask(state: ReviewState, mask_id: int) -> MaskRecord:
    with state.db() as conn:
        ensure_masks_schema(conn)
        row = conn.execute("SELECT * FROM masks WHERE id = ?", (mask_id,)).fetchone()
    if row is None:
        raise NotFound(f"no mask #{mask_id}")
    return MaskRecord.from_row(row)


def info(state: ReviewState, args: Args) -> dict:
    """Project overview for the page header: counts and which embedding model (pretrained or not)."""
    from bugdet.review.flags import count_flags, ensure_flags_schema

    spec = state.model_spec()
    with state.db() as conn:
        ensure_cluster_schema(conn)
        ensure_masks_schema(conn)
        ensure_flags_schema(conn)
        stored = get_model(conn, spec.key)
        count = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        counts = {
            "frames": count("SELECT COUNT(*) FROM frames"),
            "masks": count("SELECT COUNT(*) FROM masks"),
            "embedded_masks": conn.execute("SELECT COUNT(*) FROM embeddings WHERE model_key = ? AND kind = 'mask'",
                                           (spec.key,)).fetchone()[0],
            "cluster_runs": count("SELECT COUNT(*) FROM cluster_runs"),
            "flags_pending": count_flags(conn)["pending"],
        }
        runs = [{"id": r["id"], "k": r["k"], "n_points": r["n_points"], "created_at": r["created_at"]}
                for r in conn.execute("SELECT id, k, n_points, created_at FROM cluster_runs ORDER BY id DESC")]
    return {
        "project": state.project.config.name, "root": str(state.project.root),
        "model": {"key": spec.key, "label": stored.label if stored else spec.label,
                  "pretrained": stored.pretrained if stored else spec.pretrained},
        "segment_backend": state.segment_backend(), "counts": counts, "runs": runs,
        "token_required": state.token is not None,
    }


def _cluster_verdicts(conn, run_id: int) -> dict[int, dict]:
    """Latest standing whole-cluster verdict per cluster of ``run_id``."""
    out: dict[int, dict] = {}
    for d in list_decisions(conn, scope="cluster", include_revoked=False):
        if d.cluster_run == run_id:
            out[d.cluster] = {"decision_id": d.id, "action": d.action, "who": d.who, "at": d.created_at}
    return out


def clusters(state: ReviewState, args: Args) -> dict:
    """Every cluster of a run (default: latest) with its size, bank share, verdict and exemplars."""
    with state.db() as conn:
        run = _run(conn, args)
        members = run_members(conn, run.id)
        status = mask_status(conn, [m.mask_id for m in members])
        verdicts = _cluster_verdicts(conn, run.id)
    out = []
    for c in range(run.k):
        ms = sorted((m for m in members if m.cluster == c), key=lambda m: (m.state != "kept", -m.similarity))
        statuses = [status.get(m.mask_id) for m in ms]
        out.append({
            "cluster": c, "size": len(ms), "in_bank": sum(m.state == "kept" for m in ms),
            "kept": statuses.count("keep"), "rejected": statuses.count("reject"),
            "decided": len(ms) - statuses.count(None),
            "verdict": verdicts.get(c), "exemplars": [m.mask_id for m in ms[:EXEMPLARS]],
        })
    decided = sum(c["decided"] for c in out)
    return {"run": {"id": run.id, "k": run.k, "n_points": run.n_points, "model_key": run.model_key},
            "progress": {"decided": decided, "total": len(members),
                         "kept": sum(c["kept"] for c in out), "rejected": sum(c["rejected"] for c in out)},
            "clusters": out}


def cluster_masks(state: ReviewState, args: Args) -> dict:
    """One page of a cluster's masks, nearest the centroid first; ``show=undecided`` pages through
    only the masks nobody has kept or rejected yet (``total`` then counts those)."""
    cluster = args.int("cluster", lo=0)
    offset, limit = args.int("offset", 0, lo=0), args.int("limit", 48, lo=1, hi=500)
    show = args.str("show", "all", choices=SHOW)
    with state.db() as conn:
        run = _run(conn, args)
        if cluster >= run.k:
            raise NotFound(f"run {run.id} has clusters 0..{run.k - 1}, not {cluster}")
        members = sorted(run_members(conn, run.id, cluster), key=lambda m: -m.similarity)
        status = mask_status(conn, [m.mask_id for m in members])
    undecided = [m for m in members if m.mask_id not in status]
    listed = undecided if show == "undecided" else members
    page = listed[offset:offset + limit]
    return {"run": run.id, "cluster": cluster, "show": show, "total": len(listed), "offset": offset,
            "size": len(members), "decided": len(members) - len(undecided),
            "masks": [{"mask_id": m.mask_id, "similarity": round(m.similarity, 4), "state": m.state,
                       "status": status.get(m.mask_id)} for m in page]}


def cluster_decision(state: ReviewState, args: Args) -> dict:
    """Keep or reject a whole cluster (a rule: replayed on new captures' masks)."""
    action = args.str("action", choices=ACTIONS)
    who = args.who()
    with state.db() as conn:
        run = _run(conn, args)
    outcome = decide_cluster(state.project, args.int("cluster", lo=0), action, run.id, who,
                             note=args.str("note", "") or None)
    return {"decision": outcome.rule.to_dict(), "matched": outcome.matched, "evaluated": outcome.evaluated,
            "history_key": f"decision:{outcome.rule.id}"}


def mask_decision(state: ReviewState, args: Args) -> dict:
    """Keep or reject selected masks in one action (grouped as one undoable history entry)."""
    action = args.str("action", choices=ACTIONS)
    who = args.who()
    ids = args.body.get("mask_ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise InputError("'mask_ids' must be a non-empty list of mask ids")
    if len(ids) > 1000:
        raise InputError("at most 1000 masks per action")
    label = " ".join(args.str("context", "").split())[:200]
    token = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"
    note = f"{BATCH_PREFIX}{token}: {label}" if len(ids) > 1 else (label or None)
    decisions = decide_masks(state.project, list(dict.fromkeys(ids)), action, who, note)
    key = f"batch:{token}" if len(ids) > 1 else f"decision:{decisions[0].id}"
    return {"decisions": [d.id for d in decisions], "count": len(decisions), "history_key": key}


def mask_info(state: ReviewState, args: Args) -> dict:
    record = load_mask(state, args.int("mask_id"))
    with state.db() as conn:
        status = mask_status(conn, [record.id]).get(record.id)
        ensure_cluster_schema(conn)
        cluster = conn.execute("SELECT run_id, cluster FROM cluster_members WHERE mask_id = ? ORDER BY run_id DESC "
                               "LIMIT 1", (record.id,)).fetchone()
    return {"mask_id": record.id, "frame_id": record.frame_id, "backend": record.backend, "bbox": list(record.bbox),
            "area": record.area, "score": record.score, "label": record.label, "status": status,
            "role": record.meta.get("role"),
            "cluster": None if cluster is None else {"run": cluster["run_id"], "cluster": cluster["cluster"]}}


def mask_thumb(state: ReviewState, args: Args):
    record = load_mask(state, args.int("mask_id"))
    _, rgb = state.frame(record.frame_id)
    return png_response(png_bytes(mask_thumbnail(rgb, record.decode())), cache_seconds=3600)


def mask_overlay(state: ReviewState, args: Args):
    record = load_mask(state, args.int("mask_id"))
    _, rgb = state.frame(record.frame_id)
    return png_response(png_bytes(mask_on_frame(rgb, record.decode())), cache_seconds=3600)


routes = [
    Route("/api/info", endpoint(info)),
    Route("/api/clusters", endpoint(clusters)),
    Route("/api/clusters/{cluster:int}/masks", endpoint(cluster_masks)),
    Route("/api/clusters/{cluster:int}/decision", endpoint(cluster_decision), methods=["POST"]),
    Route("/api/masks/decision", endpoint(mask_decision), methods=["POST"]),
    Route("/api/masks/{mask_id:int}", endpoint(mask_info)),
    Route("/api/masks/{mask_id:int}/thumb.png", endpoint(mask_thumb)),
    Route("/api/masks/{mask_id:int}/overlay.png", endpoint(mask_overlay)),
]
