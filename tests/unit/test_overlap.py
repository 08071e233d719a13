"""The helpers that run a chunked loop's stages side by side: order, bounded read-ahead, errors, priority."""

import os
import sys
import threading

import pytest

from pipeline_io.overlap import SerialWorker, map_ahead
from pipeline_io.process_tuning import BACKGROUND_NICENESS


def test_map_ahead_keeps_order_and_reads_one_item_ahead():
    taken = []

    def items():
        for i in range(6):
            taken.append(i)
            yield i

    seen = []
    for result in map_ahead(lambda x: x * 10, items()):
        seen.append(result)
        # while the caller holds result k, item k+1 is at most being worked on: never more is read
        assert len(taken) <= len(seen) + 1
    assert seen == [0, 10, 20, 30, 40, 50]
    assert list(map_ahead(lambda x: x, [])) == []


def test_map_ahead_runs_fn_in_a_worker_and_raises_its_error_in_order():
    caller = threading.get_ident()
    readers = []

    def items():
        for i in range(3):
            readers.append(threading.get_ident())
            yield i

    threads = set(map_ahead(lambda _: threading.get_ident(), items()))
    assert caller not in threads and len(threads) == 1
    assert set(readers) == threads  # the items are read ahead in the worker as well

    def fail_on_two(x):
        if x == 2:
            raise ValueError("bad item 2")
        return x

    got = []
    with pytest.raises(ValueError, match="bad item 2"):
        for result in map_ahead(fail_on_two, range(5)):
            got.append(result)
    assert got == [0, 1]


def test_serial_worker_runs_jobs_in_order_one_at_a_time():
    done = []
    running = threading.Semaphore(1)

    def job(i):
        assert running.acquire(blocking=False), "two jobs ran at once"
        done.append(i)
        running.release()

    with SerialWorker() as worker:
        for i in range(20):
            worker.submit(job, i)
    assert done == list(range(20))


def test_serial_worker_raises_a_failed_job_at_the_next_submit_or_exit():
    def boom():
        raise OSError("disk full")

    later = []
    with pytest.raises(OSError, match="disk full"):
        with SerialWorker() as worker:
            worker.submit(boom)
            worker.submit(later.append, 1)
    assert later == []
    with pytest.raises(OSError, match="disk full"):
        with SerialWorker() as w:
            w.submit(boom)
    # after an error in the caller, the caller's error is the one that propagates
    with pytest.raises(KeyError):
        with SerialWorker() as w:
            w.submit(boom)
            raise KeyError("caller")


@pytest.mark.skipif(sys.platform != "linux", reason="thread priorities are per thread on Linux only")
def test_a_background_worker_runs_below_the_caller_and_leaves_it_alone():
    def niceness():
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    caller = niceness()
    seen = []
    with SerialWorker(background=True) as worker:
        worker.submit(lambda: seen.append(niceness()))
    with SerialWorker() as worker:
        worker.submit(lambda: seen.append(niceness()))
    assert seen == [min(caller + BACKGROUND_NICENESS, 19), caller]
    assert niceness() == caller
