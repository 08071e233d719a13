"""Run the stages of a chunked loop side by side, one chunk apart, in worker threads.

polars and pyarrow release the GIL while they work, so on a second core a worker can clean the
next chunk, or write the previous one, while the caller runs the model on the current one. Each
helper keeps at most one job in flight, so memory stays bounded by a few chunks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, TypeVar

from pipeline_io.process_tuning import lower_thread_priority

T = TypeVar("T")
R = TypeVar("R")


def map_ahead(fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
    """``fn`` over ``items`` in order, the next result made in a worker while the caller uses this one.

    The worker also takes the item from ``items`` (reading the next chunk is part of the work done
    ahead). Unlike ``Executor.map``, which takes every item at once (the whole input, here), it
    holds one item ahead. A failure of ``fn`` or of ``items`` is raised to the caller in order.
    """
    source = iter(items)
    end = object()

    def next_result() -> Any:
        item = next(source, end)
        return end if item is end else fn(item)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="map-ahead") as pool:
        pending = pool.submit(next_result)
        while (result := pending.result()) is not end:
            pending = pool.submit(next_result)
            yield result


class SerialWorker:
    """Runs jobs one after another in one worker thread; `submit` first waits for the previous job.

    So the caller goes on while a job runs, never more than one job is pending, and a failed job
    raises in the caller at the next `submit` or `wait`. A ``background`` worker runs at a lower
    priority (`lower_thread_priority`): for work off the critical path, which only has to be done
    before the next job is submitted.
    """

    def __init__(self, background: bool = False) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="serial-worker",
                                        initializer=lower_thread_priority if background else None)
        self._pending: Future[Any] | None = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self.wait()
        self._pending = self._pool.submit(fn, *args)

    def wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __enter__(self) -> SerialWorker:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if kind is None:
                self.wait()  # a job's failure surfaces here; after another error it would only mask it
        finally:
            self._pool.shutdown(wait=True)
