"""Outcomes at the edge: the scored rows of past batches, and the realized performance kept in the store."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import polars as pl

from pipeline_core.errors import DataError
from pipeline_io import delta
from pipeline_io.store import Store

SERVED, SHADOW = "served", "shadow"


def performance_table(store: Store, dataset: str) -> str:
    return store.uri("monitoring", dataset, "performance")


def scored_rows(store: Store, output: str, id_column: str) -> pl.DataFrame | None:
    """(id, probability, prediction[, shadow_probability]) of a predictions file; None when the file is gone."""
    if not store.fs.exists(output):
        return None
    frame = pl.scan_parquet(output, storage_options=store.polars_options)
    schema = frame.collect_schema()
    if id_column not in schema:
        raise DataError(f"{output}: no id column '{id_column}' (dataset.id_column) in the predictions; outcomes are joined by id")
    shadow = ["shadow_probability"] if "shadow_probability" in schema else []
    return frame.select(pl.col(id_column).cast(pl.String).alias("id"), "probability", "prediction", *shadow).collect()


def record_performance(store: Store, dataset: str, rows: list[dict[str, Any]]) -> str:
    """Append the realized performance of the batches that got outcomes (one commit); returns the table's path."""
    uri = performance_table(store, dataset)
    now = datetime.now(timezone.utc).isoformat()
    frame = pl.DataFrame({
        "received_at": [now] * len(rows),
        "output": [r["output"] for r in rows],
        "model_name": [r["model_name"] for r in rows],
        "model_version": [r["model_version"] for r in rows],
        "labelled_rows": [r["labelled_rows"] for r in rows],
        "metrics": [json.dumps(r["metrics"]) for r in rows],
        "role": [r.get("role", SERVED) for r in rows],
    }, schema={"received_at": pl.String, "output": pl.String, "model_name": pl.String, "model_version": pl.String,
               "labelled_rows": pl.Int64, "metrics": pl.String, "role": pl.String})
    delta.write(store, uri, frame, mode="append", run_id=delta.new_run_id(), facts={"layer": "monitoring", "kind": "performance"})
    return store.relative(uri)


def latest_performance(store: Store, dataset: str, role: str = SERVED) -> dict[str, dict[str, Any]]:
    """{predictions file: its newest realized performance} of the served model, or of the shadow (``role``)."""
    uri = performance_table(store, dataset)
    if delta.table(store, uri) is None:
        return {}
    rows = delta.scan(store, uri).sort("received_at").collect().to_dicts()
    # rows written before shadow scoring existed have no role: the served model's
    return {r["output"]: {**r, "metrics": json.loads(r["metrics"])} for r in rows if (r.get("role") or SERVED) == role}
