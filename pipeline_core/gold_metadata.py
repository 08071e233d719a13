"""What the gold layer says about itself: the preprocessing config training reads, and the metadata
(feature version, roles, per-column statistics, class balance, lineage) that training, scoring and
drift checks read."""

from __future__ import annotations

from typing import Any

from pipeline_core.config import PipelineConfig
from pipeline_core.features import MISSING_SUFFIX, FeatureSpec
from pipeline_core.fingerprint import digest


def column_entries(profile: dict[str, dict[str, Any]], roles: dict[str, str], stats: dict[str, dict[str, Any]],
                   levels: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per gold column: dtype, role, null and distinct counts, and its statistics or levels."""
    rows = next(iter(profile.values()))["rows"] if profile else 0
    columns = []
    for col, p in profile.items():
        entry = {"name": col, "dtype": p["dtype"], "role": roles[col], "null_count": p["null_count"],
                 "null_rate": p["null_count"] / rows if rows else 0.0, "n_unique": p["n_unique"]}
        entry.update(stats.get(col, {}))
        entry.update(levels.get(col, {}))
        columns.append(entry)
    return columns


def describe_gold(config: PipelineConfig, spec: FeatureSpec, silver_report: dict[str, Any], profile: dict[str, dict[str, Any]],
                  roles: dict[str, str], stats: dict[str, dict[str, Any]], levels: dict[str, dict[str, Any]], positives: int,
                  code_version: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(preprocessing config, metadata) of a gold table from its profile and the silver report it was built from."""
    rows = next(iter(profile.values()))["rows"] if profile else 0
    numeric = [c for c, r in roles.items() if r == "numeric"]
    categorical = [c for c, r in roles.items() if r == "categorical"]
    # what the features are, not which rows they were computed on: tables carry versions for that
    feature_version = digest(code_version, spec.to_dict(), config.section_json("features", "preprocessing"))[:12]
    columns = column_entries(profile, roles, stats, levels)
    prep = config.preprocessing
    preprocessing = {
        "feature_version": feature_version,
        "numeric_columns": numeric,
        "categorical_columns": categorical,
        "missing_indicator_columns": [f"{c}{MISSING_SUFFIX}" for c in spec.missing_indicators],
        "target": spec.target,
        "id_column": spec.id_column,
        "scaler": prep.scaler,
        "encoder": {"type": prep.encoder, "drop": "first", "handle_unknown": "ignore"},
        "imputation": {"numeric": prep.numeric_imputation, "categorical": prep.categorical_imputation},
    }
    metadata = {
        "dataset": config.dataset.name,
        "feature_version": feature_version,
        "row_count": rows,
        "class_balance": {"positive": positives, "negative": rows - positives, "positive_rate": positives / rows if rows else 0.0},
        "target": spec.target,
        "positive_label": spec.positive_label,
        "roles": {r: [c for c, rr in roles.items() if rr == r] for r in sorted(set(roles.values()))},
        "columns": columns,
        "missing_values": {c["name"]: c["null_rate"] for c in columns if c["null_count"]},
        "feature_spec": spec.to_dict(),
        "cleaning_spec": silver_report["cleaning_spec"],
        "sources": {"silver": silver_report["fingerprint"], "bronze": silver_report["input_fingerprint"]},
        "code_version": code_version,
        "settings_digest": settings_digest(config),
    }
    return preprocessing, metadata


def settings_digest(config: PipelineConfig) -> str:
    """The digest of the config sections gold is built from (features, preprocessing)."""
    return digest(config.section_json("features", "preprocessing"))[:12]


def built_with_other_settings(config: PipelineConfig, metadata: dict[str, Any]) -> bool:
    """Whether gold was built from other features/preprocessing settings than ``config``'s: training
    reads gold's own preprocessing config, so changed settings would be recorded but not used.
    (Metadata written before the digest was kept cannot tell, and passes.)"""
    recorded = metadata.get("settings_digest")
    return recorded is not None and recorded != settings_digest(config)


def with_current_counts(previous: dict[str, Any], rows: int, positives: int, null_counts: dict[str, int]) -> dict[str, Any]:
    """``previous`` metadata with exact row, class and null counts of the table as it is now.

    The distribution statistics (quantiles, histograms, levels, distinct counts) and the roles stay
    those of the version they were computed on (``profile_version``).
    """
    columns = [{**c, "null_count": null_counts.get(c["name"], c["null_count"]),
                "null_rate": (null_counts.get(c["name"], c["null_count"]) / rows) if rows else 0.0} for c in previous["columns"]]
    return {
        **previous,
        "row_count": rows,
        "class_balance": {"positive": positives, "negative": rows - positives, "positive_rate": positives / rows if rows else 0.0},
        "columns": columns,
        "missing_values": {c["name"]: c["null_rate"] for c in columns if c["null_count"]},
    }
