"""Realized performance: scored rows joined to the outcomes that arrive later, and what they say.

Pure functions over frames; `pipeline_io.outcomes` reads the scored batches and labels and keeps
the results, `flows.feedback` runs it.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from pipeline_core.features import target_expr
from pipeline_core.modeling.metrics import classification_metrics
from pipeline_core.modeling.selection import LOWER_IS_BETTER

SCORED_COLUMNS = ("id", "probability", "prediction")


def labels_frame(raw: pl.DataFrame, id_column: str, label_column: str, positive_label: Any) -> pl.DataFrame:
    """(id, label 0/1) from a raw labels file: ids as text (as the scored rows carry them), the label
    mapped to 1 for the positive value exactly as gold maps the target; rows without an id or a
    label are dropped, and an id labelled twice keeps its last label."""
    return (raw.select(pl.col(id_column).cast(pl.String).str.strip_chars().alias("id"), pl.col(label_column))
               .with_columns(target_expr(label_column, positive_label).alias("label"))
               .select("id", "label")
               .drop_nulls()
               .unique("id", keep="last", maintain_order=True))


def join_outcomes(scored: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
    """The scored rows that have an outcome: the scored columns plus ``label``."""
    return scored.with_columns(pl.col("id").cast(pl.String).str.strip_chars()).join(labels, on="id", how="inner")


def realized_metrics(joined: pl.DataFrame, threshold: float) -> dict[str, Any]:
    """The batch's metrics on its labelled rows (the threshold it was scored with), and how many there were."""
    y = joined["label"].to_numpy()
    p = joined["probability"].to_numpy()
    return {"labelled_rows": joined.height, "positives": int(y.sum()), "metrics": classification_metrics(y, p, threshold)}


def degradation(realized: float, reference: float, metric: str, margin: float) -> float | None:
    """How far a realized metric fell short of its reference beyond ``margin`` (None when it did not)."""
    shortfall = realized - reference if metric in LOWER_IS_BETTER else reference - realized
    return shortfall if shortfall > margin else None


def shadow_pairs(joined: list[pl.DataFrame]) -> pl.DataFrame:
    """The labelled rows that both the champion and the shadow scored (id, label, probability,
    shadow_probability), each id once (from the first frame holding it: give the newest batch
    first), so a row scored twice is not counted twice."""
    columns = ["id", "label", "probability", "shadow_probability"]
    if not joined:
        return pl.DataFrame(schema={"id": pl.String, "label": pl.Int64, "probability": pl.Float64, "shadow_probability": pl.Float64})
    return pl.concat([j.select(columns) for j in joined], how="vertical_relaxed").unique("id", keep="first", maintain_order=True)
