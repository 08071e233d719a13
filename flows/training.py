"""The training flow: the training stage as one cached task (models, leaderboard, gated registry)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.layers import resolved_config
from pipeline_core.config import PipelineConfig
from pipeline_core.errors import DataError
from pipeline_io.registry_state import registry_view
from pipeline_io.workarounds import let_server_settle
from tasks import training
from tasks.caching import run_cached, stored_fingerprint


@flow(name="training-pipeline", on_completion=[let_server_settle])
def training_flow(config_path: str, overrides: list[str] | None = None, refresh: bool = False, as_of: str | None = None,
                  config: PipelineConfig | None = None) -> dict[str, Any]:
    """Train, evaluate and register; the best model becomes `challenger`, `champion` only through the gate.

    Unchanged gold data, config and code reuse the last result, as long as the registry still holds
    the model version it registered; ``refresh`` trains again regardless; ``as_of`` (a gold version or
    an ISO time) trains on that past gold version.
    """
    config = resolved_config(config_path, overrides, config)
    fingerprint = stored_fingerprint(config, "gold")
    if fingerprint is None:
        raise DataError(f"no gold layer for dataset '{config.dataset.name}' in {config.store.root}; run `pipeline-cli features` first")
    return run_cached(training.train_stage, config, fingerprint, "training", refresh,
                      still_valid=lambda summary: registry_view(config, summary), as_of=as_of)
