"""The one map from the project's error classes to the CLI's exit codes (documented in the README)."""

from __future__ import annotations

from pipeline_core.errors import ConfigError, DataError, DriftDetected, ModelError, PipelineError, StorageError

INTERNAL_ERROR = 1
INTERRUPTED = 130  # 128 + SIGINT
TERMINATED = 143  # 128 + SIGTERM
EXIT_CODES: dict[type[PipelineError], int] = {
    ConfigError: 2,
    DataError: 3,
    StorageError: 4,
    DriftDetected: 5,
    ModelError: 6,
}


def exit_code(exc: BaseException) -> int:
    """The exit code of an error: its class's (or nearest base class's) entry, else an internal error."""
    for cls in type(exc).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return INTERNAL_ERROR
