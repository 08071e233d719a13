"""Exclusive locks between processes on one machine, for the steps that object storage or servers do not serialise."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline_io.store import Store


@contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (created if needed); other holders wait."""
    import fcntl

    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextmanager
def layer_writer(store: Store, layer: str, dataset: str) -> Iterator[None]:
    """One writer of a layer at a time on a local store: a second run waits, then finds the work done.

    On object storage there is no lock; Delta's optimistic commits make a conflicting second
    writer fail with one line instead (`pipeline_io.delta`).
    """
    if store.remote:
        yield
        return
    with exclusive(Path(store.root) / "_locks" / f"{layer}-{dataset}.lock"):
        yield
