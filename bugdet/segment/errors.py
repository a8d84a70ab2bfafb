"""Errors a user can cause while segmenting; all are :class:`~bugdet.errors.BugdetError`s so the
CLI prints one line, and the review app can show the message next to the prompt that caused it."""

from bugdet.errors import BugdetError, ConfigError, InputError


class SegmentError(BugdetError):
    """Segmentation could not produce what was asked for."""


class EmptyFrameError(SegmentError, InputError):
    """The frame is empty or uniform (e.g. a black frame): there is nothing to segment."""


class NoMaskError(SegmentError):
    """The prompts or the automatic grid produced no mask that passes the filters."""


class PromptError(SegmentError, InputError):
    """A prompt is malformed: a point outside the image, an inverted box, mismatched labels."""


class CheckpointError(SegmentError, ConfigError):
    """The configured SAM checkpoint is missing, unreadable or does not match its model type."""


class ImageNotSetError(SegmentError):
    """``predict`` was called before ``set_image``."""
