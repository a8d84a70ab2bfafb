"""Making and replaying decisions: text-prompt rules, cluster verdicts and single-mask verdicts.

A rule is recorded once and then *evaluated* on masks, each evaluation leaving a derived mask
decision. Evaluating is the same code whether the rule is new (all embedded masks) or being
replayed on a new capture's masks (:func:`replay_decisions`), so a refinement made today applies
identically to tomorrow's captures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from bugdet.embed.base import Embedder
from bugdet.embed.store import embedded_ids, load_embeddings
from bugdet.errors import InputError
from bugdet.project import Project
from bugdet.segment.masks import ensure_masks_schema
from bugdet.refine.decisions import (
    Decision,
    NewDecision,
    ensure_decisions_schema,
    evaluated_masks,
    get_decisions,
    insert_decisions,
    list_decisions,
    record_decision,
    record_derived,
)
from bugdet.store.database import transaction


@dataclass
class RuleOutcome:
    rule: Decision
    evaluated: int = 0
    matched: int = 0
    missing_embeddings: int = 0

    def describe(self) -> str:
        miss = f", {self.missing_embeddings} without embeddings (run `bugdet embed`)" if self.missing_embeddings else ""
        if not self.evaluated and not self.missing_embeddings:
            miss = " (no new masks embedded with this rule's model)"
        return f"{self.rule.describe()}: matched {self.matched} of {self.evaluated} masks{miss}"


@dataclass
class ReplayReport:
    outcomes: list[RuleOutcome] = field(default_factory=list)

    @property
    def derived(self) -> int:
        return sum(o.evaluated for o in self.outcomes)


def parse_prompt_list(text: str | Sequence[str]) -> list[str]:
    """"tree, grass, sky" (or a list of such strings) -> ["tree", "grass", "sky"]."""
    items = [text] if isinstance(text, str) else list(text)
    prompts = [p.strip() for item in items for p in item.split(",") if p.strip()]
    if not prompts:
        raise InputError("no prompts given (expected a comma-separated list, e.g. 'tree, grass, sky')")
    return prompts


def prompt_scores(rule_vectors: np.ndarray, mask_vectors: np.ndarray) -> np.ndarray:
    """Best cosine similarity of each mask to any of the rule's prompts."""
    if len(mask_vectors) == 0:
        return np.zeros(0, np.float32)
    return (mask_vectors @ rule_vectors.T).max(axis=1)


def _evaluate(project: Project, rule: Decision, mask_ids: Iterable[int] | None) -> RuleOutcome:
    """Evaluate ``rule`` on ``mask_ids`` (None: all embedded masks) it has not seen yet."""
    outcome = RuleOutcome(rule)
    conn = project.connect()
    try:
        seen = evaluated_masks(conn, rule.id)
        key = rule.model_key
        if rule.scope == "cluster":
            from bugdet.cluster.runs import get_run, load_centroids, run_members

            run = get_run(conn, rule.cluster_run)
            key = run.model_key
        candidates = embedded_ids(conn, key, "mask") if mask_ids is None else {int(i) for i in mask_ids}
        todo = sorted(candidates - seen)
        ids, vectors = load_embeddings(project.root, conn, key, "mask", todo)
        outcome.missing_embeddings = len(todo) - len(ids)
        if rule.scope == "prompt":
            scores = prompt_scores(rule.vectors, vectors)
            hits = scores >= rule.threshold
        else:
            members = {m.mask_id: m.cluster for m in run_members(conn, run.id)}
            centroids = load_centroids(project.root, run)
            sims = vectors @ centroids.T if len(vectors) else np.zeros((0, len(centroids)), np.float32)
            nearest = sims.argmax(axis=1) if len(vectors) else np.zeros(0, np.int64)
            assigned = np.array([members.get(int(i), int(c)) for i, c in zip(ids, nearest)], np.int64)
            hits = assigned == rule.cluster
            scores = sims[np.arange(len(ids)), np.minimum(assigned, len(centroids) - 1)] if len(ids) else np.zeros(0)
        outcomes = [(int(i), rule.action if h else "pass", float(s)) for i, h, s in zip(ids, hits, scores)]
        record_derived(conn, rule, outcomes)
        outcome.evaluated, outcome.matched = len(outcomes), int(np.count_nonzero(hits))
    finally:
        conn.close()
    return outcome


def add_prompt_rule(project: Project, embedder: Embedder, action: str, prompts: str | Sequence[str],
                    threshold: float | None = None, who: str | None = None, template: str | None = None) -> RuleOutcome:
    """Record "keep/reject: prompts" and apply it to every embedded mask."""
    prompts = parse_prompt_list(prompts)
    cfg = project.config.filter
    if threshold is None:
        threshold = cfg.refine.keep_threshold if action == "keep" else cfg.refine.reject_threshold
    template = template if template is not None else cfg.embed.prompt_template
    texts = [template.format(p) if "{}" in template else p for p in prompts]
    vectors = embedder.embed_texts(texts)
    conn = project.connect()
    try:
        rule = record_decision(conn, scope="prompt", action=action, who=who, prompts=prompts, threshold=float(threshold),
                               model_key=embedder.key, vectors=vectors,
                               note=None if embedder.pretrained else f"unpretrained model {embedder.label}")
    finally:
        conn.close()
    return _evaluate(project, rule, None)


def decide_cluster(project: Project, cluster: int, action: str, run_id: int | None = None,
                   who: str | None = None, note: str | None = None) -> RuleOutcome:
    """Accept (keep) or reject a whole cluster of a run (default: the latest run)."""
    from bugdet.cluster.runs import get_run, run_members

    conn = project.connect()
    try:
        run = get_run(conn, run_id)
        if not 0 <= cluster < run.k:
            raise InputError(f"run {run.id} has clusters 0..{run.k - 1}, not {cluster}")
        rule = record_decision(conn, scope="cluster", action=action, who=who, cluster_run=run.id, cluster=cluster,
                               model_key=run.model_key, note=note)
        members = [m.mask_id for m in run_members(conn, run.id)]
    finally:
        conn.close()
    return _evaluate(project, rule, members)


def decide_masks(project: Project, mask_ids: Sequence[int], action: str, who: str | None = None,
                 note: str | None = None) -> list[Decision]:
    """A person's verdict on single masks: one transaction, so the whole selection is decided or none of it.

    The masks are checked inside that transaction too, so a mask deleted meanwhile (an undone
    prompt mask) cannot receive a verdict.
    """
    conn = project.connect()
    try:
        ensure_masks_schema(conn)
        ensure_decisions_schema(conn)
        with transaction(conn):
            known = {r[0] for r in conn.execute(
                f"SELECT id FROM masks WHERE id IN ({','.join('?' * len(mask_ids))})", list(mask_ids))} if mask_ids else set()
            unknown = [m for m in mask_ids if m not in known]
            if unknown:
                raise InputError(f"no such mask(s): {', '.join(map(str, unknown[:10]))}")
            ids = insert_decisions(conn, [NewDecision(scope="mask", action=action, who=who, mask_id=int(m), note=note)
                                          for m in mask_ids])
        return get_decisions(conn, ids)
    finally:
        conn.close()


def replay_decisions(project: Project, new_mask_ids: Iterable[int] | None = None) -> ReplayReport:
    """Apply every standing rule (prompt and cluster, not revoked) to ``new_mask_ids``.

    ``None`` replays on every embedded mask a rule has not been evaluated on yet, which is what the
    nightly job wants after embedding a new capture. Masks already evaluated by a rule are skipped,
    so replaying twice changes nothing.
    """
    ids = None if new_mask_ids is None else [int(i) for i in new_mask_ids]
    report = ReplayReport()
    for rule in list_decisions(project, rules_only=True, include_revoked=False):
        report.outcomes.append(_evaluate(project, rule, ids))
    return report
