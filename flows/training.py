"""The training flow: every enabled model (several at once where the cores allow), a leaderboard, and the gated registry."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect import flow
from prefect.futures import wait
from prefect.logging import get_run_logger

from pipeline_core.concurrency import TrainingPlan
from pipeline_core.config import PipelineConfig, load_config
from pipeline_core.errors import ConfigError
from pipeline_core.selection import rank_models
from pipeline_core.train_job import check_training_config, training_plan
from tasks import training


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
def _api_visible_to_workers(config: PipelineConfig) -> Iterator[None]:
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


@flow(name="training-pipeline")
def training_flow(config_path: str, overrides: list[str] | None = None) -> dict[str, Any]:
    """Train, evaluate and register; the best model becomes `challenger`, `champion` only through the gate."""
    import mlflow

    from pipeline_core import tracking

    config = load_config(config_path, overrides or [])
    check_training_config(config)
    plan = training_plan(config)
    runner = model_task_runner(config, plan)
    models = [name for name, mc in config.training.models.items() if mc.enabled]
    get_run_logger().info("training %d models, %d at a time on the %s runner, %d thread(s) per fit, %d tuning worker(s) each",
                          len(models), plan.concurrent_models, config.training.concurrency.task_runner, plan.n_jobs,
                          plan.tuning_workers)
    client, experiment_id = tracking.connect(config)
    parent = client.create_run(experiment_id, tags={"mlflow.runName": f"training-{config.dataset.name}", "dataset": config.dataset.name})
    parent_id = parent.info.run_id
    export_path = None
    try:
        with _api_visible_to_workers(config), runner:
            futures = [runner.submit(training.train_model, {"config": config, "model": name, "parent_run_id": parent_id,
                                                             "experiment_id": experiment_id, "n_jobs": plan.n_jobs})
                       for name in models]
            wait(futures)
            results = [f.result() for f in futures]  # submission order: the same list a sequential run builds
        ranked = rank_models(results, config.training.primary_metric, config.training.tie_breakers)
        slim = [{k: v for k, v in r.items() if k != "holdout_probabilities"} for r in ranked]
        outcome = training.register_best(config, slim, parent_id)
        if config.training.export_dir:
            export_path = training.export_model(config, outcome, slim)
    except BaseException:
        client.set_terminated(parent_id, "FAILED")
        raise
    client.set_terminated(parent_id, "FINISHED")
    return {"layer": "training", "status": "ran", "tracking_uri": mlflow.get_tracking_uri(), "parent_run_id": parent_id,
            "primary_metric": config.training.primary_metric, **outcome,
            "concurrency": {"task_runner": config.training.concurrency.task_runner, "concurrent_models": plan.concurrent_models,
                            "n_jobs": plan.n_jobs, "tuning_workers": plan.tuning_workers},
            "export_dir": export_path,
            "models": [{k: v for k, v in r.items() if k != "holdout_probabilities"} for r in ranked]}
