"""How the layers run polars' streaming engine: in small morsels, so memory stays flat.

When the slowest step of a streamed query is its end (a Parquet writer encoding on one core),
polars keeps parsing ahead and holds the parsed morsels; smaller morsels hold less, in about the
same time (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import polars as pl

MORSEL_ROWS = 20_000

F = TypeVar("F", bound=Callable[..., Any])


def small_morsels(func: F) -> F:
    """Run ``func`` with polars' streaming morsels of ``MORSEL_ROWS`` rows (restored afterwards)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with pl.Config(streaming_chunk_size=MORSEL_ROWS):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
