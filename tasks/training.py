"""Tasks of the training stage: one per model, then registration behind the promotion gate."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from pipeline_core import train_job, tracking
from pipeline_core.config import PipelineConfig
from tasks.layers import make_store


@task(name="train-model", cache_policy=NO_CACHE, task_run_name="train-{model}")
def train_model(config: PipelineConfig, model: str, parent_run_id: str, experiment_id: str, n_jobs: int | None = None) -> dict[str, Any]:
    """One model, end to end; safe to run beside others in threads or Dask worker processes."""
    tracking.connect(config)
    data = train_job.load_training_data(config, make_store(config))
    result = train_job.train_and_log(config, data, model, parent_run_id, experiment_id, n_jobs)
    get_run_logger().info("%s: holdout %s=%.4f (cv %.4f ± %.4f) in %.1fs", model, config.training.primary_metric,
                          result["metrics"][config.training.primary_metric], result["cv_mean"], result["cv_std"], result["seconds"])
    return result


@task(name="register-best", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def register_best(config: PipelineConfig, ranked: list[dict[str, Any]], parent_run_id: str) -> dict[str, Any]:
    import mlflow

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
