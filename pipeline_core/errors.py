"""The project's one exception family: each is a problem the user can fix, described in one line.

`pipeline_cli.exit_codes` maps each class to the CLI's exit code; anything else is a bug.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base class: a problem the user can fix, described in one line."""


class ConfigError(PipelineError):
    """A bad config file, key, value or command-line argument."""


class DataError(PipelineError):
    """Input data that cannot be read or fails validation."""


class StorageError(PipelineError):
    """A store, source or service location that cannot be reached or written."""


class TransientSourceError(StorageError):
    """A failure worth retrying (HTTP 5xx, connection reset, throttling)."""


class ModelError(PipelineError):
    """A registered model that does not exist or cannot be loaded."""


class DriftDetected(PipelineError):
    """A monitored batch crossed a drift threshold (raised where the user asked to fail on drift)."""


class Terminated(BaseException):
    """The process was asked to stop (SIGTERM): raised in the main thread like Ctrl-C's KeyboardInterrupt."""
