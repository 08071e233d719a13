"""Flows of the data layers: bronze, silver, gold (feature pipeline) and all three in order."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

from prefect import flow
from prefect.logging import get_run_logger

from pipeline_core.config import PipelineConfig, load_config
from pipeline_core.errors import ConfigError, DataError
from tasks import layers


def _config(config_path: str, overrides: list[str] | None) -> PipelineConfig:
    return load_config(config_path, overrides or [])


def run_cached(stage_task: Any, config: PipelineConfig, input_fingerprint: str, layer: str, refresh: bool = False,
               still_valid: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None) -> dict[str, Any]:
    """Run a cached stage; trust a cache hit only while the stored output is the one it describes.

    ``still_valid`` checks a cached summary against the world (default: the layer's stored
    fingerprint) and returns what to refresh in it, or None to recompute. ``refresh`` recomputes
    regardless and replaces the cached result.
    """
    start = time.perf_counter()
    if refresh:
        get_run_logger().info("%s: refresh requested; recomputing even if cached", layer)
        return stage_task.with_options(refresh_cache=True)(config, input_fingerprint=input_fingerprint)
    state = stage_task(config, input_fingerprint=input_fingerprint, return_state=True)
    summary = state.result()
    if state.name != "Cached":
        return summary
    check = still_valid or (lambda s: {} if layers.stored_fingerprint(config, layer) == s["fingerprint"] else None)
    updates = check(summary)
    if updates is None:
        get_run_logger().info("%s: cached result no longer matches the store; recomputing", layer)
        return stage_task.with_options(refresh_cache=True)(config, input_fingerprint=input_fingerprint)
    get_run_logger().info("%s: inputs, config and code unchanged; cache hit, nothing recomputed", layer)
    return {**summary, **updates, "status": "cached", "seconds": round(time.perf_counter() - start, 3)}


@flow(name="bronze", log_prints=True)
def bronze_flow(config_path: str, overrides: list[str] | None = None) -> dict[str, Any]:
    """Ingest the configured source as a new bronze batch (skipped when its content is already stored)."""
    config = _config(config_path, overrides)
    staging = tempfile.mkdtemp(prefix="pipeline-fetch-")
    try:
        fetch = layers.fetch_source.with_options(
            retries=config.dataset.http.retries,
            retry_delay_seconds=[config.dataset.http.backoff_seconds * 2**i for i in range(max(config.dataset.http.retries, 1))],
        )
        local = fetch(config, staging)
        return layers.ingest_bronze(config, local)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@flow(name="silver")
def silver_flow(config_path: str, overrides: list[str] | None = None, refresh: bool = False) -> dict[str, Any]:
    """Clean and validate every bronze batch into the silver layer; quarantine what fails."""
    config = _config(config_path, overrides)
    fingerprint = layers.bronze_fingerprint(config)
    return run_cached(layers.refine_silver, config, fingerprint, "silver", refresh)


@flow(name="feature-pipeline")
def features_flow(config_path: str, overrides: list[str] | None = None, refresh: bool = False) -> dict[str, Any]:
    """Engineer features from silver into the gold layer with its metadata."""
    config = _config(config_path, overrides)
    fingerprint = layers.stored_fingerprint(config, "silver")
    if fingerprint is None:
        raise DataError(f"no silver layer for dataset '{config.dataset.name}' in {config.store.root}; run `pipeline-cli silver` first")
    return run_cached(layers.build_gold, config, fingerprint, "gold", refresh)


STAGES = ("bronze", "silver", "gold", "training")


@flow(name="full-pipeline")
def run_flow(config_path: str, overrides: list[str] | None = None, through: str = "training",
             predict_input: str | None = None, predict_output: str | None = None, refresh: bool = False) -> list[dict[str, Any]]:
    """bronze -> silver -> gold -> training (or up to ``through``), each as a subflow; then, when
    ``predict_input`` and ``predict_output`` are given, a batch inference with the champion.

    Unchanged inputs, config and code make every cached stage a cache hit; ``refresh`` recomputes them all."""
    if through not in STAGES:
        raise ConfigError(f"--through {through!r}: choose one of {', '.join(STAGES)}")
    if bool(predict_input) != bool(predict_output):
        raise ConfigError("--predict needs both INPUT and OUTPUT")
    _config(config_path, overrides)
    summaries = [bronze_flow(config_path, overrides)]
    if through != "bronze":
        _let_server_settle()
        summaries.append(silver_flow(config_path, overrides, refresh))
    if through in ("gold", "training"):
        _let_server_settle()
        summaries.append(features_flow(config_path, overrides, refresh))
    if through == "training":
        from flows.training import training_flow

        _let_server_settle()
        summaries.append(training_flow(config_path, overrides, refresh))
    if predict_input and predict_output:
        from flows.inference import inference_flow

        _let_server_settle()
        summaries.append(inference_flow(config_path, predict_input, predict_output, overrides=overrides))
    return summaries


# A Prefect server on SQLite records a finished subflow's task runs just after it returns; a next
# subflow created in that moment (as after a cache hit, within milliseconds) meets "database is
# locked", and Prefect's client waits 2 s before retrying (PrefectHQ/prefect#18934). A 0.2 s pause
# avoided every such retry in measured reruns, where they had cost 2-6 s.
SUBFLOW_PAUSE_S = 0.2


def _let_server_settle() -> None:
    time.sleep(SUBFLOW_PAUSE_S)
