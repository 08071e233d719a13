"""Bronze: raw batches in one append-only Delta table, with lineage.

Each batch is one append commit to ``bronze/<dataset>``, so a batch is either wholly in the table
or not at all. The lineage columns come first, so the table's file statistics always cover
``_batch_id`` (Delta keeps them for the first 32 columns): the batch list is read from the log,
and a scan of some batches skips the files of the others. (Not partitioned by batch: delta-rs
holds a whole partition in memory while it writes one.) The batch id ends with the source's content
fingerprint, which is how identical content is recognised and skipped.
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

from pipeline_core.cleaning import (
    LINEAGE_COLUMNS,
    RESERVED_COLUMNS,
    case_clashes,
    missing_required,
    reserved_names,
    schema_diff,
    with_lineage,
)
from pipeline_core.config import PipelineConfig
from pipeline_core.errors import DataError, StorageError, first_line
from pipeline_core.redaction import redact
from pipeline_io import delta, layout, sources
from pipeline_io.bronze_batches import BATCH, batch_ids
from pipeline_io.locks import layer_writer
from pipeline_io.store import Store, open_store
from tasks.caching import retry_transient

log = logging.getLogger(__name__)

FINGERPRINT_CHARS = 16  # of the content fingerprint kept at the end of a batch id


def refuse_parquet_layout(store: Store, dataset: str) -> None:
    """A bronze folder of the earlier Parquet layout is not a table; writing a table over it would hide (and a vacuum delete) it."""
    root = layout.bronze_table(store, dataset)
    if store.exists(root) and not store.exists(f"{root}/_delta_log") and store.fs.glob(f"{root}/batch=*"):
        raise StorageError(f"{store.relative(root)}: holds Parquet batches of an earlier version of this pipeline, not a Delta table; "
                           "use a new store.root and ingest the sources again (each batch's _batch.json names its source)")


def bronze_state(store: Store, dataset: str) -> dict[str, Any]:
    """The bronze table's version, cache key and batch ids; a DataError when there are no batches."""
    uri = layout.bronze_table(store, dataset)
    dt = delta.table(store, uri)
    batches = batch_ids(store, dataset) if dt is not None else []
    if not batches:  # no table yet, or every batch dropped (`store drop-batch`)
        raise DataError(f"no bronze batches for dataset '{dataset}' in {store.root}; run `pipeline-cli bronze` first")
    return {"version": dt.version(), "key": delta.table_key(store, uri), "batches": batches}


def scan_bronze(store: Store, dataset: str, at: int, batches: list[str] | None = None) -> pl.LazyFrame:
    """Bronze as of version ``at``; only ``batches`` when given (the other batches' files are skipped by their statistics).

    Tables keep no row order: input order is in the data, as ``_batch_id`` (time first) and ``_row``.
    """
    frame = delta.scan(store, layout.bronze_table(store, dataset), at)
    if batches is not None:
        frame = frame.filter(pl.col(BATCH).is_in(batches))
    raw = [c for c in frame.collect_schema() if c not in LINEAGE_COLUMNS]
    return frame.select(*raw, *LINEAGE_COLUMNS)


def refuse_unfit_columns(config: PipelineConfig, columns: list[str], shown: str) -> None:
    """Refuse, before anything is stored, a batch that silver could never read: once in bronze, it would stay there."""
    if clash := reserved_names(columns):
        raise DataError(f"{shown}: column(s) {', '.join(clash)} have names the pipeline uses for its own columns; "
                        f"rename them in the source (reserved: {', '.join(RESERVED_COLUMNS)})")
    if clashes := case_clashes(columns):
        pairs = ", ".join(f"'{a}' and '{b}'" for a, b in clashes)
        raise DataError(f"{shown}: columns {pairs} differ only in case, which a Delta table cannot keep apart; rename one in the source")
    if missing := missing_required(config.dataset, config.cleaning, columns):
        shown_columns = ", ".join(repr(c) for c in columns[:8]) + (f" and {len(columns) - 8} more" if len(columns) > 8 else "")
        separator = next((s for s in (";", "\t", "|", ",") if len(columns) == 1 and s in columns[0]), None)
        hint = (f"its header looks {separator!r}-separated: set dataset.csv_separator" if separator
                else "check dataset.target / dataset.id_column and the source")
        raise DataError(f"{shown}: no {' and no '.join(missing)} column among {shown_columns}; {hint}; nothing was stored")


def typed_empty_columns(frame: pl.LazyFrame, table_schema: pl.Schema) -> pl.LazyFrame:
    """Columns without a single value (type Null, e.g. an all-NULL SQLite column) take the table's type for them, else text."""
    empty = [c for c, t in frame.collect_schema().items() if t == pl.Null]
    return frame.with_columns(pl.col(c).cast(table_schema.get(c, pl.String)) for c in empty) if empty else frame


def ingest_batch(config: PipelineConfig, store: Store, local_path: Path, now: datetime | None = None) -> dict[str, Any]:
    """Append one bronze batch from a fetched source, unless identical content is already there.

    Two runs at once must not both store the same content: on a local store they take turns (the
    layer lock), and on object storage, where nothing serialises them, the later commit of the same
    content is taken back (`drop_concurrent_copy`).
    """
    with layer_writer(store, "bronze", config.dataset.name):
        result = _ingest(config, store, local_path, now)
    if result["status"] == "ingested":
        result = drop_concurrent_copy(store, config.dataset.name, result)
    return result


def drop_concurrent_copy(store: Store, dataset: str, result: dict[str, Any]) -> dict[str, Any]:
    """``result`` as skipped when another batch of the same content was committed before this one (and is still there)."""
    uri = layout.bronze_table(store, dataset)
    present = set(batch_ids(store, dataset))
    earlier = [entry["batch_id"] for entry in delta.history(store, uri, 50)
               if entry["version"] < result["version"] and entry.get("batch_id", "").endswith(result["fingerprint"])
               and entry["batch_id"] in present and entry["batch_id"] != result["batch_id"]]
    if not earlier:
        return result
    delta.delete(store, uri, f"{BATCH} = '{result['batch_id']}'", run_id=delta.new_run_id(),
                 facts={"layer": "bronze", "dropped_batch": result["batch_id"], "why": f"same content as {earlier[-1]}, committed at the same time"})
    log.info("bronze: another run stored the same content as batch %s at the same time; this run's copy was taken back", earlier[-1])
    return _skipped(earlier[-1], result["fingerprint"], delta.version(store, uri))


def _skipped(batch_id: str, fingerprint: str, version: int | None) -> dict[str, Any]:
    """The result of an ingest whose content bronze already holds, as batch ``batch_id``."""
    return {"batch_id": batch_id, "status": "skipped", "rows": 0, "rows_in": 0, "rows_out": 0, "fingerprint": fingerprint,
            "schema_change": {"added": [], "removed": [], "changed": {}}, "version": version}


def _ingest(config: PipelineConfig, store: Store, local_path: Path, now: datetime | None) -> dict[str, Any]:
    ds = config.dataset
    shown = redact(ds.source)  # what lineage stores and messages show: never credentials
    uri = layout.bronze_table(store, ds.name)
    refuse_parquet_layout(store, ds.name)
    fmt = sources.detect_format(ds.source, ds.format)
    frame = sources.scan_source(local_path, fmt, ds.table, ds.csv_separator, shown=shown)
    refuse_unfit_columns(config, list(frame.collect_schema()), shown)
    fingerprint = sources.file_fingerprint(local_path, extra=f"table={ds.table or ''}")[:FINGERPRINT_CHARS]
    for batch_id in batch_ids(store, ds.name):
        if batch_id.endswith(fingerprint):
            log.info("bronze: content of %s already ingested as batch %s; skipped", shown, batch_id)
            return _skipped(batch_id, fingerprint, delta.version(store, uri))

    now = now or datetime.now(timezone.utc)
    batch_id = f"{now:%Y%m%dT%H%M%S%fZ}-{fingerprint}"
    current = delta.table(store, uri)
    table_schema = pl.scan_delta(current).collect_schema() if current is not None else pl.Schema()
    frame = typed_empty_columns(frame, table_schema)
    columns = {c: str(t) for c, t in frame.collect_schema().items()}
    if binary := [c for c, t in columns.items() if t == "Binary"]:
        raise DataError(f"{shown}: column(s) {', '.join(binary)} hold binary values (SQLite BLOBs), which no cleaning rule reads; "
                        "store them as text or numbers in the source, or drop them; nothing was stored")
    previous = {c: str(t) for c, t in table_schema.items() if c not in LINEAGE_COLUMNS} if current is not None else None
    change = schema_diff(previous, columns)
    if change["changed"]:
        raise DataError(f"{shown}: columns changed type since the previous batch {change['changed']}; "
                        "bronze keeps one type per column: convert the source, or ingest it as a new dataset")
    from deltalake.exceptions import DeltaError

    run_id = delta.new_run_id()
    delta.fault_point("bronze:before-commit")
    try:
        raw = with_lineage(frame, shown, batch_id, now.replace(tzinfo=None))
        version = delta.write(store, uri, raw.select(*LINEAGE_COLUMNS, *columns), mode="append", run_id=run_id,
                              facts={"layer": "bronze", "batch_id": batch_id, "source": shown, "format": fmt})
    except (pl.exceptions.PolarsError, DeltaError) as exc:
        if current is None and not store.exists(f"{uri}/_delta_log"):
            store.remove(uri)  # a first write that never committed: nothing but its own files is there
        # later ones leave files no version names; `pipeline-cli store vacuum` deletes them
        text = str(exc).lower()
        if isinstance(exc, pl.exceptions.PolarsError) or "utf-8" in text or "utf8" in text:
            hint = "; save it as UTF-8" if "utf-8" in text or "utf8" in text else ""
            raise DataError(f"{shown}: cannot be read as {fmt} ({first_line(exc)}){hint}; nothing was stored") from None
        raise StorageError(f"{store.relative(uri)}: the batch could not be written ({first_line(exc)}); nothing was stored") from None
    delta.fault_point("bronze:after-commit")
    rows = int(delta.committed(store, uri, run_id)["operationMetrics"].get("num_added_rows", 0))
    if any(change.values()):
        log.warning("bronze: schema changed since the previous batch: %s", change)
    return {"batch_id": batch_id, "dataset": ds.name, "source": shown, "format": fmt, "table": ds.table, "fingerprint": fingerprint,
            "rows": rows, "columns": columns, "schema_change": change, "ingested_at": now.isoformat(), "version": version,
            "status": "ingested", "rows_in": rows, "rows_out": rows}


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
        "schema_change": result["schema_change"], "version": result["version"], "seconds": round(time.perf_counter() - start, 3),
    }
    if result["status"] == "skipped":
        logger.info("bronze: identical content already stored as batch %s; nothing written", result["batch_id"])
    else:
        logger.info("bronze: batch %s with %d rows", result["batch_id"], result["rows"])
    return summary


@task(name="bronze-version", cache_policy=NO_CACHE)
def stored_bronze_key(config: PipelineConfig) -> str:
    """The bronze table's cache key (silver's input)."""
    return bronze_state(open_store(config), config.dataset.name)["key"]
