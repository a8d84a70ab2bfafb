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
  alone moves a frame towards this project's real bugs. Above ``min_shift`` the simulation
  resembles them; at or below it the objective teaches a bug the project has not shown, and the
  training summary says so.

The embedder is the project's (CLIP, ``filter.embed``): with pretrained weights similarity is
semantic; with unpretrained towers (as in this repository's tests and benchmarks) it only sees
colour and layout statistics, which is what the numbers quoted in the docs were measured with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np

from bugdet.augment.base import Objective, SourceMask, TargetFrame, UnusableTarget

Embed = Callable[[Sequence[np.ndarray]], np.ndarray]


@dataclass
class Resemblance:
    """How one objective's positives relate to a project's real labeled frames."""

    bug_type: str
    pairs: int
    real_bugs: int
    real_goods: int
    shift: float  # mean lean of positives minus that of their negatives (see the module)
    positive_lean: float
    negative_lean: float
    positives_nearer_a_real_bug: float  # share of positives whose nearest labeled frame is a bug frame
    negatives_nearer_a_real_bug: float
    resembles: bool

    def describe(self) -> str:
        verdict = "resembles" if self.resembles else "does NOT resemble"
        return (f"{self.bug_type}: the simulated bug {verdict} the {self.real_bugs} labeled real bug frame(s) "
                f"(shift towards them {self.shift:+.3f}; positives nearer a real bug {self.positives_nearer_a_real_bug:.0%}"
                f" vs their negatives {self.negatives_nearer_a_real_bug:.0%}; {self.pairs} pairs)")

    def as_dict(self) -> dict:
        return asdict(self)


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


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
                min_shift: float = 0.0) -> Resemblance:
    """Measure how the simulated bug moves frames towards ``real_bugs`` (see the module)."""
    if not real_bugs or not real_goods:
        raise ValueError("resemblance needs at least one labeled real bug frame and one good frame")
    if len(positives) != len(negatives) or not positives:
        raise ValueError("resemblance needs matched, non-empty positives and negatives")
    vectors = _unit(embed([*positives, *negatives, *real_bugs, *real_goods]))
    n, b = len(positives), len(real_bugs)
    samples, bugs, goods = vectors[: 2 * n], vectors[2 * n: 2 * n + b], vectors[2 * n + b:]
    to_bug = (samples @ bugs.T).max(axis=1)
    to_good = (samples @ goods.T).max(axis=1)
    lean = to_bug - to_good
    pos_lean, neg_lean = float(lean[:n].mean()), float(lean[n:].mean())
    shift = pos_lean - neg_lean
    pos_near, neg_near = float((lean[:n] > 0).mean()), float((lean[n:] > 0).mean())
    return Resemblance(bug_type, n, len(real_bugs), len(real_goods), round(shift, 5), round(pos_lean, 5),
                       round(neg_lean, 5), pos_near, neg_near, resembles=shift > min_shift and pos_near > neg_near)


def check_objectives(objectives: Sequence[Objective], targets: Sequence[TargetFrame], sources: Sequence[SourceMask],
                     real_bugs: dict[str, list[np.ndarray]], real_goods: Sequence[np.ndarray], embed: Embed,
                     pairs: int = 24, seed: int = 0, min_shift: float = 0.0) -> list[Resemblance]:
    """:func:`resemblance` for every objective whose bug type has labeled real bug frames."""
    out = []
    for objective in objectives:
        bugs = real_bugs.get(objective.bug_type) or []
        if not bugs or not real_goods:
            continue
        positives, negatives = draw_pairs(objective, targets, sources, pairs, seed)
        out.append(resemblance(objective.bug_type, positives, negatives, bugs, real_goods, embed, min_shift))
    return out
