"""The ``filter.refine`` section: default thresholds of text-prompt keep/reject rules."""

from pydantic import Field

from bugdet.config_base import Section


class RefineConfig(Section):
    reject_threshold: float = Field(
        0.25, ge=-1, le=1,
        description="Cosine similarity to any reject prompt at or above which a mask is rejected (CLIP image-text "
                    "cosines of a match are typically 0.25-0.35; tune per model).",
    )
    keep_threshold: float = Field(
        0.25, ge=-1, le=1, description="Cosine similarity to a keep prompt at or above which a mask counts as matching it."
    )
    replay_on_cluster: bool = Field(
        True, description="Before clustering, replay every standing rule on masks it has not been evaluated on yet."
    )
