"""Process-level tuning for chunked batch work, the project's only such hacks, in one module.

- Allocators keep freed memory for the next chunk: a chunked job frees and re-allocates blocks of
  the same sizes every chunk, and by default both allocators in the process hand freed pages back
  to the OS almost at once, so every chunk pays again for page faults and zeroing. The peak grows
  by about one chunk's buffers, not with the input (benchmarks/INFERENCE_RESULTS.md).
- A background thread can run at a lower priority than the thread on the critical path.

Nothing here runs on import: the CLI applies `configure_polars_allocator` at start-up, scoring
enters `reuse_freed_memory` and lowers its writer thread's priority.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import sys
import threading
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


BACKGROUND_NICENESS = 10  # added to the thread's niceness: CFS then gives it about a tenth of a contended core


def lower_thread_priority() -> None:
    """Let the calling thread run on what the other threads of the process leave of the cores.

    Per thread only on Linux, where a thread id is a valid ``PRIO_PROCESS`` target; elsewhere
    that would renice the whole process, so nothing changes there.
    """
    if sys.platform != "linux":
        return
    tid = threading.get_native_id()
    try:
        os.setpriority(os.PRIO_PROCESS, tid, min(os.getpriority(os.PRIO_PROCESS, tid) + BACKGROUND_NICENESS, 19))
    except OSError:  # a sandbox may forbid it; the work is the same, only scheduled differently
        pass
