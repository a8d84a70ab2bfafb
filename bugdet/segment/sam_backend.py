"""Segment Anything behind the :class:`Predictor` interface (optional: needs a local checkpoint).

Loading goes through the ``segment-anything`` package's own registry
(``sam_model_registry[model_type](checkpoint=path)``); weights are never downloaded, so a
missing or mismatched checkpoint is a :class:`CheckpointError` that says which file and which
``model_type`` were tried. :class:`SamBackend` wraps any ``Sam`` module, which is also how the
tests exercise this code with a tiny randomly initialised SAM.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bugdet.errors import ConfigError
from bugdet.segment.base import Candidate, Predictor
from bugdet.segment.config import SamConfig
from bugdet.segment.errors import CheckpointError
from bugdet.segment.prompts import Prompt


def _import_segment_anything() -> Any:
    try:
        import segment_anything
    except ImportError:
        raise ConfigError(
            "segment.backend is sam but the segment-anything package is not installed "
            "(pip install 'bugdet[sam]')"
        ) from None
    return segment_anything


def resolve_checkpoint(cfg: SamConfig, root: Path | None = None) -> Path:
    """The checkpoint file named by ``segment.sam.checkpoint`` (relative paths are project-relative)."""
    if not cfg.checkpoint:
        raise CheckpointError(
            "segment.sam.checkpoint is not set: SAM weights cannot be downloaded here; point it at a local "
            "sam_vit_*.pth file or use segment.backend=opencv"
        )
    path = Path(cfg.checkpoint).expanduser()
    if not path.is_absolute() and root is not None:
        path = Path(root) / path
    if not path.is_file():
        raise CheckpointError(f"segment.sam.checkpoint: {path}: no such file (SAM weights are never downloaded)")
    return path


def load_sam(cfg: SamConfig, root: Path | None = None, device: str = "cpu") -> Any:
    """Build the configured SAM architecture and load its checkpoint onto ``device``."""
    path = resolve_checkpoint(cfg, root)
    registry = _import_segment_anything().sam_model_registry
    if cfg.model_type not in registry:
        raise ConfigError(f"segment.sam.model_type: {cfg.model_type!r} is not one of {sorted(registry)}")
    try:
        model = registry[cfg.model_type](checkpoint=str(path))
    except Exception as exc:  # torch.load's unpickler raises anything (IndexError, EOFError...) on a foreign file
        first_line = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        first_line = f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__
        raise CheckpointError(
            f"segment.sam.checkpoint: {path} is not a loadable {cfg.model_type} SAM checkpoint ({first_line})"
        ) from None
    return model.to(device).eval()


class SamBackend(Predictor):
    """SAM's predictor: one image embedding per frame, then cheap prompt decoding."""

    name = "sam"

    def __init__(self, model: Any, stability_offset: float = 1.0):
        super().__init__()
        predictor_cls = _import_segment_anything().SamPredictor
        self.model = model.eval()
        self.sam = predictor_cls(self.model)
        self.stability_offset = stability_offset

    def _prepare(self, rgb: np.ndarray) -> None:
        self.sam.set_image(rgb, image_format="RGB")

    def _predict(self, prompt: Prompt) -> tuple[np.ndarray, float]:
        has_points = len(prompt.points) > 0
        # One point alone is ambiguous (part / object / group): ask for three masks, keep the best.
        multimask = prompt.box is None and len(prompt.points) == 1
        masks, scores, _ = self.sam.predict(
            point_coords=prompt.points.astype(np.float32) if has_points else None,
            point_labels=prompt.labels.astype(np.int64) if has_points else None,
            box=None if prompt.box is None else np.asarray(prompt.box, dtype=np.float32),
            multimask_output=multimask,
        )
        best = int(np.argmax(scores))
        return masks[best].astype(bool), float(np.clip(scores[best], 0.0, 1.0))

    def _point_candidates(
        self, points: np.ndarray, area_range: tuple[float, float] | None, min_score: float
    ) -> list[list[Candidate]]:
        import torch

        from segment_anything.utils.amg import calculate_stability_score

        if len(points) == 0:
            return []
        coords = self.sam.transform.apply_coords(points.astype(np.float32), self.image_shape)
        coords_t = torch.as_tensor(coords, dtype=torch.float32, device=self.sam.device)[:, None, :]
        labels_t = torch.ones((len(points), 1), dtype=torch.int64, device=self.sam.device)
        with torch.no_grad():
            logits, iou_pred, _ = self.sam.predict_torch(coords_t, labels_t, multimask_output=True, return_logits=True)
            stable = calculate_stability_score(logits, self.model.mask_threshold, self.stability_offset)
        masks = (logits > self.model.mask_threshold).cpu().numpy()
        # SAM filters on predicted IoU and on stability separately; their geometric mean is one score.
        scores = torch.sqrt(iou_pred.clamp(0, 1) * stable.nan_to_num(0.0)).cpu().numpy()
        out = []
        for i, (x, y) in enumerate(points):
            out.append(
                [
                    Candidate(mask=masks[i, k], score=float(scores[i, k]), meta={"point": [float(x), float(y)], "output": k})
                    for k in range(masks.shape[1])
                ]
            )
        return out
