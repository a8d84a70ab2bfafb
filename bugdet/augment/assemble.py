"""Which objective each bug type gets: its built-in simulation, its exemplars, or both.

``augment.exemplars`` decides (``off``, ``mix``, ``only``); a bug type can have a simulation
(a registered objective), exemplars (labeled bug frames of the train split), both or neither:

=========  ===========================  ==================  =================
mode       simulation and exemplars     simulation only     exemplars only
=========  ===========================  ==================  =================
off        simulation                   simulation          none
mix        both, exemplar_prob of pairs simulation          exemplars
only       exemplars                    simulation          exemplars
=========  ===========================  ==================  =================

A type with neither has no objective (it still learns from its labels in the modes that use
them). Training (``bugdet.detect.pipeline``) and ``bugdet augment`` both ask here, so the pairs a
user looks at on the sample sheet are the pairs training draws.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from bugdet.augment.base import Objective
from bugdet.augment.catalogue import build_objective, registered, validated_params
from bugdet.augment.exemplar import BugExemplar, ExemplarObjective, ExemplarParams, MixedObjective
from bugdet.project import Project

EXEMPLAR_MODES: tuple[str, ...] = ("off", "mix", "only")


def exemplar_params(overrides: Mapping[str, Any]) -> ExemplarParams:
    """``augment.exemplar_params`` validated (a :class:`ConfigError` names a bad key)."""
    return validated_params(ExemplarParams, "augment.exemplar_params", dict(overrides))


def objectives_for(
    bug_types: Sequence[str],
    *,
    mode: str = "off",
    exemplars: Mapping[str, Sequence[BugExemplar]] | None = None,
    exemplar_prob: float = 0.5,
    params_by_type: Mapping[str, Mapping[str, Any]] | None = None,
    exemplar_settings: ExemplarParams | None = None,
) -> list[Objective]:
    """One objective per bug type that gets one (see the module's table), in ``bug_types`` order."""
    if mode not in EXEMPLAR_MODES:
        raise ValueError(f"unknown exemplar mode {mode!r} (expected one of {', '.join(EXEMPLAR_MODES)})")
    exemplars = exemplars or {}
    params_by_type = params_by_type or {}
    settings = exemplar_settings or ExemplarParams()
    simulated = set(registered())
    out: list[Objective] = []
    for bug_type in bug_types:
        simulation = build_objective(bug_type, **params_by_type.get(bug_type, {})) if bug_type in simulated else None
        found = exemplars.get(bug_type) if mode != "off" else None
        from_exemplars = ExemplarObjective(bug_type, found, settings) if found else None
        if simulation is not None and from_exemplars is not None and mode == "mix":
            out.append(MixedObjective(simulation, from_exemplars, exemplar_prob))
        elif from_exemplars is not None:
            out.append(from_exemplars)
        elif simulation is not None:
            out.append(simulation)
    return out


def project_objectives(
    project: Project,
    bug_types: Sequence[str],
    *,
    exclude_ids: Iterable[int] = (),
    params_by_type: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Objective]:
    """The objectives of ``bug_types`` under the project's ``augment`` section, exemplars read from
    its train split (less ``exclude_ids``: frames held out for validation) when they are on."""
    from bugdet.augment.exemplar_loader import load_exemplars

    cfg = project.config.augment
    settings = exemplar_params(cfg.exemplar_params)
    found = load_exemplars(project, bug_types, exclude_ids=exclude_ids, params=settings) if cfg.exemplars != "off" else {}
    return objectives_for(bug_types, mode=cfg.exemplars, exemplars=found, exemplar_prob=cfg.exemplar_prob,
                          params_by_type=cfg.objectives if params_by_type is None else params_by_type,
                          exemplar_settings=settings)


def exemplar_counts(objectives: Sequence[Objective]) -> dict[str, int]:
    """How many exemplars each bug type's objective draws from (types using none are absent):
    what a run summary reports, so a studio sees which of its labels became paste sources."""
    counts = {}
    for objective in objectives:
        pairs = objective.exemplars if isinstance(objective, MixedObjective) else objective
        if isinstance(pairs, ExemplarObjective):
            counts[objective.bug_type] = len(pairs.exemplars)
    return counts


def no_objective_hint(bug_types: Sequence[str], mode: str) -> str:
    """Why none of ``bug_types`` got an objective, and the fix (one line)."""
    simulated = ", ".join(registered())
    if mode == "off":
        return (f"none of {', '.join(bug_types)} has a built-in simulation ({simulated}); set augment.exemplars=mix "
                "to learn them from your labeled bug frames of the train split")
    return (f"none of {', '.join(bug_types)} has a built-in simulation ({simulated}) or a labeled bug frame in the "
            f"train split to use as an exemplar (augment.exemplars={mode}): label some (bugdet label import FILE)")
