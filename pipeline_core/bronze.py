"""Bronze: raw batches, append-only, with lineage.

Layout: ``<store>/bronze/<dataset>/batch=<id>/data.parquet`` plus ``_batch.json`` written last
as the batch's commit marker. A batch whose marker is missing never happened.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl

from pipeline_core.config import PipelineConfig
from pipeline_core.errors import DataError
from pipeline_core.sources import detect_format, file_fingerprint, scan_source
from pipeline_core.storage import Store

log = logging.getLogger(__name__)

MARKER = "_batch.json"


def bronze_root(store: Store, dataset: str) -> str:
    return store.uri("bronze", dataset)


def list_batches(store: Store, dataset: str) -> list[dict[str, Any]]:
    """Committed batches, oldest first."""
    root = bronze_root(store, dataset)
    batches = []
    for name in store.list_dirs(root):
        marker = f"{root}/{name}/{MARKER}"
        if name.startswith("batch=") and store.exists(marker):
            batches.append(store.read_json(marker))
    return sorted(batches, key=lambda b: b["batch_id"])


def schema_diff(previous: dict[str, str] | None, current: dict[str, str]) -> dict[str, Any]:
    """Columns added, removed or retyped between two {column: dtype} schemas."""
    if previous is None:
        return {"added": [], "removed": [], "changed": {}}
    return {
        "added": [c for c in current if c not in previous],
        "removed": [c for c in previous if c not in current],
        "changed": {c: [previous[c], current[c]] for c in current if c in previous and previous[c] != current[c]},
    }


def lineage_columns(source: str, batch_id: str, ingested_at: datetime) -> list[pl.Expr]:
    return [
        pl.lit(source).alias("_source"),
        pl.lit(batch_id).alias("_batch_id"),
        pl.lit(ingested_at).dt.replace_time_zone("UTC").alias("_ingested_at"),
    ]


def ingest_batch(config: PipelineConfig, store: Store, local_path: Path, now: datetime | None = None) -> dict[str, Any]:
    """Write one bronze batch from a fetched source, unless identical content is already there."""
    ds = config.dataset
    fmt = detect_format(ds.source, ds.format)
    frame = scan_source(local_path, fmt, ds.table, ds.csv_separator)
    fingerprint = file_fingerprint(local_path, extra=f"table={ds.table or ''}")
    batches = list_batches(store, ds.name)
    for batch in batches:
        if batch["fingerprint"] == fingerprint:
            log.info("bronze: content of %s already ingested as batch %s; skipped", ds.source, batch["batch_id"])
            return {**batch, "status": "skipped", "rows_in": batch["rows"], "rows_out": 0}

    now = now or datetime.now(timezone.utc)
    batch_id = f"{now:%Y%m%dT%H%M%S%fZ}-{fingerprint[:8]}"
    folder = f"{bronze_root(store, ds.name)}/batch={batch_id}"
    data_uri = f"{folder}/data.parquet"
    columns = {c: str(t) for c, t in frame.collect_schema().items()}
    try:
        store.write_parquet(frame.with_columns(lineage_columns(ds.source, batch_id, now.replace(tzinfo=None))), data_uri)
    except (pl.exceptions.ComputeError, pl.exceptions.PolarsError) as exc:
        store.remove(folder)
        raise DataError(f"{local_path}: cannot be read as {fmt} ({str(exc).splitlines()[0][:200]})") from None
    rows = store.scan_parquet(data_uri).select(pl.len()).collect().item()
    if rows == 0:
        store.remove(folder)
        raise DataError(f"{local_path}: no data rows")
    previous = batches[-1]["columns"] if batches else None
    marker = {
        "batch_id": batch_id,
        "dataset": ds.name,
        "source": ds.source,
        "format": fmt,
        "table": ds.table,
        "fingerprint": fingerprint,
        "rows": rows,
        "columns": columns,
        "schema_change": schema_diff(previous, columns),
        "ingested_at": now.isoformat(),
        "path": data_uri,
    }
    store.write_json(f"{folder}/{MARKER}", marker)
    change = marker["schema_change"]
    if any(change.values()):
        log.warning("bronze: schema changed since the previous batch: %s", change)
    return {**marker, "status": "ingested", "rows_in": rows, "rows_out": rows}
