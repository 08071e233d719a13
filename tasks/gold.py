"""Gold: engineered features plus the metadata that training, inference and drift checks read.

Writes ``features.parquet``, ``preprocessing_config.json`` and, last, ``features_metadata.json``
(the commit marker).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import polars as pl
from prefect import task
from prefect.logging import get_run_logger

from pipeline_core.config import PipelineConfig
from pipeline_core.errors import ConfigError
from pipeline_core.features import engineer_features, resolve_feature_spec, resolve_preprocessing_refs
from pipeline_core.gold_metadata import describe_gold
from pipeline_core.profiling import basic_profile, categorical_profile, infer_roles, numeric_profile
from pipeline_io import layout
from pipeline_io.store import Store, open_store
from pipeline_io.streaming import small_morsels
from tasks.caching import stage_cache_key
from tasks.code_version import code_version


def gold_code_version() -> str:
    return code_version(__name__)


@small_morsels
def build_gold(config: PipelineConfig, store: Store) -> dict[str, Any]:
    ds = config.dataset
    s_paths = layout.silver_paths(store, ds.name)
    report = store.read_json(s_paths["report"])
    silver = store.scan_parquet(s_paths["data"]).drop(["_source", "_batch_id", "_ingested_at"], strict=False)
    target = report["cleaning_spec"]["target"]
    target_values = silver.select(pl.col(target).unique()).collect().to_series().to_list()
    spec = resolve_feature_spec(config, report, target_values)

    paths = layout.gold_paths(store, ds.name)
    store.write_parquet(engineer_features(silver, spec), paths["features"])
    gold = store.scan_parquet(paths["features"])

    profile = basic_profile(gold)
    roles = infer_roles(profile, resolve_preprocessing_refs(config), spec.target, spec.id_column)
    numeric = [c for c, r in roles.items() if r == "numeric"]
    categorical = [c for c, r in roles.items() if r == "categorical"]
    if not numeric and not categorical:
        raise ConfigError(f"gold/{ds.name}: no usable feature columns (roles: {roles}); set preprocessing.numeric/categorical")
    stats = {c: profile[c]["numeric"] for c in numeric if "numeric" in profile[c]}
    stats.update(numeric_profile(gold, [c for c in numeric if c not in stats]))
    levels = categorical_profile(gold, categorical, top=config.preprocessing.max_categories)
    positives = gold.select(pl.col(spec.target).sum()).collect().item()
    preprocessing, metadata = describe_gold(config, spec, report, profile, roles, stats, levels, positives, gold_code_version())
    metadata = {**metadata, "created_at": datetime.now(timezone.utc).isoformat(), "paths": {k: store.relative(v) for k, v in paths.items()}}
    store.write_json(paths["preprocessing"], preprocessing)
    store.write_json(paths["metadata"], metadata)
    return metadata


@task(
    name="build-gold",
    cache_key_fn=stage_cache_key("gold", "dataset", "features", "preprocessing", code_version=gold_code_version),
    persist_result=True,
)
def build_gold_task(config: PipelineConfig, input_fingerprint: str) -> dict[str, Any]:
    start = time.perf_counter()
    store = open_store(config)
    meta = build_gold(config, store)
    get_run_logger().info("gold: %d rows, feature version %s, roles %s", meta["row_count"], meta["feature_version"],
                          {k: len(v) for k, v in meta["roles"].items()})
    return {
        "layer": "gold", "status": "ran", "rows_in": meta["row_count"], "rows_out": meta["row_count"], "quarantined": 0,
        "feature_version": meta["feature_version"], "fingerprint": meta["fingerprint"],
        "numeric": len(meta["roles"].get("numeric", [])), "categorical": len(meta["roles"].get("categorical", [])),
        "missing_values": meta["missing_values"], "metadata": layout.gold_paths(store, config.dataset.name)["metadata"],
        "set_aside": {c: role for role, cols in meta["roles"].items() if role not in ("numeric", "categorical", "target") for c in cols},
        "seconds": round(time.perf_counter() - start, 3),
    }
