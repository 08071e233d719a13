"""Task runners for the model tasks of one training run: a bounded thread pool, or Dask."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pipeline_core.concurrency import TrainingPlan
from pipeline_core.config import PipelineConfig
from pipeline_core.errors import ConfigError


def model_task_runner(config: PipelineConfig, plan: TrainingPlan) -> Any:
    """A bounded runner for the model tasks: threads here, or Dask (a LocalCluster sized to the plan, or a given scheduler)."""
    concurrency = config.training.concurrency
    if concurrency.task_runner == "thread":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=plan.concurrent_models)
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:
        raise ConfigError("training.concurrency.task_runner=dask needs prefect-dask: pip install prefect-dask") from None
    if concurrency.dask_address:
        return DaskTaskRunner(address=concurrency.dask_address)
    # One single-threaded worker process per concurrent model; each fit then takes plan.n_jobs threads.
    return DaskTaskRunner(cluster_kwargs={"n_workers": plan.concurrent_models, "threads_per_worker": 1,
                                          "processes": True, "dashboard_address": ":0"})


@contextmanager
def api_visible_to_workers(config: PipelineConfig) -> Iterator[None]:
    """Dask worker processes talk to this run's Prefect API: name the temporary server's URL when none is configured.

    Without it each worker would start a temporary server of its own (~10 s each) and record its
    task runs there, out of sight of this flow run.
    """
    from prefect.context import FlowRunContext
    from prefect.settings import PREFECT_API_URL, temporary_settings

    ctx = FlowRunContext.get()
    if config.training.concurrency.task_runner != "dask" or PREFECT_API_URL.value() or ctx is None:
        yield
        return
    with temporary_settings(updates={PREFECT_API_URL: str(ctx.client.api_url)}):
        yield
