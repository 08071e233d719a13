"""Gold: engineered features plus the metadata that training, inference and drift checks read.

Writes ``features.parquet``, ``preprocessing_config.json`` and, last, ``features_metadata.json``
(the commit marker).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

import polars as pl

from pipeline_core.config import PipelineConfig, PreprocessingConfig
from pipeline_core.errors import ConfigError
from pipeline_core.features import FeatureSpec, check_inputs, engineer_features, resolve_positive_label
from pipeline_core.fingerprint import code_version, digest
from pipeline_core.naming import silver_name
from pipeline_core.profiling import basic_profile, categorical_profile, infer_roles, numeric_profile
from pipeline_core.silver import load_cleaning_spec, silver_paths
from pipeline_core.storage import Store
from pipeline_core.streaming import small_morsels

log = logging.getLogger(__name__)

FEATURE_ROLES = ("numeric", "categorical")


def gold_paths(store: Store, dataset: str) -> dict[str, str]:
    root = store.uri("gold", dataset)
    return {
        "features": f"{root}/features.parquet",
        "metadata": f"{root}/features_metadata.json",
        "preprocessing": f"{root}/preprocessing_config.json",
    }


def gold_code_version() -> str:
    return code_version("pipeline_core.features", "pipeline_core.profiling", "pipeline_core.gold")


def resolve_feature_spec(config: PipelineConfig, silver_report: dict[str, Any], target_values: list[Any]) -> FeatureSpec:
    """Pick the missing indicators and the positive label; check the feature set's inputs."""
    spec = load_cleaning_spec(silver_report)
    cols = spec.columns
    feats = config.features
    check_inputs(feats.set, cols, f"silver/{config.dataset.name}")
    if feats.missing_indicators == "auto":
        rates = silver_report["null_rates"]
        indicators = [c for c in cols if c not in (spec.target, spec.id_column) and rates.get(c, 0) >= feats.auto_missing_min_rate and rates.get(c, 0) > 0]
    else:
        indicators = []
        for ref in feats.missing_indicators:
            name = silver_name(ref, config.cleaning.rename, config.cleaning.snake_case)
            if name not in cols:
                raise ConfigError(f"features.missing_indicators: column '{ref}' not in silver; columns are {cols}")
            indicators.append(name)
    return FeatureSpec(
        feature_set=feats.set,
        target=spec.target,
        positive_label=resolve_positive_label(target_values, config.dataset.positive_label, spec.target),
        missing_indicators=indicators,
        age_bins=list(feats.age_bins),
        id_column=spec.id_column,
    )


def resolve_preprocessing_refs(config: PipelineConfig) -> PreprocessingConfig:
    """The preprocessing column lists with raw names turned into silver names."""
    prep = config.preprocessing
    clean = config.cleaning

    def names(refs: list[str] | None) -> list[str] | None:
        return None if refs is None else [silver_name(r, clean.rename, clean.snake_case) for r in refs]

    return prep.model_copy(update={"numeric": names(prep.numeric), "categorical": names(prep.categorical), "exclude": names(prep.exclude)})


@small_morsels
def build_gold(config: PipelineConfig, store: Store) -> dict[str, Any]:
    ds = config.dataset
    s_paths = silver_paths(store, ds.name)
    report = store.read_json(s_paths["report"])
    silver = store.scan_parquet(s_paths["data"]).drop(["_source", "_batch_id", "_ingested_at"], strict=False)
    target = report["cleaning_spec"]["target"]
    target_values = silver.select(pl.col(target).unique()).collect().to_series().to_list()
    spec = resolve_feature_spec(config, report, target_values)

    paths = gold_paths(store, ds.name)
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
    rows = next(iter(profile.values()))["rows"]
    positives = gold.select(pl.col(spec.target).sum()).collect().item()
    version = gold_code_version()
    feature_version = digest(version, spec.to_dict(), config.section_json("features", "preprocessing"), report["fingerprint"])[:12]

    columns = []
    for col, p in profile.items():
        entry = {"name": col, "dtype": p["dtype"], "role": roles[col], "null_count": p["null_count"],
                 "null_rate": p["null_count"] / rows if rows else 0.0, "n_unique": p["n_unique"]}
        entry.update(stats.get(col, {}))
        entry.update(levels.get(col, {}))
        columns.append(entry)
    missing_report = {c["name"]: c["null_rate"] for c in columns if c["null_count"]}

    prep = config.preprocessing
    preprocessing = {
        "feature_version": feature_version,
        "numeric_columns": numeric,
        "categorical_columns": categorical,
        "missing_indicator_columns": [f"{c}_missing" for c in spec.missing_indicators],
        "target": spec.target,
        "id_column": spec.id_column,
        "scaler": prep.scaler,
        "encoder": {"type": prep.encoder, "drop": "first", "handle_unknown": "ignore"},
        "imputation": {"numeric": prep.numeric_imputation, "categorical": prep.categorical_imputation},
    }
    metadata = {
        "dataset": ds.name,
        "feature_version": feature_version,
        "created_at": datetime.now(timezone.utc).isoformat(),
        "row_count": rows,
        "class_balance": {"positive": positives, "negative": rows - positives, "positive_rate": positives / rows if rows else 0.0},
        "target": spec.target,
        "positive_label": spec.positive_label,
        "roles": {r: [c for c, rr in roles.items() if rr == r] for r in sorted(set(roles.values()))},
        "columns": columns,
        "missing_values": missing_report,
        "feature_spec": spec.to_dict(),
        "cleaning_spec": report["cleaning_spec"],
        "sources": {"silver_fingerprint": report["fingerprint"], "bronze_fingerprint": report["input_fingerprint"]},
        "code_version": version,
        "fingerprint": digest(feature_version, report["fingerprint"]),
        "paths": paths,
    }
    store.write_json(paths["preprocessing"], preprocessing)
    store.write_json(paths["metadata"], metadata)
    return metadata
