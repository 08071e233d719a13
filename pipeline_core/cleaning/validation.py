"""The silver layer's checks over flagged rows: counts per rule, the failure-rate gate, schema drift."""

from __future__ import annotations

from typing import Any

import polars as pl

from pipeline_core.cleaning.spec import REASON
from pipeline_core.errors import DataError


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


def lineage_columns(source: str, batch_id: str, ingested_at: Any) -> list[pl.Expr]:
    """The bronze lineage columns every raw row carries: where it came from, in which batch, when."""
    return [
        pl.lit(source).alias("_source"),
        pl.lit(batch_id).alias("_batch_id"),
        pl.lit(ingested_at).dt.replace_time_zone("UTC").alias("_ingested_at"),
    ]
