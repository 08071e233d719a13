"""Tasks of the bronze, silver and gold layers. Each takes a config and small values and returns a small summary."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from pipeline_core import bronze, gold, silver, sources
from pipeline_core.config import PipelineConfig
from pipeline_core.storage import Store
from tasks.caching import retry_transient, stage_cache_key


def make_store(config: PipelineConfig) -> Store:
    store = Store(config.store.root, config.store.s3)
    store.check_reachable()
    return store


@task(name="fetch-source", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 2, 4], retry_condition_fn=retry_transient)
def fetch_source(config: PipelineConfig, staging: str) -> str:
    """Bring the source to a local file (downloads are retried on transient errors only)."""
    return str(sources.fetch_source(config.dataset, config.store.s3, Path(staging)))


@task(name="ingest-bronze", cache_policy=NO_CACHE)
def ingest_bronze(config: PipelineConfig, local_path: str) -> dict[str, Any]:
    logger = get_run_logger()
    start = time.perf_counter()
    result = bronze.ingest_batch(config, make_store(config), Path(local_path))
    summary = {
        "layer": "bronze", "status": result["status"], "rows_in": result["rows_in"], "rows_out": result["rows_out"],
        "quarantined": 0, "batch_id": result["batch_id"], "fingerprint": result["fingerprint"],
        "schema_change": result["schema_change"], "seconds": round(time.perf_counter() - start, 3),
    }
    if result["status"] == "skipped":
        logger.info("bronze: identical content already stored as batch %s; nothing written", result["batch_id"])
    else:
        logger.info("bronze: batch %s with %d rows", result["batch_id"], result["rows"])
    return summary


@task(name="list-bronze", cache_policy=NO_CACHE)
def bronze_fingerprint(config: PipelineConfig) -> str:
    return silver.bronze_fingerprint(make_store(config), config.dataset.name)


@task(
    name="refine-silver",
    cache_key_fn=stage_cache_key("silver", "dataset", "cleaning", code_version=silver.silver_code_version),
    persist_result=True,
)
def refine_silver(config: PipelineConfig, input_fingerprint: str) -> dict[str, Any]:
    start = time.perf_counter()
    report = silver.refine_to_silver(config, make_store(config))
    get_run_logger().info(
        "silver: %d rows in, %d out, %d quarantined %s", report["rows_in"], report["rows_out"],
        report["rows_quarantined"], report["quarantined_by_rule"],
    )
    return {
        "layer": "silver", "status": "ran", "rows_in": report["rows_in"], "rows_out": report["rows_out"],
        "quarantined": report["rows_quarantined"], "quarantined_by_rule": report["quarantined_by_rule"],
        "failure_rate": report["failure_rate"], "fingerprint": report["fingerprint"],
        "report": report["paths"]["report"], "seconds": round(time.perf_counter() - start, 3),
    }


@task(
    name="build-gold",
    cache_key_fn=stage_cache_key("gold", "dataset", "features", "preprocessing", code_version=gold.gold_code_version),
    persist_result=True,
)
def build_gold(config: PipelineConfig, input_fingerprint: str) -> dict[str, Any]:
    start = time.perf_counter()
    meta = gold.build_gold(config, make_store(config))
    get_run_logger().info("gold: %d rows, feature version %s, roles %s", meta["row_count"], meta["feature_version"],
                          {k: len(v) for k, v in meta["roles"].items()})
    return {
        "layer": "gold", "status": "ran", "rows_in": meta["row_count"], "rows_out": meta["row_count"], "quarantined": 0,
        "feature_version": meta["feature_version"], "fingerprint": meta["fingerprint"],
        "numeric": len(meta["roles"].get("numeric", [])), "categorical": len(meta["roles"].get("categorical", [])),
        "missing_values": meta["missing_values"], "metadata": meta["paths"]["metadata"],
        "set_aside": {c: role for role, cols in meta["roles"].items() if role not in ("numeric", "categorical", "target") for c in cols},
        "seconds": round(time.perf_counter() - start, 3),
    }


@task(name="stored-fingerprint", cache_policy=NO_CACHE)
def stored_fingerprint(config: PipelineConfig, layer: str) -> str | None:
    """The fingerprint recorded in a layer's commit marker, or None when the layer is absent."""
    store = make_store(config)
    uri = silver.silver_paths(store, config.dataset.name)["report"] if layer == "silver" else gold.gold_paths(store, config.dataset.name)["metadata"]
    return store.read_json(uri).get("fingerprint") if store.exists(uri) else None
