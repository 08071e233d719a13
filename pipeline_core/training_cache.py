"""What a cached training result depends on, and whether the registry still backs it.

Kept free of the training libraries: a rerun that hits the cache imports MLflow's client only.
"""

from __future__ import annotations

from typing import Any

from pipeline_core import tracking
from pipeline_core.config import PipelineConfig
from pipeline_core.fingerprint import code_version

# Besides the gold data and the config: a change to any of these modules retrains.
TRAINING_MODULES = (
    "pipeline_core.train_job", "pipeline_core.training", "pipeline_core.model_zoo", "pipeline_core.tuning",
    "pipeline_core.preprocessing", "pipeline_core.metrics", "pipeline_core.selection", "pipeline_core.serving",
    "pipeline_core.features", "pipeline_core.cleaning", "pipeline_core.tracking", "pipeline_core.export",
    "pipeline_core.concurrency", "pipeline_core.plots",
)
# Config sections that shape a training result (the served model embeds cleaning and features).
TRAINING_SECTIONS = ("dataset", "cleaning", "features", "preprocessing", "training", "mlflow")


def training_code_version() -> str:
    return code_version(*TRAINING_MODULES)


def registry_view(config: PipelineConfig, summary: dict[str, Any]) -> dict[str, Any] | None:
    """The registry's present view of an earlier training result, or None when it no longer holds that version.

    A cached result is only worth reusing while the model it registered is still there, from the same run.
    """
    from mlflow.exceptions import MlflowException

    client, _ = tracking.connect(config)
    name, version = summary["registered_model"], summary["version"]
    try:
        registered = client.get_model_version(name, version)
    except MlflowException:
        return None
    if registered.tags.get("run_id") != summary["models"][0]["run_id"]:
        return None
    champion = tracking.champion_version(client, name)
    return {"champion_version": str(champion.version) if champion else None}
