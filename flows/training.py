"""The training flow: every enabled model, a leaderboard, and the gated registry."""

from __future__ import annotations

from typing import Any

from prefect import flow

from pipeline_core.config import load_config
from pipeline_core.selection import rank_models
from pipeline_core.train_job import check_training_config, run_tags
from tasks import training


@flow(name="training-pipeline")
def training_flow(config_path: str, overrides: list[str] | None = None) -> dict[str, Any]:
    """Train, evaluate and register; the best model becomes `challenger`, `champion` only through the gate."""
    import mlflow

    from pipeline_core import tracking

    config = load_config(config_path, overrides or [])
    check_training_config(config)
    client, experiment_id = tracking.connect(config)
    parent = client.create_run(experiment_id, tags={"mlflow.runName": f"training-{config.dataset.name}", "dataset": config.dataset.name})
    parent_id = parent.info.run_id
    try:
        results = [training.train_model(config, name, parent_id, experiment_id)
                   for name, mc in config.training.models.items() if mc.enabled]
        ranked = rank_models(results, config.training.primary_metric, config.training.tie_breakers)
        slim = [{k: v for k, v in r.items() if k != "holdout_probabilities"} for r in ranked]
        outcome = training.register_best(config, slim, parent_id)
    except BaseException:
        client.set_terminated(parent_id, "FAILED")
        raise
    client.set_terminated(parent_id, "FINISHED")
    return {"layer": "training", "status": "ran", "tracking_uri": mlflow.get_tracking_uri(), "parent_run_id": parent_id,
            "primary_metric": config.training.primary_metric, **outcome,
            "models": [{k: v for k, v in r.items() if k != "holdout_probabilities"} for r in ranked]}
