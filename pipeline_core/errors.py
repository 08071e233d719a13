"""The project's one exception family: each is a problem the user can fix, described in one line.

`pipeline_cli.exit_codes` maps each class to the CLI's exit code; anything else is a bug.
"""

from __future__ import annotations

import errno


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


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of ``exc``'s message, cut to ``limit`` characters; its type's name when the message is empty
    (a driver's message can run to pages, and a one-line error quotes only its start)."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else type(exc).__name__


class Terminated(BaseException):
    """The process was asked to stop (SIGTERM): raised in the main thread like Ctrl-C's KeyboardInterrupt."""


# A full or read-only disk surfaces from many layers (OSError, SQLite, the Rust readers and writers of
# polars and delta-rs), each in its own words: (errnos, words in a message, what it is, what to do).
_ENVIRONMENT_FAULTS = (
    ({errno.ENOSPC, errno.EDQUOT}, ("no space left on device", "os error 28", "database or disk is full", "disk quota exceeded"),
     "no space left on the device", "free space where store.root and the temporary folder live, then run again"),
    ({errno.EROFS}, ("read-only file system", "os error 30", "attempt to write a readonly database"),
     "read-only file system", "point store.root (and the working directory) at a writable place"),
    ({errno.EACCES, errno.EPERM}, ("permission denied", "os error 13"),
     "permission denied", "make store.root and the working directory writable for this user"),
)


def environment_fault(exc: BaseException) -> StorageError | None:
    """A full disk, a read-only file system or a refused write anywhere in ``exc``'s chain, as one
    StorageError naming the file when one is known; None for anything else."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 20:
        seen.append(current)
        current = current.__cause__ or current.__context__
    for errnos, words, what, todo in _ENVIRONMENT_FAULTS:
        for e in seen:
            text = str(e).lower()
            if (isinstance(e, OSError) and e.errno in errnos) or any(w in text for w in words):
                where = next((str(x.filename) for x in seen if isinstance(x, OSError) and x.filename), None)
                return StorageError(f"{where + ': ' if where else ''}{what}; {todo} (nothing half-written was kept)")
    return None
