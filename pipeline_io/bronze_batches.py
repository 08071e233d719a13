"""The bronze table's batches: which are committed, what each holds, and dropping one by hand.

Batch ids start with their ingestion time and end with the source's content fingerprint, so they
sort oldest first and identical content is recognised (`tasks.bronze`).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from pipeline_core.errors import ConfigError
from pipeline_io import delta, layout
from pipeline_io.store import Store

BATCH = "_batch_id"


def batch_ids(store: Store, dataset: str, at: int | None = None) -> list[str]:
    """Committed batch ids, oldest first."""
    uri = layout.bronze_table(store, dataset)
    dt = delta.table(store, uri, at)
    if dt is None:
        return []
    files = pl.DataFrame(dt.get_add_actions(flatten=True))
    low, high = f"min.{BATCH}", f"max.{BATCH}"
    if low in files.columns and files[low].null_count() == 0 and files[low].equals(files[high]):
        return sorted(set(files[low].to_list()))  # every file holds one batch: its statistics name it
    return sorted(delta.scan(store, uri, at).select(pl.col(BATCH).unique()).collect()[BATCH].to_list())


def list_batches(store: Store, dataset: str, at: int | None = None, only: list[str] | None = None) -> list[dict[str, Any]]:
    """Committed batches (or ``only`` these), oldest first, with their source, ingestion time and row count."""
    if not batch_ids(store, dataset, at):
        return []
    frame = delta.scan(store, layout.bronze_table(store, dataset), at)
    if only is not None:
        frame = frame.filter(pl.col(BATCH).is_in(only))
    rows = frame.group_by(BATCH, "_source", "_ingested_at").agg(pl.len().alias("rows")).sort(BATCH).collect().to_dicts()
    return [{"batch_id": r[BATCH], "source": r["_source"], "ingested_at": r["_ingested_at"].isoformat(), "rows": r["rows"]} for r in rows]


def find_batch(batches: list[dict[str, Any]], wanted: str, dataset: str) -> dict[str, Any]:
    """The batch whose id is ``wanted`` or starts with it (a unique prefix is enough)."""
    matches = [b for b in batches if b["batch_id"] == wanted] or [b for b in batches if b["batch_id"].startswith(wanted)]
    if len(matches) == 1 and wanted:
        return matches[0]
    if not matches:
        raise ConfigError(f"no bronze batch '{wanted}' in dataset '{dataset}'; `pipeline-cli store batches` lists them")
    raise ConfigError(f"'{wanted}' starts {len(matches)} bronze batch ids of dataset '{dataset}' "
                      f"({', '.join(b['batch_id'] for b in matches[:3])}{', ...' if len(matches) > 3 else ''}); give more of the id")


def drop_batch(store: Store, dataset: str, wanted: str, dry_run: bool = False) -> dict[str, Any]:
    """Delete one batch's rows from bronze in one commit; the versions before it still read them until vacuumed.

    For a batch that should never have been stored (the wrong file, a broken export): the next
    feature run sees that bronze lost a batch it had processed and rebuilds silver and gold from the
    others, and ingesting the same content again is no longer skipped as already there.
    """
    uri = layout.bronze_table(store, dataset)
    batch = find_batch(list_batches(store, dataset), wanted, dataset)
    before = delta.version(store, uri)
    result = {"dataset": dataset, "dry_run": dry_run, **batch, "bronze_version_before": before}
    if dry_run:
        return result
    quoted = batch["batch_id"].replace("'", "''")
    version = delta.delete(store, uri, f"{BATCH} = '{quoted}'", run_id=delta.new_run_id(),
                           facts={"layer": "bronze", "dropped_batch": batch["batch_id"]})
    return {**result, "bronze_version": version}
