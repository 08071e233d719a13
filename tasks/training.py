"""The training stage as one cached task: unchanged gold data, config and code retrain nothing.

The work itself is in `tasks.model_training`, imported when the stage runs, so that a cache hit
does not pay for pandas, scikit-learn and the model libraries.
"""

from __future__ import annotations

from typing import Any

from prefect import task

from pipeline_core.config import PipelineConfig
from tasks.caching import persisted_as_plain_json, stage_cache_key
from tasks.code_version import code_version

# Config sections that shape a training result (the served model embeds cleaning and features).
TRAINING_SECTIONS = ("dataset", "cleaning", "features", "preprocessing", "training", "mlflow")


def training_code_version() -> str:
    """Covers `tasks.model_training` and everything it imports: imports inside functions count."""
    return code_version(__name__)


@task(
    name="train-and-register",
    cache_key_fn=stage_cache_key("training", *TRAINING_SECTIONS, code_version=training_code_version),
    **persisted_as_plain_json(),
)
def train_stage(config: PipelineConfig, input_fingerprint: str, as_of: str | None = None) -> dict[str, Any]:
    """Every enabled model, a leaderboard, and the gated registry.

    ``input_fingerprint`` is the gold table's key: with the config sections and the training code it
    keys the cache, so a rerun on unchanged inputs returns this summary without retraining.
    """
    from tasks.model_training import train_and_register

    return train_and_register(config, as_of)
