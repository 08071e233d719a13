"""The silver layer's checks over flagged rows: counts per rule, the failure-rate gate, schema drift."""

from __future__ import annotations

from typing import Any

import polars as pl

from pipeline_core.cleaning.spec import REASON, CleaningSpec
from pipeline_core.errors import DataError
from pipeline_core.fingerprint import digest


def count_reasons(reasons: pl.LazyFrame) -> dict[str, int]:
    """Rows failing each rule (a row failing two rules counts for both)."""
    counted = (
        reasons.filter(pl.col(REASON).is_not_null())
        .select(pl.col(REASON).str.split("; ").alias("rule"))
        .explode("rule")
        .group_by("rule")
        .len()
        .sort("rule")
        .collect()
    )
    return dict(zip(counted["rule"].to_list(), counted["len"].to_list()))


def check_failure_rate(layer: str, quarantined: int, rows_in: int, max_rate: float, by_rule: dict[str, int]) -> float:
    """The share of failing rows; a DataError naming the top rules when it is above ``max_rate``."""
    rate = quarantined / rows_in if rows_in else 0.0
    if rate > max_rate:
        worst = ", ".join(f"{k}={v}" for k, v in sorted(by_rule.items(), key=lambda kv: -kv[1])[:5])
        raise DataError(
            f"{layer}: {quarantined} of {rows_in} rows ({rate:.1%}) fail validation, above "
            f"cleaning.max_failure_rate={max_rate:.1%} (top rules: {worst}); nothing written"
        )
    return rate


def schema_diff(previous: dict[str, str] | None, current: dict[str, str]) -> dict[str, Any]:
    """Columns added, removed or retyped between two {column: dtype} schemas."""
    if previous is None:
        return {"added": [], "removed": [], "changed": {}}
    return {
        "added": [c for c in current if c not in previous],
        "removed": [c for c in previous if c not in current],
        "changed": {c: [previous[c], current[c]] for c in current if c in previous and previous[c] != current[c]},
    }


def with_lineage(frame: pl.LazyFrame, source: str, batch_id: str, ingested_at: Any) -> pl.LazyFrame:
    """The raw rows with the lineage every bronze row carries: where it came from, in which batch, when,
    and its record number in the source (tables keep no row order, so input order is kept as data)."""
    return frame.with_row_index("_row", offset=1).with_columns(
        pl.col("_row").cast(pl.Int64),
        pl.lit(source).alias("_source"),
        pl.lit(batch_id).alias("_batch_id"),
        pl.lit(ingested_at).dt.replace_time_zone("UTC").alias("_ingested_at"),
    )


def validation_report(dataset: str, rows_in: int, quarantined: int, max_rate: float, by_rule: dict[str, int],
                      null_counts: dict[str, int], schema: dict[str, str], previous_schema: dict[str, str] | None,
                      input_fingerprint: str, spec: CleaningSpec, code_version: str) -> dict[str, Any]:
    """The silver layer's report: counts, failures per rule, null rates, schema and its change, lineage."""
    rows_out = rows_in - quarantined
    return {
        "dataset": dataset,
        "rows_in": rows_in,
        "rows_out": rows_out,
        "rows_quarantined": quarantined,
        "failure_rate": quarantined / rows_in if rows_in else 0.0,
        "max_failure_rate": max_rate,
        "quarantined_by_rule": by_rule,
        "null_counts": null_counts,
        "null_rates": {c: (n / rows_out if rows_out else 0.0) for c, n in null_counts.items()},
        "schema": schema,
        "schema_diff": schema_diff(previous_schema, schema),
        "input_fingerprint": input_fingerprint,
        "code_version": code_version,
        "fingerprint": digest(input_fingerprint, spec.to_dict(), code_version),
        "cleaning_spec": spec.to_dict(),
    }
