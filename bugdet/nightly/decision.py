"""Promote or not: a pure function of both models' metrics on the same frames and the policy.

Kept free of I/O so every rule is unit-tested with plain numbers: the challenger must beat the
champion's mean metric (over the bug types both were evaluated on) by ``margin``, and may not be
worse on any single type by more than that type's tolerance, because a model that is better on
average but has lost a bug type would silently stop finding that bug in production.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Mapping

from bugdet.nightly.config import Promotion

#: metrics per bug type: ``{bug_type: {"pr_auc": 0.61, "f1": 0.5, ...}}``
Metrics = Mapping[str, Mapping[str, float]]


@dataclass(frozen=True)
class TypeComparison:
    bug_type: str
    challenger: float
    champion: float
    tolerance: float

    @property
    def regressed(self) -> bool:
        return self.challenger < self.champion - self.tolerance


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str
    metric: str
    challenger_mean: float | None = None
    champion_mean: float | None = None
    per_type: list[TypeComparison] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["per_type"] = [{**asdict(c), "regressed": c.regressed} for c in self.per_type]
        return out


def _values(metrics: Metrics | None, metric: str) -> dict[str, float]:
    out = {}
    for bug_type, m in (metrics or {}).items():
        value = m.get(metric)
        if value is not None and math.isfinite(float(value)):
            out[bug_type] = float(value)
    return out


def decide(challenger: Metrics, champion: Metrics | None, policy: Promotion) -> PromotionDecision:
    """Whether ``challenger`` replaces ``champion`` (``None``: there is no champion yet)."""
    metric = policy.metric
    chal = _values(challenger, metric)
    if not chal:
        return PromotionDecision(False, f"the challenger has no {metric} on the evaluation set (no bug frames of its types?)", metric)
    if champion is None:
        mean = sum(chal.values()) / len(chal)
        if mean < policy.min_score:
            return PromotionDecision(False, f"first model: mean {metric} {mean:.3f} is below min_score {policy.min_score:.3f}",
                                     metric, mean)
        return PromotionDecision(True, f"first model: mean {metric} {mean:.3f} (no champion yet)", metric, mean)
    champ = _values(champion, metric)
    common = sorted(set(chal) & set(champ))
    if not common:
        return PromotionDecision(False, f"no bug type has a {metric} for both models; promote by hand if intended", metric)
    per_type = [TypeComparison(t, chal[t], champ[t], policy.per_type_tolerance.get(t, policy.tolerance)) for t in common]
    chal_mean = sum(chal[t] for t in common) / len(common)
    champ_mean = sum(champ[t] for t in common) / len(common)
    regressed = [c for c in per_type if c.regressed]
    if regressed:
        worst = ", ".join(f"{c.bug_type} {c.challenger:.3f} < {c.champion:.3f} - {c.tolerance:.3f}" for c in regressed)
        return PromotionDecision(False, f"worse on {worst}", metric, chal_mean, champ_mean, per_type)
    if chal_mean < champ_mean + policy.margin:
        return PromotionDecision(False, f"mean {metric} {chal_mean:.3f} does not beat the champion's {champ_mean:.3f} "
                                        f"by the margin {policy.margin:.3f}", metric, chal_mean, champ_mean, per_type)
    return PromotionDecision(True, f"mean {metric} {chal_mean:.3f} beats the champion's {champ_mean:.3f} by "
                                   f"{chal_mean - champ_mean:.3f} (margin {policy.margin:.3f}), no type regressed",
                             metric, chal_mean, champ_mean, per_type)
