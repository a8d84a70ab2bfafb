"""The segment stage: cut frames into candidate masks (automatic grid prompts, tester prompts, engine IDs).

Public API (imported lazily, because :mod:`bugdet.config` imports :mod:`bugdet.segment.config`
and this package must not pull the project machinery into that import)::

    from bugdet.segment import build_predictor, AutomaticMaskGenerator, segment_project
    predictor = build_predictor(project.config.segment)
    predictor.set_image(rgb)
    mask, score = predictor.predict(points=[(x, y)], labels=[1], box=(x0, y0, x1, y1))
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "build_predictor": "bugdet.segment.factory",
    "register_backend": "bugdet.segment.factory",
    "available_backends": "bugdet.segment.factory",
    "BuildContext": "bugdet.segment.factory",
    "Predictor": "bugdet.segment.base",
    "Candidate": "bugdet.segment.base",
    "AutomaticMaskGenerator": "bugdet.segment.automatic",
    "segment_project": "bugdet.segment.run",
    "SegmentReport": "bugdet.segment.run",
    "save_prompt_mask": "bugdet.segment.store",
    "role_masks": "bugdet.segment.store",
    "latest_role_mask": "bugdet.segment.store",
    "engine_candidates": "bugdet.segment.engine",
    "SegmentConfig": "bugdet.segment.config",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bugdet.segment' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
