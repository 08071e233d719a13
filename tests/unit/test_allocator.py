"""Allocator settings: polars' jemalloc keeps freed pages a while; glibc keeps them inside the block only."""

import os
import platform
import subprocess
import sys

import numpy as np
import pytest

from pipeline_io.process_tuning import POLARS_JEMALLOC_CONF, reuse_freed_memory


def _polars_conf(code: str, **env: str) -> str:
    run_env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"} | env
    out = subprocess.run([sys.executable, "-c", f"{code}; import os; print(os.environ['_RJEM_MALLOC_CONF'])"],
                         capture_output=True, text=True, env=run_env, check=True)
    return out.stdout.strip()


CONFIGURE = "from pipeline_io.process_tuning import configure_polars_allocator; configure_polars_allocator()"


def test_importing_the_core_leaves_the_process_alone():
    # the core ships inside every logged model: importing it must not change the host's allocator
    assert POLARS_JEMALLOC_CONF not in _polars_conf("import pipeline_core, pipeline_core.scoring, polars")


def test_polars_gets_the_longer_decay_unless_the_user_chose_one():
    # polars appends the variable to its own defaults, so the last setting wins
    assert _polars_conf(f"{CONFIGURE}; import polars").endswith("," + POLARS_JEMALLOC_CONF)
    mine = _polars_conf(f"{CONFIGURE}; import polars", _RJEM_MALLOC_CONF="dirty_decay_ms:100")
    assert mine.endswith(",dirty_decay_ms:100") and POLARS_JEMALLOC_CONF not in mine
    # too late once polars is loaded: the setting is left alone rather than pretending
    assert POLARS_JEMALLOC_CONF not in _polars_conf(f"import polars; {CONFIGURE}")


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_freed_blocks_stay_mapped_inside_the_block_and_go_back_after():
    with reuse_freed_memory():
        before = _rss_mib()
        block = np.ones(96 * 2**20 // 8)  # 96 MiB, above glibc's default mmap threshold
        del block
        kept = _rss_mib() - before
    after = _rss_mib() - before
    assert kept > 80  # freed, but still mapped for the next chunk
    assert after < 16  # returned when the block ends
