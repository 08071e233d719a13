"""Outcomes at the edge: the scored rows of past batches, and the realized performance kept in the store."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import polars as pl

from pipeline_core.errors import DataError, first_line
from pipeline_core.outcomes import unjoinable
from pipeline_io import delta, layout
from pipeline_io.store import Store

SERVED, SHADOW = "served", "shadow"


class Unjoinable(DataError):
    """A recorded batch whose predictions file cannot take outcomes; feedback skips it with a warning."""


def batch_key(record: dict[str, Any]) -> tuple[str, str | None]:
    """What names a scored batch: its predictions file and when it was scored. A later predict may
    write to the same path, so the path alone would mix two batches' outcomes."""
    stamp = record.get("inference_timestamp")
    return str(record.get("output")), (str(stamp) if stamp is not None else None)


def scored_rows(store: Store, record: dict[str, Any], id_column: str) -> pl.DataFrame | None:
    """(id, probability, prediction[, shadow_probability]) of a recorded batch's predictions file; None
    when the file is gone. Raises `Unjoinable` (naming the file) when the file there now is not this
    batch's predictions: another kind of file, one without ids, or a later batch's."""
    output = record["output"]
    if not store.fs.exists(output):
        return None
    frame = pl.scan_parquet(output, storage_options=store.polars_options)
    try:
        schema = frame.collect_schema()
    except pl.exceptions.ComputeError as exc:
        raise Unjoinable(f"{output}: not a readable Parquet file ({first_line(exc, 120)}); not joined") from None
    if why := unjoinable(list(schema), id_column):
        raise Unjoinable(f"{output}: {why}")
    if not isinstance(schema["inference_timestamp"], pl.Datetime):
        raise Unjoinable(f"{output}: not a predictions file (inference_timestamp is {schema['inference_timestamp']}, not a time), so not joined")
    # every row of a batch carries the batch's scoring time: other times mean a later predict replaced the file
    lo, hi = frame.select(pl.col("inference_timestamp").min().alias("lo"), pl.col("inference_timestamp").max().alias("hi")).collect().row(0)
    stamp = datetime.fromisoformat(record["inference_timestamp"])
    if lo is not None and (_aware(lo) != stamp or _aware(hi) != stamp):
        raise Unjoinable(f"{output}: overwritten by a later batch (scored {_aware(hi).isoformat()}), so it no longer holds the rows "
                         f"scored {stamp.isoformat()}; not joined")
    shadow = ["shadow_probability"] if "shadow_probability" in schema else []
    return frame.select(pl.col(id_column).cast(pl.String).alias("id"), "probability", "prediction", *shadow).collect()


def _aware(value: datetime) -> datetime:
    # a file written without a time zone on the column holds UTC, as the scorer writes it
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


def record_performance(store: Store, dataset: str, rows: list[dict[str, Any]]) -> str:
    """Append the realized performance of the batches that got outcomes (one commit); returns the table's path."""
    uri = layout.performance_table(store, dataset)
    now = datetime.now(timezone.utc).isoformat()
    frame = pl.DataFrame({
        "received_at": [now] * len(rows),
        "output": [r["output"] for r in rows],
        "model_name": [r["model_name"] for r in rows],
        "model_version": [r["model_version"] for r in rows],
        "labelled_rows": [r["labelled_rows"] for r in rows],
        "metrics": [json.dumps(r["metrics"]) for r in rows],
        "role": [r.get("role", SERVED) for r in rows],
        "inference_timestamp": [r["inference_timestamp"] for r in rows],
    }, schema={"received_at": pl.String, "output": pl.String, "model_name": pl.String, "model_version": pl.String,
               "labelled_rows": pl.Int64, "metrics": pl.String, "role": pl.String, "inference_timestamp": pl.String})
    delta.write(store, uri, frame, mode="append", run_id=delta.new_run_id(), facts={"layer": "monitoring", "kind": "performance"})
    return store.relative(uri)


def latest_performance(store: Store, dataset: str, role: str = SERVED) -> dict[tuple[str, str | None], dict[str, Any]]:
    """{`batch_key` of a scored batch: its newest realized performance} of the served model, or of the
    shadow (``role``); look a batch record up with ``batch_key(record)``. Rows kept before batches were
    told apart have no scoring time (key ``(output, None)``): which batch they judged is not known."""
    uri = layout.performance_table(store, dataset)
    if delta.table(store, uri) is None:
        return {}
    rows = delta.scan(store, uri).sort("received_at").collect().to_dicts()
    # rows written before shadow scoring existed have no role: the served model's
    return {batch_key(r): {**r, "metrics": json.loads(r["metrics"])} for r in rows if (r.get("role") or SERVED) == role}
