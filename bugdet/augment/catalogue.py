"""The objectives bugdet ships, and the functions that build them by bug type.

This is the one place the objective registry is read: it imports every objective module (each
registers itself with :func:`bugdet.augment.base.register_objective` on import), so callers get a
complete registry without :mod:`bugdet.augment.base` having to import the modules that import it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bugdet.augment import fppc, frame_bugs, texture_bugs  # noqa: F401  (they register themselves)
from bugdet.augment.base import REGISTRY, Objective
from bugdet.errors import ConfigError


def objective_params(bug_type: str) -> type:
    """The parameter dataclass of a registered objective (for docs and config validation)."""
    if bug_type not in REGISTRY:
        raise ConfigError(f"no objective for bug type {bug_type!r} (known: {', '.join(sorted(REGISTRY))})")
    return REGISTRY[bug_type].params


def build_objective(bug_type: str, **params: Any) -> Objective:
    """The objective for ``bug_type`` with ``params`` overriding its defaults; unknown or
    ill-typed parameters raise :class:`ConfigError` naming them."""
    cls = objective_params(bug_type)
    return REGISTRY[bug_type].factory(validated_params(cls, f"objective {bug_type}", params))


def validated_params(cls: type, what: str, params: dict[str, Any]) -> Any:
    """``cls(**params)`` (a parameter dataclass), with unknown or ill-typed parameters a
    :class:`ConfigError` that names ``what`` they were meant for."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ConfigError(f"{what}: unknown parameter(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{what}: {exc}") from None


def registered() -> tuple[str, ...]:
    """The bug types that have a registered objective."""
    return tuple(REGISTRY)
