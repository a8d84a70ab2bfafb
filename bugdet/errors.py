"""User-facing errors.

Anything a user can cause (a missing file, a bad config, an unreadable video) raises
:class:`BugdetError`. The CLI prints its message as one line and exits non-zero, with no
traceback; anything else is a bug in bugdet and keeps its traceback.
"""


class BugdetError(Exception):
    """An error caused by input or environment that the user can fix."""

    exit_code: int = 2


class ConfigError(BugdetError):
    """The project file is missing, unreadable or invalid."""


class InputError(BugdetError):
    """An input file or directory is missing, unreadable or of the wrong kind."""
