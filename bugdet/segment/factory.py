"""Backend registry: a name in ``segment.backend`` -> a function that builds its :class:`Predictor`.

Backends are looked up by name so the config stays data and a new backend (an ONNX-exported
SAM, a game-specific segmenter) is one :func:`register_backend` call away, without touching
the automatic generator, the project runner, the CLI or the review app.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bugdet.segment.base import Predictor
from bugdet.segment.config import SegmentConfig
from bugdet.segment.errors import SegmentError


@dataclass(frozen=True)
class BuildContext:
    """What a backend may need beyond its config section: where relative paths start, the device."""

    root: Path | None = None
    device: str = "cpu"


BackendBuilder = Callable[[SegmentConfig, BuildContext], Predictor]

_BACKENDS: dict[str, BackendBuilder] = {}

#: ``masks.backend`` value written by automatic mode of each predictor backend.
AUTOMATIC_STORE_NAME = {"opencv": "grid", "sam": "sam"}


def register_backend(name: str, builder: BackendBuilder) -> None:
    _BACKENDS[name] = builder


def available_backends() -> list[str]:
    return sorted(_BACKENDS)


def build_predictor(cfg: SegmentConfig | None = None, backend: str | None = None, context: BuildContext | None = None) -> Predictor:
    """The predictor for ``backend`` (default: ``cfg.backend``), e.g.::

        predictor = build_predictor(project.config.segment)
        predictor.set_image(rgb)
        mask, score = predictor.predict(points=[(x, y)], labels=[1], box=(x0, y0, x1, y1))
    """
    cfg = cfg or SegmentConfig()
    name = backend or cfg.backend
    if name == "engine":
        raise SegmentError(
            "backend engine only reads object-ID maps and cannot answer prompts; use opencv or sam"
        )
    builder = _BACKENDS.get(name)
    if builder is None:
        raise SegmentError(f"unknown segmentation backend {name!r}; available: {', '.join(available_backends())}")
    return builder(cfg, context or BuildContext())


def _build_opencv(cfg: SegmentConfig, context: BuildContext) -> Predictor:
    from bugdet.segment.opencv_backend import OpenCVPredictor

    return OpenCVPredictor(cfg.opencv)


def _build_sam(cfg: SegmentConfig, context: BuildContext) -> Predictor:
    from bugdet.segment.sam_backend import SamBackend, load_sam

    model = load_sam(cfg.sam, root=context.root, device=context.device)
    return SamBackend(model, stability_offset=cfg.sam.stability_offset)


register_backend("opencv", _build_opencv)
register_backend("sam", _build_sam)
