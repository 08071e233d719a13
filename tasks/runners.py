"""Task runners for the model tasks of one training run: a bounded thread pool, or Dask."""

from __future__ import annotations

from typing import Any

from pipeline_core.config import PipelineConfig
from pipeline_core.errors import ConfigError, StorageError
from pipeline_core.modeling.concurrency import TrainingPlan


def model_task_runner(config: PipelineConfig, plan: TrainingPlan) -> Any:
    """A bounded runner for the model tasks: threads here, or Dask (a LocalCluster sized to the plan, or a given scheduler)."""
    concurrency = config.training.concurrency
    if concurrency.task_runner == "thread":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=plan.concurrent_models)
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:
        raise ConfigError("training.concurrency.task_runner=dask needs the `dask` extra: pip install -e '.[dask]' "
                          "(or pip install 'prefect-dask>=0.3.6,<0.4')") from None
    if concurrency.dask_address:
        refuse_silent_scheduler(concurrency.dask_address)
        return DaskTaskRunner(address=concurrency.dask_address)
    # One single-threaded worker process per concurrent model; each fit then takes plan.n_jobs threads.
    return DaskTaskRunner(cluster_kwargs={"n_workers": plan.concurrent_models, "threads_per_worker": 1,
                                          "processes": True, "dashboard_address": ":0"})


def refuse_silent_scheduler(address: str, timeout: float = 5.0) -> None:
    """A StorageError (one line, exit 4) when nothing listens at a ``tcp://`` scheduler address: Dask's own client
    would retry for 30 s and fail with a bare OSError once the layers are built and the models are waiting."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme != "tcp" or not parts.hostname or parts.port is None:
        return  # TLS, in-process or another transport: Dask's client checks it
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=timeout).close()
    except OSError as exc:
        raise StorageError(f"training.concurrency.dask_address {address}: no Dask scheduler answers there ({exc.strerror or exc}); "
                           "start one (`dask scheduler`), or unset it for a local cluster") from None


def wait_all(futures: list[Any]) -> None:
    """Wait for every future, waking twice a second: a signal is delivered to whichever thread the
    kernel picks, and the main thread runs Python's handler only once it wakes
    (`pipeline_cli.runtime.stoppable`)."""
    from prefect.futures import wait

    pending = list(futures)
    while pending:
        pending = list(wait(pending, timeout=0.5).not_done)
