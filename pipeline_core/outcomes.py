"""Realized performance: scored rows joined to the outcomes that arrive later, and what they say.

Pure functions over frames; `pipeline_io.outcomes` reads the scored batches and labels and keeps
the results, `flows.feedback` runs it.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from pipeline_core.errors import DataError
from pipeline_core.features import label_text
from pipeline_core.modeling.metrics import classification_metrics
from pipeline_core.modeling.selection import LOWER_IS_BETTER

SCORED_COLUMNS = ("id", "probability", "prediction")


def canonical_text(expr: pl.Expr) -> pl.Expr:
    """A value as comparable text: trimmed, and an integral decimal without its fraction, so that an id
    or label a writer turned into a float (pandas does, once a column has a gap) still equals its
    integer ('2.0' == '2'). Text, not a float cast: an 18-digit id must not lose digits."""
    return expr.cast(pl.String).str.strip_chars().str.replace(r"^([+-]?\d+)\.0*$", "${1}")


def _label_text(expr: pl.Expr) -> pl.Expr:
    # labels compare as gold compares the target: case does not matter ('Yes' is 'yes')
    return canonical_text(expr).str.to_lowercase()


def labels_frame(raw: pl.DataFrame, id_column: str, label_column: str, positive_label: Any,
                 source: str = "labels file") -> pl.DataFrame:
    """(id, label 0/1) from a raw labels file: ids as canonical text (as `join_outcomes` makes the
    scored ids), the label 1 where it equals the positive value (1.0 == 1); rows without an id or a
    label are dropped, and an id labelled twice keeps its last label. Labels that cannot be this
    model's two classes are refused rather than all read as negative."""
    frame = (raw.select(canonical_text(pl.col(id_column)).alias("id"), _label_text(pl.col(label_column)).alias("value"))
                .filter(pl.col("id").is_not_null() & (pl.col("id") != "") & pl.col("value").is_not_null() & (pl.col("value") != "")))
    if frame.height == 0:
        raise DataError(f"{source}: no row has both an id ('{id_column}') and a label ('{label_column}'); nothing to join")
    positive = pl.select(_label_text(pl.lit(label_text(positive_label)))).item()
    found = sorted(frame["value"].unique().to_list())
    if len(found) > 2 or (len(found) == 2 and positive not in found):
        shown = ", ".join(repr(v) for v in found[:5]) + (f" and {len(found) - 5} more" if len(found) > 5 else "")
        raise DataError(f"{source}: label column '{label_column}' has {len(found)} values ({shown}) but the model's classes are "
                        f"{positive!r} (positive) and one other; map the outcomes to those two or pass the right --label-column")
    return (frame.select("id", (pl.col("value") == positive).cast(pl.Int8).alias("label"))
                 .unique("id", keep="last", maintain_order=True))


def join_outcomes(scored: pl.DataFrame, labels: pl.DataFrame) -> pl.DataFrame:
    """The scored rows that have an outcome: the scored columns plus ``label``."""
    return scored.with_columns(canonical_text(pl.col("id"))).join(labels, on="id", how="inner")


def no_match_message(id_column: str, labels: pl.DataFrame, scored_id: str | None) -> str:
    """Why not one labelled id found a scored row, with an id of each side so the mismatch shows."""
    mine = next(iter(labels["id"].head(1).to_list()), None)
    return (f"none of the {labels.height} labelled ids matches a scored row by '{id_column}' (dataset.id_column): the labels have ids "
            f"like {mine!r}, the scored batches like {scored_id!r}; send outcomes for rows that were scored, with their ids")


def unjoinable(columns: list[str], id_column: str) -> str | None:
    """Why a recorded batch's file cannot take outcomes (None when it can)."""
    missing = [c for c in ("probability", "prediction", "inference_timestamp") if c not in columns]
    if missing:
        return f"not a predictions file (no {', '.join(missing)}), so not joined"
    if id_column not in columns:
        return f"no id column '{id_column}' (dataset.id_column) in the predictions, no id to join outcomes on; not joined"
    return None


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
