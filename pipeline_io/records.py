"""The record of scored batches: a Delta table under the store, one row per batch, read back by `monitor`."""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from pipeline_io import delta, layout
from pipeline_io.store import Store


def record_batch(store: Store, dataset: str, summary: dict[str, Any]) -> str:
    """Append a scored batch's summary and drift report (one commit); returns the table's path in the store."""
    uri = layout.monitoring_table(store, dataset)
    model = summary.get("model") or {}
    row = pl.DataFrame({
        "inference_timestamp": [summary["inference_timestamp"]],
        "output": [str(summary.get("output"))],
        "model_name": [str(model.get("name") or "")],
        "model_version": [str(model.get("version") or "")],
        "rows_scored": [int(summary.get("rows_scored") or 0)],
        "drift_status": [str(summary.get("drift_status"))],
        "summary": [json.dumps(summary, default=str)],
    })
    delta.write(store, uri, row, mode="append", run_id=delta.new_run_id(), facts={"layer": "monitoring", "output": summary.get("output")})
    return store.relative(uri)


def recent_batches(store: Store, dataset: str, last: int) -> list[dict[str, Any]]:
    """The ``last`` most recent batch records, newest first."""
    uri = layout.monitoring_table(store, dataset)
    if last <= 0 or delta.table(store, uri) is None:
        return []
    rows = delta.scan(store, uri).sort("inference_timestamp", descending=True).head(last).select("summary").collect()
    return [json.loads(s) for s in rows["summary"].to_list()]
