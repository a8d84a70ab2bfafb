"""Text prompts: rank masks by CLIP similarity to "tree", "sky", "brick wall", then act on the results.

Ranking embeds the prompt with the project's configured CLIP text tower (the same template and
model the CLI's ``bugdet refine`` uses) against the stored mask embeddings. Acting on results is
either a verdict on the masks the tester selected (one undoable batch) or a prompt *rule*
("reject everything at least this similar"), which :mod:`bugdet.refine.rules` also replays on
future captures.
"""

from __future__ import annotations

import numpy as np
from starlette.routing import Route

from bugdet.errors import InputError
from bugdet.refine.decisions import mask_status
from bugdet.refine.rules import add_prompt_rule, parse_prompt_list, prompt_scores
from bugdet.review.api.common import Args, endpoint
from bugdet.review.state import ReviewState

ACTIONS = ("keep", "reject")


def _texts(state: ReviewState, prompts: list[str]) -> list[str]:
    template = state.project.config.filter.embed.prompt_template
    return [template.format(p) if "{}" in template else p for p in prompts]


def rank(state: ReviewState, args: Args) -> dict:
    """The ``limit`` masks most similar to the prompt(s), best first, with their current status."""
    prompts = parse_prompt_list(args.str("prompt"))
    limit = args.int("limit", 24, lo=1, hi=500)
    embedder = state.embedder()
    ids, vectors = state.mask_vectors(embedder.key)
    if not len(ids):
        raise InputError("no mask embeddings for this model yet: run `bugdet embed` on the project first")
    scores = prompt_scores(embedder.embed_texts(_texts(state, prompts)), vectors)
    order = np.argsort(-scores, kind="stable")
    with state.db() as conn:
        present = {r[0] for r in conn.execute(
            f"SELECT id FROM masks WHERE id IN ({','.join('?' * min(len(order), 4 * limit))})",
            [int(ids[i]) for i in order[:4 * limit]])}
        top = [i for i in order[:4 * limit] if int(ids[i]) in present][:limit]
        status = mask_status(conn, [int(ids[i]) for i in top])
        frames = dict(conn.execute(
            f"SELECT id, frame_id FROM masks WHERE id IN ({','.join('?' * len(top))})", [int(ids[i]) for i in top]
        ).fetchall()) if top else {}
    return {
        "prompts": prompts, "model": embedder.label, "pretrained": embedder.pretrained, "searched": int(len(ids)),
        "threshold_defaults": {"keep": state.project.config.filter.refine.keep_threshold,
                               "reject": state.project.config.filter.refine.reject_threshold},
        "results": [{"mask_id": int(ids[i]), "score": round(float(scores[i]), 4), "frame_id": frames.get(int(ids[i])),
                     "status": status.get(int(ids[i]))} for i in top],
    }


def rule(state: ReviewState, args: Args) -> dict:
    """Record "keep/reject: prompts" at a similarity threshold and apply it to every embedded mask."""
    action = args.str("action", choices=ACTIONS)
    who = args.who()
    threshold = args.float("threshold")
    if threshold is not None and not -1.0 <= threshold <= 1.0:
        raise InputError(f"'threshold' is a cosine similarity between -1 and 1, got {threshold}")
    outcome = add_prompt_rule(state.project, state.embedder(), action, args.str("prompt"), threshold, who)
    return {"decision": outcome.rule.to_dict(), "matched": outcome.matched, "evaluated": outcome.evaluated,
            "history_key": f"decision:{outcome.rule.id}"}


routes = [
    Route("/api/text/rank", endpoint(rank), methods=["POST"]),
    Route("/api/text/rule", endpoint(rule), methods=["POST"]),
]
