"""The project's one exception family.

The CLI turns each into a one-line message and an exit code; anything else is a bug.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base class: a problem the user can fix, described in one line."""

    exit_code = 1


class ConfigError(PipelineError):
    """A bad config file, key, value or command-line override."""

    exit_code = 2


class DataError(PipelineError):
    """Input data that cannot be read or fails validation."""

    exit_code = 3


class StorageError(PipelineError):
    """A store or source location that cannot be reached or written."""

    exit_code = 4


class TransientSourceError(StorageError):
    """A failure worth retrying (HTTP 5xx, connection reset, throttling)."""
