"""Tasks of the training stage: one per model, then registration behind the promotion gate, and the
stage as a whole as one cached task, so that unchanged gold data, config and code retrain nothing."""

from __future__ import annotations

import time
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from pipeline_core import tracking, training_cache
from pipeline_core.config import PipelineConfig
from tasks.caching import stage_cache_key
from tasks.layers import make_store
from tasks.runners import api_visible_to_workers, model_task_runner


@task(name="train-model", cache_policy=NO_CACHE, task_run_name="train-{model}")
def train_model(config: PipelineConfig, model: str, parent_run_id: str, experiment_id: str, n_jobs: int | None = None) -> dict[str, Any]:
    """One model, end to end; safe to run beside others in threads or Dask worker processes."""
    from pipeline_core import train_job

    tracking.connect(config)
    data = train_job.load_training_data(config, make_store(config))
    result = train_job.train_and_log(config, data, model, parent_run_id, experiment_id, n_jobs)
    get_run_logger().info("%s: holdout %s=%.4f (cv %.4f ± %.4f) in %.1fs", model, config.training.primary_metric,
                          result["metrics"][config.training.primary_metric], result["cv_mean"], result["cv_std"], result["seconds"])
    return result


@task(name="register-best", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def register_best(config: PipelineConfig, ranked: list[dict[str, Any]], parent_run_id: str) -> dict[str, Any]:
    import mlflow

    from pipeline_core import train_job

    tracking.connect(config)
    data = train_job.load_training_data(config, make_store(config))
    with mlflow.start_run(run_id=parent_run_id):
        train_job.log_leaderboard(ranked, config.training.primary_metric)
        mlflow.log_dict(config.model_dump(mode="json"), "config_snapshot.json")
        mlflow.log_dict(data.metadata["feature_spec"], "feature_spec.json")
    outcome = train_job.register_and_gate(config, data, ranked, parent_run_id)
    from prefect.artifacts import create_table_artifact

    from pipeline_core.selection import leaderboard_rows

    create_table_artifact(
        key=f"leaderboard-{config.dataset.name}".lower().replace("_", "-").replace(".", "-"),
        table=leaderboard_rows(ranked, list(ranked[0]["metrics"])),
        description=f"{outcome['registered_model']} v{outcome['version']}: {'promoted' if outcome['promoted'] else 'not promoted'} ({outcome['reason']})",
    )
    get_run_logger().info("registry: %s v%s %s (%s)", outcome["registered_model"], outcome["version"],
                          "promoted to champion" if outcome["promoted"] else "kept as challenger", outcome["reason"])
    return outcome


@task(name="export-model", cache_policy=NO_CACHE)
def export_model(config: PipelineConfig, outcome: dict[str, Any], ranked: list[dict[str, Any]]) -> str:
    from pipeline_core import export

    tracking.connect(config)
    path = export.export_registered_model(config, outcome, ranked[0])
    get_run_logger().info("exported %s v%s to %s", outcome["registered_model"], outcome["version"], path)
    return str(path)


@task(
    name="train-and-register",
    cache_key_fn=stage_cache_key("training", *training_cache.TRAINING_SECTIONS, code_version=training_cache.training_code_version),
    persist_result=True,
)
def train_stage(config: PipelineConfig, input_fingerprint: str) -> dict[str, Any]:
    """Every enabled model (several at once where the cores allow), a leaderboard, and the gated registry.

    ``input_fingerprint`` is the gold layer's: with the config sections and the training code it
    keys the cache, so a rerun on unchanged inputs returns this summary without retraining.
    """
    import mlflow
    from prefect.futures import wait

    from pipeline_core import train_job
    from pipeline_core.selection import rank_models

    start = time.perf_counter()
    train_job.check_training_config(config)
    plan = train_job.training_plan(config)
    runner = model_task_runner(config, plan)
    models = [name for name, mc in config.training.models.items() if mc.enabled]
    get_run_logger().info("training %d models, %d at a time on the %s runner, %d thread(s) per fit, %d tuning worker(s) each",
                          len(models), plan.concurrent_models, config.training.concurrency.task_runner, plan.n_jobs,
                          plan.tuning_workers)
    client, experiment_id = tracking.connect(config)
    parent = client.create_run(experiment_id, tags={"mlflow.runName": f"training-{config.dataset.name}", "dataset": config.dataset.name,
                                                    "gold_fingerprint": input_fingerprint})
    parent_id = parent.info.run_id
    export_path = None
    try:
        with api_visible_to_workers(config), runner:
            futures = [runner.submit(train_model, {"config": config, "model": name, "parent_run_id": parent_id,
                                                   "experiment_id": experiment_id, "n_jobs": plan.n_jobs})
                       for name in models]
            wait(futures)
            results = [f.result() for f in futures]  # submission order: the same list a sequential run builds
        ranked = rank_models(results, config.training.primary_metric, config.training.tie_breakers)
        slim = [{k: v for k, v in r.items() if k != "holdout_probabilities"} for r in ranked]
        outcome = register_best(config, slim, parent_id)
        if config.training.export_dir:
            export_path = export_model(config, outcome, slim)
    except BaseException:
        client.set_terminated(parent_id, "FAILED")
        raise
    client.set_terminated(parent_id, "FINISHED")
    settled = training_cache.settled_view(config, client, outcome["registered_model"])
    return {"layer": "training", "status": "ran", "tracking_uri": mlflow.get_tracking_uri(), "parent_run_id": parent_id,
            "primary_metric": config.training.primary_metric, "fingerprint": input_fingerprint, **outcome, **settled,
            "concurrency": {"task_runner": config.training.concurrency.task_runner, "concurrent_models": plan.concurrent_models,
                            "n_jobs": plan.n_jobs, "tuning_workers": plan.tuning_workers},
            "export_dir": export_path, "models": slim, "seconds": round(time.perf_counter() - start, 3)}
