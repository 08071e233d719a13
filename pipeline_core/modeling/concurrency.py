"""How many models train at once and how many threads each fit gets, from the cores available.

The rule keeps (models at once) x (tuning workers per model) x (threads per fit) within the
cores: oversubscribing XGBoost (two processes of two threads on two cores) ran about 15x
slower than one thread each.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pipeline_core.config import PipelineConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingPlan:
    concurrent_models: int
    n_jobs: int  # threads per fit (XGBoost nthread, forest n_jobs, OpenMP)
    tuning_workers: int  # Optuna workers per model

    @property
    def cores_used(self) -> int:
        return self.concurrent_models * self.tuning_workers * self.n_jobs


def available_cores() -> int:
    """Cores this process may run on (the CPU affinity mask where the OS has one)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # macOS, Windows
        return max(os.cpu_count() or 1, 1)


def plan_training(cores: int, n_models: int, tuning_workers: int = 1, n_jobs: int | None = None,
                  max_models: int | None = None) -> TrainingPlan:
    """Models at once and threads per fit so that models x workers x threads <= cores.

    An explicit ``n_jobs`` is kept and fewer models run at once; otherwise models run in
    parallel first (most of a model's time is single-threaded Python and small fits) and the
    cores left over per model become its threads. Never less than one of anything.
    """
    cores, n_models, tuning_workers = max(cores, 1), max(n_models, 1), max(tuning_workers, 1)
    cap = min(n_models, max_models or n_models)
    if n_jobs is not None:
        concurrent = max(1, min(cap, cores // (tuning_workers * n_jobs)))
        return TrainingPlan(concurrent, n_jobs, tuning_workers)
    concurrent = max(1, min(cap, cores // tuning_workers))
    threads = max(1, cores // (concurrent * tuning_workers))
    plan = TrainingPlan(concurrent, threads, tuning_workers)
    if plan.cores_used > cores:
        log.warning("%d tuning workers per model on %d cores oversubscribe the machine", tuning_workers, cores)
    return plan


@contextmanager
def limit_threads(n_jobs: int) -> Iterator[None]:
    """Cap OpenMP threads of this thread's fits (HistGradientBoosting ignores n_jobs and takes every core).

    OpenMP's thread count is per calling thread, so concurrent models in one process do not
    disturb each other. XGBoost and the forests take ``n_jobs`` directly.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=max(n_jobs, 1), user_api="openmp"):
        yield


def training_plan(config: PipelineConfig, cores: int | None = None) -> TrainingPlan:
    """Models at once and threads per fit for this config on this machine (see `plan_training`)."""
    cfg = config.training
    n_models = sum(mc.enabled for mc in cfg.models.values())
    workers = cfg.tuning.n_workers if cfg.tuning.enabled else 1
    if cfg.concurrency.dask_address:  # an external cluster: its workers' cores are not ours to count
        return TrainingPlan(min(n_models, cfg.concurrency.max_models or n_models), cfg.n_jobs or 1, workers)
    return plan_training(cores or available_cores(), n_models, workers, cfg.n_jobs, cfg.concurrency.max_models)
