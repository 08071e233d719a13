"""Silver: every bronze batch, cleaned, typed, de-duplicated and validated.

Rows that fail a rule go to the quarantine with a ``_reason``; nothing is silently dropped.
``validation_report.json`` is written last and is the layer's commit marker. When too many
rows fail, nothing is written at all and the previous silver layer stays as it was.
"""

from __future__ import annotations

import os
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
from pipeline_core.config import PipelineConfig
from pipeline_core.profiling import aggregate_in_passes
from pipeline_io import layout
from pipeline_io.parquet import write_parquet
from pipeline_io.store import Store, open_store
from pipeline_io.streaming import small_morsels
from tasks.bronze import bronze_fingerprint, scan_bronze
from tasks.caching import stage_cache_key
from tasks.code_version import code_version

SAMPLE_ROWS = 100_000  # rows the cleaning spec's type inference looks at
ROW = "__silver_row"  # input order, for the duplicate pass


def silver_code_version() -> str:
    return code_version(__name__)


@small_morsels
def refine_to_silver(config: PipelineConfig, store: Store) -> dict[str, Any]:
    ds = config.dataset
    bronze = scan_bronze(store, ds.name)
    input_fp = bronze_fingerprint(store, ds.name)
    sample = bronze.head(SAMPLE_ROWS).collect()
    spec = resolve_cleaning_spec(ds, config.cleaning, sample, source=f"bronze/{ds.name}")
    paths = layout.silver_paths(store, ds.name)
    previous = store.read_json(paths["report"]) if store.exists(paths["report"]) else None

    with tempfile.TemporaryDirectory(prefix="pipeline-silver-") as tmpdir:
        # One streaming pass flags every row but duplicates into a scratch file of row numbers,
        # cleaned values and reasons; a second reads only ids and row numbers to find those (a
        # window over the whole frame would hold every row in memory). The counts and the clean
        # output then read the scratch file, and the quarantine takes its raw values from bronze
        # by row number, which keeps the raw text out of the scratch file.
        flagged_path = os.path.join(tmpdir, "flagged.parquet")
        rows = bronze.with_row_index(ROW)
        raw_columns = [c for c in bronze.collect_schema() if c not in LINEAGE_COLUMNS]
        flagged_rows = flag_rows(rows, spec, deduplicate=False).drop(raw_columns)
        write_parquet(flagged_rows, flagged_path, compression="lz4", statistics=False)  # scratch: read once, then deleted
        flagged = pl.scan_parquet(flagged_path)
        repeats = duplicate_rows(flagged, spec, ROW)  # counted either way; quarantined only when de-duplicating
        if spec.deduplicate:
            flagged = mark_duplicates(flagged, spec, ROW, repeats)
        rows_in = flagged.select(pl.len()).collect().item()
        by_rule = count_reasons(flagged)
        quarantined = flagged.filter(pl.col(REASON).is_not_null()).select(pl.len()).collect().item()
        check_failure_rate(f"silver/{ds.name}", quarantined, rows_in, config.cleaning.max_failure_rate, by_rule)
        # at most cleaning.max_failure_rate of the rows, each a row number and a short reason
        reasons = flagged.filter(pl.col(REASON).is_not_null()).select(ROW, REASON).collect(engine="streaming")
        failed = rows.filter(pl.col(ROW).is_in(reasons[ROW].implode())).join(reasons.lazy(), on=ROW, how="left", maintain_order="left")
        store.write_parquet(quarantine_rows(failed, spec), paths["quarantine"])
        clean = clean_rows(flagged.filter(pl.col(REASON).is_null()), spec, keep=list(LINEAGE_COLUMNS))
        store.write_parquet(clean, paths["data"])

    silver = store.scan_parquet(paths["data"])
    schema = {c: str(t) for c, t in silver.collect_schema().items() if c not in LINEAGE_COLUMNS}
    null_counts = aggregate_in_passes(silver, list(schema), lambda c: [pl.col(c).null_count()])
    report = validation_report(ds.name, rows_in, quarantined, config.cleaning.max_failure_rate, by_rule, null_counts, schema,
                               previous["schema"] if previous else None, input_fp, spec, silver_code_version())
    report = {**report, "repeated_rows": repeats.len(), "repeats_quarantined": spec.deduplicate,
              "created_at": datetime.now(timezone.utc).isoformat(), "paths": {k: store.relative(v) for k, v in paths.items()}}
    store.write_json(paths["report"], report)
    return report


@task(
    name="refine-silver",
    cache_key_fn=stage_cache_key("silver", "dataset", "cleaning", code_version=silver_code_version),
    persist_result=True,
)
def refine_silver(config: PipelineConfig, input_fingerprint: str) -> dict[str, Any]:
    start = time.perf_counter()
    store = open_store(config)
    report = refine_to_silver(config, store)
    get_run_logger().info(
        "silver: %d rows in, %d out, %d quarantined %s", report["rows_in"], report["rows_out"],
        report["rows_quarantined"], report["quarantined_by_rule"],
    )
    return {
        "layer": "silver", "status": "ran", "rows_in": report["rows_in"], "rows_out": report["rows_out"],
        "quarantined": report["rows_quarantined"], "quarantined_by_rule": report["quarantined_by_rule"],
        "repeated_rows": report["repeated_rows"], "repeats_quarantined": report["repeats_quarantined"],
        "failure_rate": report["failure_rate"], "fingerprint": report["fingerprint"],
        "report": layout.silver_paths(store, config.dataset.name)["report"], "seconds": round(time.perf_counter() - start, 3),
    }
