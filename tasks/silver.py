"""Silver: bronze batches cleaned, typed, de-duplicated and validated, incrementally.

Rows that fail a rule go to the quarantine table with a ``_reason``; nothing is silently dropped.
A run processes only the bronze batches the last report has not seen and MERGEs them into the
silver table by id (a later batch's record of an id updates it; copies inside one batch are
duplicates). A full rebuild happens on ``--full-refresh``, on the first run, and whenever the
cleaning spec, the code or bronze's columns changed, or the dataset has no id and de-duplicates
whole rows (a new row may repeat any old one).

The run commits the data table, then the quarantine table, then writes the report that names
both versions; readers read those versions, so a run killed at any point leaves the previous
silver readable and whole, and the next run first undoes the commits no report names.
"""

from __future__ import annotations

import tempfile
import time
from datetime import datetime, timezone
from typing import Any

import polars as pl
from prefect import task
from prefect.logging import get_run_logger

from pipeline_core.cleaning import (
    LINEAGE_COLUMNS,
    REASON,
    check_failure_rate,
    clean_rows,
    count_reasons,
    duplicate_rows,
    flag_rows,
    mark_duplicates,
    quarantine_rows,
    resolve_cleaning_spec,
    validation_report,
)
from pipeline_core.cleaning.spec import CleaningSpec
from pipeline_core.config import PipelineConfig
from pipeline_io import delta, layout
from pipeline_io.layer_records import silver_report
from pipeline_io.locks import layer_writer
from pipeline_io.store import Store, open_store
from pipeline_io.streaming import small_morsels
from tasks.bronze import BATCH, bronze_state, scan_bronze
from tasks.caching import persisted_as_plain_json, stage_cache_key
from tasks.code_version import code_version

SAMPLE_ROWS = 100_000  # rows the cleaning spec's type inference looks at
ROW = "__silver_row"  # input order (batch, then record), for the duplicate passes
BATCH_STRIDE = 2**36  # ROW = batch rank * stride + record number: room for 68 billion records a batch


def silver_code_version() -> str:
    return code_version(__name__)


def undo_unrecorded_commits(store: Store, paths: dict[str, str], report: dict[str, Any] | None, run_id: str) -> list[str]:
    """Restore each table to the version the report names when a killed run committed past it."""
    names = ("data", "quarantine")
    return delta.undo_unrecorded(store, {n: paths[n] for n in names}, {n: report["versions"][n] if report else None for n in names}, run_id)


def plan(report: dict[str, Any] | None, bronze: dict[str, Any], spec: CleaningSpec, code: str, bronze_schema: dict[str, str],
         full_refresh: bool) -> tuple[str, str]:
    """("full" | "incremental" | "unchanged", why) for this run.

    Silver's content depends on the bronze rows, the resolved cleaning spec and the code only, so a
    config change that leaves the spec as it was (say, the failure threshold) rebuilds nothing.
    """
    if full_refresh:
        return "full", "--full-refresh"
    if report is None:
        return "full", "first run"
    for what, before, now in (("cleaning spec", report["cleaning_spec"], spec.to_dict()), ("code", report["code_version"], code),
                              ("bronze columns", report.get("bronze_schema"), bronze_schema)):
        if before != now:
            return "full", f"{what} changed"
    if not spec.id_column and spec.deduplicate:
        return "full", "whole-row de-duplication without an id compares every row"
    if not set(report["bronze_batches"]) <= set(bronze["batches"]):
        return "full", "bronze lost batches the last run processed"
    if set(report["bronze_batches"]) == set(bronze["batches"]):
        return "unchanged", "no new bronze batch"
    return "incremental", f"{len(set(bronze['batches']) - set(report['bronze_batches']))} new bronze batch(es)"


def with_input_order(rows: pl.LazyFrame, batches: list[str]) -> pl.LazyFrame:
    """``rows`` with a number that grows with the input order: the batch's rank (ids sort by time), then the record's number.

    The rank comes from a join with the small table of batch ranks, which streams (a mapping
    expression over the batch column would hold the frame in memory).
    """
    ranks = pl.LazyFrame({BATCH: batches, ROW: list(range(len(batches)))}, schema={BATCH: pl.String, ROW: pl.Int64})
    return rows.join(ranks, on=BATCH, how="left").with_columns((pl.col(ROW) * BATCH_STRIDE + pl.col("_row")).alias(ROW))


def split_rows(rows: pl.LazyFrame, spec: CleaningSpec, scratch: str) -> dict[str, Any]:
    """Flag every row; return the flagged rows, the row numbers that failed (with reasons), the superseded ones and counts.

    One streaming pass writes row numbers, cleaned values and reasons to a scratch file; the
    duplicate passes then read only keys and row numbers (a window over the whole frame would
    hold every row in memory). With an id, copies inside one batch are duplicates and earlier
    batches' records of an id are superseded by the latest one.
    """
    raw_columns = [c for c in rows.collect_schema() if c not in (ROW, *LINEAGE_COLUMNS)]
    flag_rows(rows, spec, deduplicate=False).drop(raw_columns).sink_parquet(scratch, compression="lz4", statistics=False)
    flagged = pl.scan_parquet(scratch)
    by_id = bool(spec.id_column)
    batch_rank = pl.col(ROW) // BATCH_STRIDE  # an integer key: grouping by the batch id's text would hold every row's copy
    several = flagged.select(batch_rank.max() > batch_rank.min()).collect().item()
    # one batch needs no batch in the key (a smaller group-by), and nothing in it is superseded
    repeats = duplicate_rows(flagged, spec, ROW, within=batch_rank if by_id and several else None)  # counted either way
    if spec.deduplicate:
        flagged = mark_duplicates(flagged, spec, ROW, repeats)
    superseded = (duplicate_rows(flagged, spec, ROW, skip=repeats) if by_id and spec.deduplicate and several
                  else pl.Series(ROW, [], pl.Int64))  # only a later batch supersedes
    rows_in = flagged.select(pl.len()).collect().item()
    by_rule = count_reasons(flagged)
    quarantined = flagged.filter(pl.col(REASON).is_not_null()).select(pl.len()).collect().item()
    return {"flagged": flagged, "repeats": repeats.len(), "superseded": superseded, "rows_in": rows_in, "by_rule": by_rule,
            "quarantined": quarantined}


@small_morsels
def refine_to_silver(config: PipelineConfig, store: Store, full_refresh: bool = False) -> dict[str, Any]:
    paths = layout.silver_paths(store, config.dataset.name)
    tables = {layout.bronze_table(store, config.dataset.name): None, paths["data"]: None, paths["quarantine"]: None}
    with layer_writer(store, "silver", config.dataset.name), delta.reading(store, tables):
        return _refine(config, store, full_refresh)


def _refine(config: PipelineConfig, store: Store, full_refresh: bool) -> dict[str, Any]:
    ds = config.dataset
    paths = layout.silver_paths(store, ds.name)
    bronze = bronze_state(store, ds.name)
    run_id = delta.new_run_id()
    previous = silver_report(store, ds.name)
    undone = undo_unrecorded_commits(store, paths, previous, run_id)
    all_bronze = scan_bronze(store, ds.name, bronze["version"])
    bronze_schema = {c: str(t) for c, t in all_bronze.collect_schema().items() if c not in LINEAGE_COLUMNS}
    spec = resolve_cleaning_spec(ds, config.cleaning, all_bronze.head(SAMPLE_ROWS).collect(), source=f"bronze/{ds.name}")
    mode, why = plan(previous, bronze, spec, silver_code_version(), bronze_schema, full_refresh)
    if mode == "unchanged" and previous is not None:
        return {**previous, "mode": "unchanged", "why": why, "undone": undone}
    new_batches = sorted(set(bronze["batches"]) - set(previous["bronze_batches"])) if mode == "incremental" else bronze["batches"]
    source = scan_bronze(store, ds.name, bronze["version"], new_batches if mode == "incremental" else None)

    with tempfile.TemporaryDirectory(prefix="pipeline-silver-") as tmpdir:
        rows = with_input_order(source, bronze["batches"])
        split = split_rows(rows, spec, f"{tmpdir}/flagged.parquet")
        check_failure_rate(f"silver/{ds.name}", split["quarantined"], split["rows_in"], config.cleaning.max_failure_rate, split["by_rule"])
        flagged = split["flagged"]
        # at most cleaning.max_failure_rate of the rows, each a row number and a short reason
        reasons = flagged.filter(pl.col(REASON).is_not_null()).select(ROW, REASON).collect(engine="streaming")
        # the raw rows of those: first narrowed by record number alone, so that only candidates reach the join
        records = (reasons[ROW] % BATCH_STRIDE).unique().implode()
        candidates = with_input_order(source.filter(pl.col("_row").is_in(records)), bronze["batches"])
        failed = candidates.filter(pl.col(ROW).is_in(reasons[ROW].implode())).join(reasons.lazy(), on=ROW, how="left", maintain_order="left")
        keep = flagged.filter(pl.col(REASON).is_null())
        if not split["superseded"].is_empty():
            keep = keep.filter(~pl.col(ROW).is_in(split["superseded"].implode()))
        clean = clean_rows(keep, spec, keep=list(LINEAGE_COLUMNS))
        facts = {"layer": "silver", "mode": mode, "bronze_version": bronze["version"], "batches": len(new_batches)}
        updated = 0
        if mode == "full":
            data_version = delta.write(store, paths["data"], clean, mode="overwrite", run_id=run_id, facts=facts, change_feed=True)
        else:
            # by id, a later record updates the row; without an id, a batch's rows go in once (the merge
            # on the batch id makes a repeated run a no-op and a concurrent one a conflict)
            keys = [spec.id_column] if spec.id_column else [BATCH]
            data_version, metrics = delta.merge(store, paths["data"], clean.collect(engine="streaming"), keys=keys,
                                                update=bool(spec.id_column), run_id=run_id, facts=facts)
            updated = int(metrics.get("num_target_rows_updated", 0))
        delta.fault_point("silver:after-data")
        quarantine_version = delta.write(store, paths["quarantine"], quarantine_rows(failed, spec),
                                         mode="overwrite" if mode == "full" else "append", run_id=run_id, facts=facts)
        delta.fault_point("silver:after-quarantine")

    silver = delta.scan(store, paths["data"], data_version)
    schema = {c: str(t) for c, t in silver.collect_schema().items() if c not in LINEAGE_COLUMNS}
    table_rows, null_counts = delta.row_and_null_counts(store, paths["data"], data_version, list(schema))
    quarantine_total = delta.row_and_null_counts(store, paths["quarantine"], quarantine_version, [])[0]
    input_key = bronze["key"]
    report = validation_report(ds.name, split["rows_in"], split["quarantined"], config.cleaning.max_failure_rate, split["by_rule"],
                               null_counts, schema, previous["schema"] if previous else None, input_key, spec, silver_code_version())
    processed = sorted(set(previous["bronze_batches"]) | set(new_batches)) if mode == "incremental" else list(bronze["batches"])
    superseded_here = split["superseded"].len()
    report = {
        **report,
        "rows_out": report["rows_out"] - superseded_here,
        "null_rates": {c: (n / table_rows if table_rows else 0.0) for c, n in null_counts.items()},
        "fingerprint": delta.table_key(store, paths["data"], data_version),
        "mode": mode, "why": why, "undone": undone,
        "repeated_rows": split["repeats"], "repeats_quarantined": spec.deduplicate,
        "superseded_rows": superseded_here + updated, "table_rows": table_rows, "quarantine_rows": quarantine_total,
        "versions": {"data": data_version, "quarantine": quarantine_version, "bronze": bronze["version"]},
        "bronze_batches": processed, "bronze_schema": bronze_schema,
        "tables": {"data": store.relative(paths["data"]), "quarantine": store.relative(paths["quarantine"]),
                   "bronze": store.relative(layout.bronze_table(store, ds.name))},
        "created_at": datetime.now(timezone.utc).isoformat(),
    }
    store.write_json(layout.version_record(paths["reports"], data_version), report)
    delta.fault_point("silver:after-version-record")
    store.write_json(paths["report"], report)
    return report


@task(
    name="refine-silver",
    cache_key_fn=stage_cache_key("silver", "dataset", "cleaning", code_version=silver_code_version),
    **persisted_as_plain_json(),
)
def refine_silver(config: PipelineConfig, input_fingerprint: str, full_refresh: bool = False) -> dict[str, Any]:
    start = time.perf_counter()
    store = open_store(config)
    report = refine_to_silver(config, store, full_refresh)
    logger = get_run_logger()
    if report.get("undone"):
        logger.warning("silver: undid commits of an interrupted run that no report named: %s", report["undone"])
    if report["mode"] == "unchanged":
        logger.info("silver: %s; the layer is up to date (version %s)", report["why"], report["versions"]["data"])
    else:
        logger.info("silver (%s: %s): %d rows in, %d out, %d quarantined %s, %d superseded by later records", report["mode"], report["why"],
                    report["rows_in"], report["rows_out"], report["rows_quarantined"], report["quarantined_by_rule"], report["superseded_rows"])
    unchanged = report["mode"] == "unchanged"
    return {
        "layer": "silver", "status": "unchanged" if unchanged else "ran", "mode": report["mode"],
        "rows_in": 0 if unchanged else report["rows_in"], "rows_out": 0 if unchanged else report["rows_out"],
        "quarantined": 0 if unchanged else report["rows_quarantined"], "quarantined_by_rule": {} if unchanged else report["quarantined_by_rule"],
        "repeated_rows": 0 if unchanged else report["repeated_rows"], "repeats_quarantined": report["repeats_quarantined"],
        "superseded_rows": 0 if unchanged else report["superseded_rows"], "table_rows": report["table_rows"],
        "failure_rate": report["failure_rate"], "fingerprint": report["fingerprint"], "versions": report["versions"],
        "report": layout.silver_paths(store, config.dataset.name)["report"], "seconds": round(time.perf_counter() - start, 3),
    }
