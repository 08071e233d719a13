"""Bronze: raw batches, append-only, with lineage.

Each batch is ``data.parquet`` plus ``_batch.json`` written last as its commit marker (see
`pipeline_io.layout`); a batch whose marker is missing never happened.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from pipeline_core.cleaning import lineage_columns, schema_diff
from pipeline_core.config import PipelineConfig
from pipeline_core.errors import DataError
from pipeline_core.fingerprint import digest
from pipeline_io import layout, sources
from pipeline_io.store import Store, open_store
from tasks.caching import retry_transient

log = logging.getLogger(__name__)


def list_batches(store: Store, dataset: str) -> list[dict[str, Any]]:
    """Committed batches, oldest first."""
    root = layout.bronze_root(store, dataset)
    batches = []
    for name in store.list_dirs(root):
        marker = f"{root}/{name}/{layout.BATCH_MARKER}"
        if name.startswith("batch=") and store.exists(marker):
            batches.append(store.read_json(marker))
    return sorted(batches, key=lambda b: b["batch_id"])


def committed_batches(store: Store, dataset: str) -> list[dict[str, Any]]:
    """Committed batches, oldest first; a DataError when there are none."""
    batches = list_batches(store, dataset)
    if not batches:
        raise DataError(f"no bronze batches for dataset '{dataset}' in {store.root}; run `pipeline-cli bronze` first")
    return batches


def scan_bronze(store: Store, dataset: str) -> pl.LazyFrame:
    """All committed batches, oldest first; batches with different columns are aligned by name."""
    # each batch's data is found from its id, never from a stored path, so a moved store reads its own files
    frames = [store.scan_parquet(layout.bronze_batch(store, dataset, b["batch_id"])["data"]) for b in committed_batches(store, dataset)]
    return frames[0] if len(frames) == 1 else pl.concat(frames, how="diagonal_relaxed")


def bronze_fingerprint(store: Store, dataset: str) -> str:
    """One fingerprint for the set of committed bronze batches (the silver layer's input)."""
    return digest([b["fingerprint"] for b in committed_batches(store, dataset)])


def ingest_batch(config: PipelineConfig, store: Store, local_path: Path, now: datetime | None = None) -> dict[str, Any]:
    """Write one bronze batch from a fetched source, unless identical content is already there."""
    ds = config.dataset
    fmt = sources.detect_format(ds.source, ds.format)
    frame = sources.scan_source(local_path, fmt, ds.table, ds.csv_separator)
    fingerprint = sources.file_fingerprint(local_path, extra=f"table={ds.table or ''}")
    batches = list_batches(store, ds.name)
    for batch in batches:
        if batch["fingerprint"] == fingerprint:
            log.info("bronze: content of %s already ingested as batch %s; skipped", ds.source, batch["batch_id"])
            return {**batch, "status": "skipped", "rows_in": batch["rows"], "rows_out": 0}

    now = now or datetime.now(timezone.utc)
    batch_id = f"{now:%Y%m%dT%H%M%S%fZ}-{fingerprint[:8]}"
    paths = layout.bronze_batch(store, ds.name, batch_id)
    columns = {c: str(t) for c, t in frame.collect_schema().items()}
    try:
        store.write_parquet(frame.with_columns(lineage_columns(ds.source, batch_id, now.replace(tzinfo=None))), paths["data"])
    except (pl.exceptions.ComputeError, pl.exceptions.PolarsError) as exc:
        store.remove(paths["folder"])
        raise DataError(f"{local_path}: cannot be read as {fmt} ({str(exc).splitlines()[0][:200]})") from None
    rows = store.scan_parquet(paths["data"]).select(pl.len()).collect().item()
    if rows == 0:
        store.remove(paths["folder"])
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
        "path": store.relative(paths["data"]),
    }
    store.write_json(paths["marker"], marker)
    change = marker["schema_change"]
    if any(change.values()):
        log.warning("bronze: schema changed since the previous batch: %s", change)
    return {**marker, "status": "ingested", "rows_in": rows, "rows_out": rows}


@task(name="fetch-source", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[1, 2, 4], retry_condition_fn=retry_transient)
def fetch_source(config: PipelineConfig, staging: str) -> str:
    """Bring the source to a local file (downloads are retried on transient errors only)."""
    return str(sources.fetch_source(config.dataset, config.store.s3, Path(staging)))


@task(name="ingest-bronze", cache_policy=NO_CACHE)
def ingest_bronze(config: PipelineConfig, local_path: str) -> dict[str, Any]:
    logger = get_run_logger()
    start = time.perf_counter()
    result = ingest_batch(config, open_store(config), Path(local_path))
    summary = {
        "layer": "bronze", "status": result["status"], "rows_in": result["rows_in"], "rows_out": result["rows_out"],
        "quarantined": 0, "batch_id": result["batch_id"], "fingerprint": result["fingerprint"],
        "schema_change": result["schema_change"], "seconds": round(time.perf_counter() - start, 3),
    }
    if result["status"] == "skipped":
        logger.info("bronze: identical content already stored as batch %s; nothing written", result["batch_id"])
    else:
        logger.info("bronze: batch %s with %d rows", result["batch_id"], result["rows"])
    return summary


@task(name="list-bronze", cache_policy=NO_CACHE)
def stored_bronze_fingerprint(config: PipelineConfig) -> str:
    return bronze_fingerprint(open_store(config), config.dataset.name)
