"""The ``ingest:`` section of the project file."""

from pydantic import Field

from bugdet.config_base import Section


class NearDuplicateConfig(Section):
    enabled: bool = Field(False, description="Skip frames nearly identical to the last kept frame of the same capture.")
    max_hamming: int = Field(
        4, ge=0, le=64, description="Largest 64-bit difference-hash distance still counted as a near duplicate."
    )


class IngestConfig(Section):
    stride: int = Field(1, ge=1, description="Keep every Nth frame of a capture.")
    every_seconds: float | None = Field(
        None, gt=0, description="Keep at most one frame per this many seconds of capture time (overrides stride)."
    )
    max_frames: int | None = Field(None, ge=1, description="Stop after this many kept frames per capture.")
    folder_fps: float = Field(30.0, gt=0, description="Frame rate assumed for the timestamps of plain image folders.")
    near_duplicate: NearDuplicateConfig = Field(default_factory=NearDuplicateConfig)
    commit_every: int = Field(
        32, ge=1, description="Frames per database transaction; an interrupted ingest redoes at most this many."
    )
