"""Base class of every config section (kept apart from :mod:`bugdet.config` so that stage
packages can declare their sections without importing the root config)."""

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
