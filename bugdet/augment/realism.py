"""Does a simulated bug look like the project's real ones? (issue 17's lever 2)

A built-in objective transfers to a new engine only where its simulation happens to look like
that engine's failure: a magenta checker looked like OpenArena's missing texture and carried over;
the simulated camera clipping looked like an ordinary close-up of a wall there and taught the
detector "close-up = bug". This module measures that resemblance before training, from the few
labeled frames a tester already gave:

- draw ``pairs`` (positive, negative) pairs from the objective; the two images of a pair differ
  only by the simulated bug;
- embed them and the labeled frames (real bug frames of that type, real good frames);
- for every sample, ``lean`` = similarity to the nearest real bug frame minus similarity to the
  nearest real good frame;
- ``shift`` = mean lean of positives minus mean lean of their negatives: how far the simulated bug
  alone moves a frame towards this project's real bugs;
- ``gap`` = the same lean measured on the labeled frames themselves (each against the others):
  mean lean of real bug frames minus that of real good frames, the whole way from "good" to
  "bug" in this embedding. ``progress`` = shift / gap.

Verdicts:

- *cannot tell*: the embedding does not separate the labeled bug frames from the good ones
  (``separation``: the share of real bug frames whose nearest other labeled frame is also a bug
  frame is no better than chance, or the gap is not positive). Nothing can be said about a
  simulation in an embedding that cannot see the real bug itself;
- *resembles*: the simulation moves frames at least ``min_progress`` (a tenth) of the way from
  good to bug, and does so reliably: a paired t-test on the per-pair differences (pairs are
  matched) above ``min_t`` (2.0, about p < 0.05 one-sided for 24 pairs);
- *does not resemble* otherwise: the objective may teach a bug the project has not shown, and
  the training summary says so.

The criteria are scale-free, which matters: an unpretrained tower maps every image to nearly the
same direction, so raw similarities barely move there, where a pretrained one spreads them out.

The embedder is the project's (CLIP, ``filter.embed``): with pretrained weights similarity is
semantic; with unpretrained towers (as in this repository's tests and benchmarks) it only sees
colour and layout statistics, which is what the numbers quoted in the docs were measured with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np

from bugdet.augment.base import Objective, SourceMask, TargetFrame, UnusableTarget
from bugdet.embed.base import l2_normalise

Embed = Callable[[Sequence[np.ndarray]], np.ndarray]


@dataclass
class Resemblance:
    """How one objective's positives relate to a project's real labeled frames."""

    bug_type: str
    pairs: int
    real_bugs: int
    real_goods: int
    shift: float  # mean lean of positives minus that of their negatives (see the module)
    t_statistic: float  # paired t of the per-pair lean differences
    gap: float  # lean of the real bug frames minus that of the real good frames (leave-one-out)
    progress: float  # shift / gap: the share of the way from a good frame to a real bug
    separation: float  # real bug frames whose nearest other labeled frame is a bug frame, minus chance
    positive_lean: float
    negative_lean: float
    positives_nearer_a_real_bug: float  # share of positives whose nearest labeled frame is a bug frame
    negatives_nearer_a_real_bug: float
    verdict: str  # "resembles", "does not resemble" or "cannot tell" (see the module)

    @property
    def resembles(self) -> bool:
        return self.verdict == "resembles"

    def describe(self) -> str:
        if self.verdict == "cannot tell":
            return (f"{self.bug_type}: cannot tell whether the simulated bug resembles the {self.real_bugs} labeled real bug "
                    f"frame(s): the embedding does not separate them from the labeled good frames")
        verdict = "resembles" if self.resembles else "does NOT resemble"
        return (f"{self.bug_type}: the simulated bug {verdict} the {self.real_bugs} labeled real bug frame(s) "
                f"(moves frames {self.progress:+.0%} of the way from good to a real bug, paired t {self.t_statistic:+.1f}; positives nearer a real bug {self.positives_nearer_a_real_bug:.0%}"
                f" vs their negatives {self.negatives_nearer_a_real_bug:.0%}; {self.pairs} pairs)")

    def as_dict(self) -> dict:
        return {**asdict(self), "resembles": self.resembles}


def draw_pairs(objective: Objective, targets: Sequence[TargetFrame], sources: Sequence[SourceMask], pairs: int,
               seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``pairs`` (positive, negative) images, seeded; targets the objective cannot use are skipped."""
    rng = np.random.default_rng([seed, 17])
    positives, negatives, failures = [], [], 0
    while len(positives) < pairs:
        target = targets[int(rng.integers(len(targets)))]
        try:
            pos, neg = objective.make_pair(target, sources, rng)
        except UnusableTarget:
            failures += 1
            if failures > 50 * pairs:
                raise ValueError(f"objective {objective.bug_type!r} cannot use any of the target frames") from None
            continue
        positives.append(pos.image)
        negatives.append(neg.image)
    return positives, negatives


def resemblance(bug_type: str, positives: Sequence[np.ndarray], negatives: Sequence[np.ndarray],
                real_bugs: Sequence[np.ndarray], real_goods: Sequence[np.ndarray], embed: Embed,
                min_t: float = 2.0, min_progress: float = 0.1) -> Resemblance:
    """Measure how the simulated bug moves frames towards ``real_bugs`` (see the module)."""
    if not real_bugs or not real_goods:
        raise ValueError("resemblance needs at least one labeled real bug frame and one good frame")
    if len(positives) != len(negatives) or not positives:
        raise ValueError("resemblance needs matched, non-empty positives and negatives")
    if len(real_bugs) + len(real_goods) < 3:
        raise ValueError("resemblance needs at least three labeled frames (two of one kind) to measure the gap")
    vectors = l2_normalise(embed([*positives, *negatives, *real_bugs, *real_goods]))
    n, b = len(positives), len(real_bugs)
    samples, bugs, goods = vectors[: 2 * n], vectors[2 * n: 2 * n + b], vectors[2 * n + b:]
    gap = _labeled_gap(bugs, goods)
    to_bug = (samples @ bugs.T).max(axis=1)
    to_good = (samples @ goods.T).max(axis=1)
    lean = to_bug - to_good
    pos_lean, neg_lean = float(lean[:n].mean()), float(lean[n:].mean())
    differences = lean[:n] - lean[n:]  # positive i and negative i are one pair
    shift = float(differences.mean())
    spread = float(differences.std(ddof=1)) if n > 1 else 0.0
    t = shift / (spread / np.sqrt(n)) if spread > 0 else (np.inf if shift > 0 else 0.0 if shift == 0 else -np.inf)
    pos_near, neg_near = float((lean[:n] > 0).mean()), float((lean[n:] > 0).mean())
    progress = shift / gap if gap > 0 else float("nan")
    separation = _separation(bugs, goods)
    if not (gap > 0 and separation > 0):
        verdict = "cannot tell"
    else:
        verdict = "resembles" if t > min_t and progress >= min_progress else "does not resemble"
    return Resemblance(bug_type, n, len(real_bugs), len(real_goods), shift, float(t), gap, progress, separation,
                       pos_lean, neg_lean, pos_near, neg_near, verdict)


def _separation(bugs: np.ndarray, goods: np.ndarray) -> float:
    """Share of real bug frames whose nearest other labeled frame is a bug frame, minus the share
    a random neighbour would give: above 0, the embedding tells this bug from good frames."""
    if len(bugs) < 2:
        return float("nan")
    labeled = np.concatenate([bugs, goods])
    sims = bugs @ labeled.T
    sims[np.arange(len(bugs)), np.arange(len(bugs))] = -np.inf
    hits = float((sims.argmax(axis=1) < len(bugs)).mean())
    return hits - (len(bugs) - 1) / (len(labeled) - 1)


def _labeled_gap(bugs: np.ndarray, goods: np.ndarray) -> float:
    """Mean lean of the real bug frames minus that of the good ones, each frame leaving itself
    out (a frame is its own nearest neighbour otherwise). A kind with a single frame has no
    "other" frame of its kind: its frames get no lean and the gap is taken from the other kind
    against the frames it has."""
    def leans(own: np.ndarray, other: np.ndarray, sign: float) -> np.ndarray:
        if len(own) < 2:
            return np.zeros(0)
        sims = own @ own.T
        np.fill_diagonal(sims, -np.inf)
        return sign * (sims.max(axis=1) - (own @ other.T).max(axis=1))
    bug_leans = leans(bugs, goods, 1.0)  # nearest other bug minus nearest good
    good_leans = leans(goods, bugs, -1.0)  # nearest bug minus nearest other good
    both = [x.mean() for x in (bug_leans, -good_leans) if x.size]
    # the gap is how far apart the two kinds sit: bug frames lean to bugs, good frames away
    return float(np.mean(both)) * 2 if both else float("nan")


def check_objectives(objectives: Sequence[Objective], targets: Sequence[TargetFrame], sources: Sequence[SourceMask],
                     real_bugs: dict[str, list[np.ndarray]], real_goods: Sequence[np.ndarray], embed: Embed,
                     pairs: int = 24, seed: int = 0, min_t: float = 2.0, min_progress: float = 0.1) -> list[Resemblance]:
    """:func:`resemblance` for every objective whose bug type has labeled real bug frames."""
    out = []
    for objective in objectives:
        bugs = real_bugs.get(objective.bug_type) or []
        if not bugs or not real_goods:
            continue
        positives, negatives = draw_pairs(objective, targets, sources, pairs, seed)
        out.append(resemblance(objective.bug_type, positives, negatives, bugs, real_goods, embed, min_t, min_progress))
    return out
