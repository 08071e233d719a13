"""Flows of the data layers: bronze, silver, gold (feature pipeline) and every stage in order.

Each flow takes the config file's path (what a deployment or a user passes) and, from a parent
flow or the CLI, the config already loaded from it, so that one run loads it once.
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any

from prefect import flow

from pipeline_core.config import PipelineConfig, load_config
from pipeline_core.errors import ConfigError, DataError
from pipeline_io.workarounds import let_server_settle
from tasks import bronze, gold, silver
from tasks.caching import run_cached, stored_fingerprint


def resolved_config(config_path: str, overrides: list[str] | None, config: PipelineConfig | None) -> PipelineConfig:
    return config if config is not None else load_config(config_path, overrides or [])


@flow(name="bronze", log_prints=True, on_completion=[let_server_settle])
def bronze_flow(config_path: str, overrides: list[str] | None = None, config: PipelineConfig | None = None) -> dict[str, Any]:
    """Ingest the configured source as a new bronze batch (skipped when its content is already stored)."""
    config = resolved_config(config_path, overrides, config)
    http = config.dataset.http
    staging = tempfile.mkdtemp(prefix="pipeline-fetch-")
    try:
        fetch = bronze.fetch_source.with_options(
            retries=http.retries, retry_delay_seconds=[http.backoff_seconds * 2**i for i in range(max(http.retries, 1))])
        return bronze.ingest_bronze(config, fetch(config, staging))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@flow(name="silver", on_completion=[let_server_settle])
def silver_flow(config_path: str, overrides: list[str] | None = None, refresh: bool = False, full_refresh: bool = False,
                config: PipelineConfig | None = None) -> dict[str, Any]:
    """Clean and validate the new bronze batches into silver (all of them with ``full_refresh``); quarantine what fails."""
    config = resolved_config(config_path, overrides, config)
    return run_cached(silver.refine_silver, config, bronze.stored_bronze_key(config), "silver", refresh, full_refresh=full_refresh)


@flow(name="feature-pipeline", on_completion=[let_server_settle])
def features_flow(config_path: str, overrides: list[str] | None = None, refresh: bool = False, full_refresh: bool = False,
                  as_of: str | None = None, config: PipelineConfig | None = None) -> dict[str, Any]:
    """Engineer features from what silver changed into gold with its metadata (from all of silver with
    ``full_refresh``, or from silver as of a past version or time with ``as_of``)."""
    config = resolved_config(config_path, overrides, config)
    fingerprint = stored_fingerprint(config, "silver")
    if fingerprint is None:
        raise DataError(f"no silver layer for dataset '{config.dataset.name}' in {config.store.root}; run `pipeline-cli silver` first")
    return run_cached(gold.build_gold_task, config, fingerprint, "gold", refresh, full_refresh=full_refresh, as_of=as_of)


STAGES = ("bronze", "silver", "gold", "training")


@flow(name="full-pipeline")
def run_flow(config_path: str, overrides: list[str] | None = None, through: str = "training",
             predict_input: str | None = None, predict_output: str | None = None, refresh: bool = False,
             full_refresh: bool = False, config: PipelineConfig | None = None) -> list[dict[str, Any]]:
    """bronze -> silver -> gold -> training (or up to ``through``), each as a subflow; then, when
    ``predict_input`` and ``predict_output`` are given, a batch inference with the champion.

    Unchanged inputs, config and code make every cached stage a cache hit; ``refresh`` recomputes them all,
    ``full_refresh`` rebuilds silver and gold from every bronze batch."""
    if through not in STAGES:
        raise ConfigError(f"--through {through!r}: choose one of {', '.join(STAGES)}")
    if bool(predict_input) != bool(predict_output):
        raise ConfigError("--predict needs both INPUT and OUTPUT")
    config = resolved_config(config_path, overrides, config)
    if through == "training":  # a model's settings are checked before the layers are written, not after
        from pipeline_core.modeling.training import check_training_config

        check_training_config(config)
    summaries = [bronze_flow(config_path, overrides, config=config)]
    if through != "bronze":
        summaries.append(silver_flow(config_path, overrides, refresh, full_refresh, config=config))
    if through in ("gold", "training"):
        summaries.append(features_flow(config_path, overrides, refresh, full_refresh, config=config))
    if through == "training":
        from flows.training import training_flow

        summaries.append(training_flow(config_path, overrides, refresh, config=config))
    if predict_input and predict_output:
        from flows.inference import inference_flow

        summaries.append(inference_flow(config_path, predict_input, predict_output, overrides=overrides, config=config))
    return summaries
