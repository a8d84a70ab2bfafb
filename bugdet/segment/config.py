"""The ``segment:`` section of the project file.

Backend choice and every threshold of the automatic mask generator live here as data, so a
nightly job can be retuned with ``--set segment.points_per_side=24`` instead of code changes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from bugdet.config_base import Section


class SamConfig(Section):
    checkpoint: str | None = Field(
        None,
        description="Path of a Segment Anything checkpoint (.pth), absolute or relative to the project; "
        "required by backend sam (weights are never downloaded).",
    )
    model_type: Literal["vit_h", "vit_l", "vit_b", "default"] = Field(
        "vit_b", description="SAM architecture matching the checkpoint: vit_h, vit_l or vit_b."
    )
    points_per_batch: int = Field(
        64, ge=1, description="Grid point prompts decoded per forward pass in automatic mode (memory vs speed)."
    )
    stability_offset: float = Field(
        1.0, gt=0, description="Logit offset of SAM's stability score (mask IoU at threshold +/- offset)."
    )


class OpenCVConfig(Section):
    tolerances: list[float] = Field(
        [3.0, 6.0, 12.0, 24.0],
        min_length=1,
        description="Neighbour colour differences (Lab units) a region may grow across, finest first: "
        "each point prompt yields one candidate per level, like SAM's part/subpart/whole outputs.",
    )
    smoothing: int = Field(
        7, ge=0, description="Edge-preserving (bilateral) filter diameter applied once per frame; 0 disables it."
    )
    grabcut_iterations: int = Field(4, ge=1, description="GrabCut iterations for box prompts.")
    hierarchy: bool = Field(
        True,
        description="Automatic mode also proposes regions grouped bottom-up from colour regions "
        "(selective-search style), which finds multi-colour and textured objects (tiled floors, "
        "brick walls, the weapon) that one colour region misses; costs ~50 ms per 320x240 frame.",
    )


class EngineConfig(Section):
    enabled: bool = Field(
        True,
        description="Store connected components of engine object-ID maps (frames with aux.ids) as backend "
        "'engine' masks, labelled with the object's category.",
    )
    point_priors: bool = Field(
        True,
        description="Add one point prompt inside each engine object to the automatic grid, so objects "
        "smaller than the grid spacing still get prompted.",
    )


class SegmentConfig(Section):
    backend: Literal["opencv", "sam", "engine"] = Field(
        "opencv",
        description="Mask source for `bugdet segment` and `bugdet prompt`: opencv (no weights needed), "
        "sam (needs segment.sam.checkpoint) or engine (object-ID maps only).",
    )
    points_per_side: int = Field(
        16, ge=1, le=128, description="Grid point prompts along the longer image side in automatic mode."
    )
    min_area_fraction: float = Field(
        0.002, ge=0, le=1, description="Drop automatic masks smaller than this fraction of the frame."
    )
    max_area_fraction: float = Field(
        0.6, gt=0, le=1, description="Drop automatic masks larger than this fraction of the frame (sky, floor)."
    )
    score_threshold: float = Field(
        0.5, ge=0, le=1, description="Drop automatic masks whose quality score (0..1) is below this."
    )
    nms_iou_threshold: float = Field(
        0.7, gt=0, le=1, description="Of two automatic masks overlapping with at least this IoU keep the better one."
    )
    max_masks_per_frame: int = Field(
        16, ge=1,
        description="Keep at most this many masks per frame, best first (quality x size: the largest stable regions). "
        "Every mask is embedded later; 16 keeps embedding user footage affordable on a CPU.",
    )
    commit_every: int = Field(
        8, ge=1, description="Frames per database transaction; an interrupted run redoes at most this many."
    )
    sam: SamConfig = Field(default_factory=SamConfig)
    opencv: OpenCVConfig = Field(default_factory=OpenCVConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)

    @model_validator(mode="after")
    def _area_bounds_ordered(self) -> "SegmentConfig":
        if self.min_area_fraction >= self.max_area_fraction:
            raise ValueError("min_area_fraction must be below max_area_fraction")
        return self
