"""The ``filter.weaklabel`` section: propagating a few labeled frames to unlabeled ones."""

from pydantic import Field

from bugdet.config_base import Section


class WeakLabelConfig(Section):
    knn: int = Field(5, ge=1, description="Labeled exemplars that vote on each unlabeled frame (nearest by cosine).")
    temperature: float = Field(
        0.05, gt=0, description="Softmax temperature on exemplar similarities: lower = nearer exemplars count more."
    )
    min_confidence: float = Field(
        0.6, ge=0, le=1, description="Winning label's vote share below which a frame is left unlabeled (abstains)."
    )
