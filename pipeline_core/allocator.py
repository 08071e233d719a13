"""Allocator settings for chunked batch work: keep freed memory for the next chunk.

A chunked job frees and re-allocates blocks of the same sizes every chunk. By default both
allocators in the process hand freed pages back to the OS almost at once (polars' jemalloc after
500 ms; glibc's malloc at once for blocks above its mmap threshold, which numpy and pandas
arrays of a 100,000-row chunk are), so every chunk paid again for page faults and zeroing: about
8% of the CPU of scoring 1M rows in a `perf` profile. Keeping the pages a few seconds instead
took about 4.3 CPU s to 3.9 per 1M scored rows; freed pages are reused, so the peak grows by
about what one chunk's buffers take (40-70 MiB on 1M rows), not with the input.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

# polars appends this to its own jemalloc settings (dirty_decay_ms:500,muzzy_decay_ms:1000) when
# it is imported; 5 s spans several chunks of any stage while bounding what an idle process holds.
POLARS_JEMALLOC_CONF = "dirty_decay_ms:5000"
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h
_GLIBC_DEFAULT = 128 * 1024  # both thresholds' default
_KEEP_BYTES = 256 * 2**20  # blocks below this come from the heap; up to 4x this stays mapped when freed


def configure_polars_allocator() -> None:
    """Ask polars' jemalloc to keep freed pages for 5 s, unless the user set it or polars is loaded.

    jemalloc reads its settings once, when polars is first imported, so this has to run before.
    """
    if "polars" not in sys.modules:
        os.environ.setdefault("_RJEM_MALLOC_CONF", POLARS_JEMALLOC_CONF)


@cache
def _glibc() -> Any | None:
    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c"))
    except OSError:  # pragma: no cover
        return None


@contextmanager
def reuse_freed_memory() -> Iterator[None]:
    """Within the block, glibc's malloc keeps freed blocks of up to 256 MiB for reuse; after it,
    the defaults come back and what is free is returned to the OS. No-op off glibc."""
    libc = _glibc()
    if libc is None:
        yield
        return
    libc.mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES)
    libc.mallopt(_M_TRIM_THRESHOLD, 4 * _KEEP_BYTES)
    try:
        yield
    finally:
        libc.mallopt(_M_TRIM_THRESHOLD, _GLIBC_DEFAULT)
        libc.mallopt(_M_MMAP_THRESHOLD, _GLIBC_DEFAULT)
        libc.malloc_trim(0)
