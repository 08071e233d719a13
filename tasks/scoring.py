"""Batch scoring at the edge: stream a raw input through `pipeline_core.scoring` into predictions,
quarantine and drift reports, published whole; plus the tasks that run it and publish the report.

Input is streamed chunk by chunk (CSV columns as text, as at ingest), output is written chunk by
chunk to a temporary file and published whole, so memory follows the chunk size and a failed run
leaves nothing behind.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from pipeline_core import progress
from pipeline_core.config import PipelineConfig
from pipeline_core.drift import DriftAccumulator, reference_columns, report_markdown
from pipeline_core.errors import ConfigError, DataError
from pipeline_core.modeling.concurrency import limit_threads
from pipeline_core.outputs import fill_output_template
from pipeline_core.redaction import redact, reveal
from pipeline_core.scoring import (
    ScoredChunk,
    ScoringModel,
    check_input_columns,
    chunk_plan,
    flag_chunk,
    inference_spec,
    predict_chunk,
    score_chunk,
    shadow_probabilities,
    with_shadow,
)
from pipeline_io import layout, records, registry
from pipeline_io.atomic import Publication, staged_path
from pipeline_io.overlap import SerialWorker, map_ahead
from pipeline_io.parquet import ParquetChunkWriter
from pipeline_io.process_tuning import reuse_freed_memory
from pipeline_io.s3 import is_s3
from pipeline_io.sources import detect_format, fetch_to_local, http_headers, scan_source
from pipeline_io.store import open_store
from tasks.caching import retry_transient

Progress = Callable[[int, int], None]


def read_chunks(frame: pl.LazyFrame, chunk_size: int) -> tuple[int, pl.Schema, Iterator[pl.DataFrame]]:
    """Row count, schema and the rows in chunks of ``chunk_size``, streamed from the source.

    polars' streaming engine parses ahead on its own threads while a chunk is scored and holds a
    bounded read-ahead, not the file, so there is no need to stage a CSV as Parquet first (that
    parsed and wrote the whole file before scoring began, then read it back). The count is cheap:
    polars counts CSV rows without parsing fields and reads it from Parquet metadata.
    """
    total = int(frame.select(pl.len()).collect().item())
    schema = frame.collect_schema()
    # lazy: nothing is read until the first chunk is asked for, i.e. after the input checks pass.
    # A streamed chunk arrives in several pieces per column; cleaning them costs the same as
    # cleaning a contiguous copy, so no copy is made.
    return total, schema, iter(frame.collect_batches(chunk_size=chunk_size, lazy=True))


def write_chunk(out: ParquetChunkWriter, quarantine: ParquetChunkWriter, chunk: ScoredChunk, drift: DriftAccumulator | None = None) -> None:
    """Append the chunk's predictions and quarantined rows, and count it into ``drift``."""
    out.write(chunk.scored)
    if chunk.quarantined.height:
        quarantine.write(chunk.quarantined)
    if drift is not None:
        drift.update(chunk.features, chunk.probabilities, chunk.predictions)


def sibling(uri: str, suffix: str) -> str:
    """``out/preds.parquet`` -> ``out/preds<suffix>``: reports and quarantine sit beside the predictions."""
    base = uri[: -len(".parquet")] if uri.endswith(".parquet") else uri
    return base + suffix


def same_location(a: str, b: str) -> bool:
    """Whether two local paths or URLs name the same file (local paths resolved, symlinks followed)."""
    if "://" in a or "://" in b:
        return a.rstrip("/") == b.rstrip("/")
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def score_file(config: PipelineConfig, model: ScoringModel, input_uri: str, output_uri: str, *, gold_metadata: dict[str, Any] | None,
               threshold: float | None = None, allow_empty: bool = False, progress: Progress | None = None,
               record: Callable[[dict[str, Any]], Any] | None = None, shadow: ScoringModel | None = None) -> dict[str, Any]:
    """Score INPUT into OUTPUT (+ quarantine) chunk by chunk; return the summary and the drift counts.

    ``record`` (the batch's monitoring record) is written with the files: when it fails, the files
    are taken back and the ones they replaced restored. ``shadow`` (the challenger) also scores every
    scored row; its probability goes beside the served one's and decides nothing."""
    start = time.perf_counter()
    stamp = datetime.now(timezone.utc)
    shown = redact(input_uri)
    output_uri = fill_output_template(output_uri, stamp)
    if not output_uri.endswith(".parquet"):
        raise ConfigError(f"OUTPUT {output_uri}: predictions are written as Parquet; give a path ending in .parquet")
    if same_location(input_uri, output_uri):
        raise ConfigError(f"OUTPUT {output_uri} is the INPUT: predictions would replace the records they score; give another path")
    s3 = config.store.s3
    inner = model.model
    cut = float(threshold if threshold is not None else inner.threshold)
    if not 0 <= cut <= 1:
        raise ConfigError(f"--threshold {cut}: must be between 0 and 1")
    spec = inference_spec(inner.cleaning, config.inference.quarantine_rules)
    reference = reference_columns(gold_metadata, [*inner.numeric, *inner.categorical]) if gold_metadata else {}
    drift = DriftAccumulator(reference, getattr(inner, "prediction_reference", None))
    with tempfile.TemporaryDirectory(prefix="pipeline-inference-") as tmp:
        staging = Path(tmp)
        http = config.dataset.http
        local = fetch_to_local(input_uri, s3, staging, http.timeout_seconds, "input file",
                               headers=http_headers(http, config.dataset.source, reveal(input_uri)))
        fmt = detect_format(str(local) if not is_s3(input_uri) else input_uri)
        source = scan_source(local, fmt, None, config.dataset.csv_separator, allow_empty=True, shown=shown)
        total, schema, chunks = read_chunks(source, config.inference.chunk_size)
        check_input_columns(list(schema), model, shown)
        if total == 0 and not allow_empty:
            raise DataError(f"{shown}: no rows to score; pass --allow-empty to write an empty output with the prediction columns")
        out_tmp, q_tmp = staged_path(output_uri, staging), staged_path(sibling(output_uri, ".quarantine.parquet"), staging)
        out, quarantine = ParquetChunkWriter(str(out_tmp)), ParquetChunkWriter(str(q_tmp))
        try:
            done = 0
            # Three stages one chunk apart: a worker cleans and featurises the next chunk and another
            # writes the previous one and counts it for drift, while this thread runs only the model,
            # the critical path (so the writer runs at a lower priority). The model gets one OpenMP
            # thread: a second one spin-waiting between calls takes CPU from the stages beside it.
            with limit_threads(1), reuse_freed_memory(), SerialWorker(background=True) as writer:
                plan = chunk_plan(schema, spec)
                for flagged in map_ahead(lambda raw: flag_chunk(inner, raw, spec, plan), chunks):
                    chunk = predict_chunk(inner, flagged, cut, stamp, model.name, model.version)
                    if shadow is not None:
                        chunk = with_shadow(chunk, shadow_probabilities(shadow.model, inner, flagged), shadow.version)
                    writer.submit(write_chunk, out, quarantine, chunk, drift)
                    done += flagged.rows
                    if progress:
                        progress(done, total)
            if total and not out.rows and not allow_empty:
                quarantine.close()
                # a row's _reason lists every rule it broke: count the rules, not the combinations
                reasons = pl.read_parquet(q_tmp, columns=["_reason"])["_reason"].str.split("; ").explode().value_counts(sort=True).head(3).rows()
                raise DataError(f"{shown}: every one of its {total} rows failed the cleaning rules, so nothing was scored "
                                f"(most often: {'; '.join(f'{r} ({n})' for r, n in reasons)}); fix the input, or pass "
                                "--allow-empty to record the batch and write its quarantine file")
            if out.rows and quarantine.rows:
                out.close()
                quarantine.close()
            else:  # an empty chunk gives a file without rows its columns
                empty = score_chunk(inner, pl.DataFrame(schema=schema), spec, cut, stamp, model.name, model.version)
                if shadow is not None:
                    empty = with_shadow(empty, np.zeros(0), shadow.version)
                out.close(empty.scored)
                quarantine.close(empty.quarantined)
            report = drift_summary(drift, config, gold_metadata, model)
            title = f"Drift of {Path(output_uri).name} ({model.name or model.uri} v{model.version or '-'})"
            reports = {".drift.json": json.dumps(report, indent=2, default=str), ".drift.md": report_markdown(report, title)}
            staged = {"quarantine": (q_tmp, sibling(output_uri, ".quarantine.parquet"))}
            for suffix, text in reports.items():
                path = staged_path(sibling(output_uri, suffix), staging)
                path.write_text(text)
                staged[suffix.strip(".").replace(".", "_")] = (path, sibling(output_uri, suffix))
            staged["output"] = (out_tmp, output_uri)  # last: predictions appear only when all is done
            # predictions, quarantine, drift reports and the batch's monitoring record: all of them or none
            with Publication(s3) as unit:
                published = {key: unit.publish(local, uri) for key, (local, uri) in staged.items()}
                summary = batch_summary(shown, published, total, out.rows, quarantine.rows, drift.positives, cut, model, stamp,
                                        time.perf_counter() - start, report)
                if shadow is not None:
                    summary["shadow"] = {"uri": shadow.uri, "name": shadow.name, "version": shadow.version,
                                         "run_id": shadow.run_id, "threshold": float(shadow.model.threshold)}
                if record is not None:
                    summary["record"] = record(summary)
        finally:
            out_tmp.unlink(missing_ok=True)
            q_tmp.unlink(missing_ok=True)
    return summary


def batch_summary(shown: str, published: dict[str, str], total: int, scored: int, quarantined: int, positives: int, cut: float,
                  model: ScoringModel, stamp: datetime, seconds: float, report: dict[str, Any]) -> dict[str, Any]:
    return {
        "input": shown, **published, "rows_in": total, "rows_scored": scored,
        "rows_quarantined": quarantined, "positives": positives,
        "positive_rate": round(positives / scored, 6) if scored else None,
        "threshold": cut, "model": {"uri": model.uri, "name": model.name, "version": model.version, "run_id": model.run_id},
        "inference_timestamp": stamp.isoformat(), "seconds": round(seconds, 3),
        "rows_per_second": round(total / seconds, 1) if seconds else None,
        "unseen_category_values": sum(f.get("unseen_count", 0) for f in report["features"]),
        "drift_status": report["status"], "drift": report,
    }


def drift_summary(drift: DriftAccumulator, config: PipelineConfig, gold_metadata: dict[str, Any] | None,
                  model: ScoringModel) -> dict[str, Any]:
    if not drift.reference:
        return {"status": "no_reference", "rows": drift.rows, "alerts": [], "features": [], "prediction": {},
                "note": f"no gold metadata for dataset '{config.dataset.name}' in {config.store.root}: feature drift not judged"}
    report = drift.report(config.monitoring)
    report["reference"] = {"feature_version": gold_metadata.get("feature_version") if gold_metadata else None,
                           "rows": gold_metadata.get("row_count") if gold_metadata else None}
    return report


def no_shadow_line(name: str) -> str:
    return f"no shadow: {name} has no challenger other than the served version, so the batch was scored by the served model alone"


def shadow_model(config: PipelineConfig, client: Any, served: ScoringModel) -> ScoringModel | None:
    """The challenger, to score beside the served model; None (with a warning) when there is no other one."""
    name = registry.registered_model_name(config)
    challenger = registry.alias_version(client, name, registry.CHALLENGER)
    if challenger is None or (served.name == name and str(served.version) == challenger):
        get_run_logger().warning(no_shadow_line(name))
        return None
    return registry.load_scoring_model(f"models:/{name}/{challenger}", client)


@task(name="score-batch", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[2, 8], retry_condition_fn=retry_transient)
def score_batch(config: PipelineConfig, input_uri: str, output_uri: str, model_uri: str | None, threshold: float | None,
                allow_empty: bool, shadow: bool = False) -> dict[str, Any]:
    """Score one batch with the registered model (and, with ``shadow``, the challenger) and keep its record for `monitor`."""
    client, _ = registry.connect(config, through_server=True, existing=True)  # no model to score with in a store not made yet
    model = registry.load_scoring_model(model_uri or registry.default_model_uri(config), client)
    challenger = shadow_model(config, client, model) if shadow else None
    store = open_store(config)
    meta_uri = layout.gold_paths(store, config.dataset.name)["metadata"]
    gold_metadata = store.read_json(meta_uri) if store.exists(meta_uri) else None  # the reference of the drift checks
    summary = score_file(config, model, input_uri, output_uri, gold_metadata=gold_metadata, threshold=threshold,
                         allow_empty=allow_empty, progress=lambda done, total: progress.report("scoring", done, total),
                         record=lambda s: records.record_batch(store, config.dataset.name, s), shadow=challenger)
    if shadow and challenger is None:  # asked for and not done: the console says so, not only the log file
        summary["shadow_skipped"] = no_shadow_line(registry.registered_model_name(config))
    get_run_logger().info("scored %d of %d rows (%d quarantined) with %s in %.1fs; drift: %s", summary["rows_scored"],
                          summary["rows_in"], summary["rows_quarantined"], model.uri, summary["seconds"], summary["drift_status"])
    return summary


@task(name="publish-drift-report", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def publish_drift(config: PipelineConfig, summary: dict[str, Any]) -> str:
    """The drift report as an MLflow run of the experiment and as a Prefect artifact."""
    from prefect.artifacts import create_markdown_artifact

    _, experiment_id = registry.connect(config, through_server=True)
    model = summary["model"]
    markdown = report_markdown(summary["drift"], f"Drift of {summary['output']} ({model['name'] or model['uri']} v{model['version'] or '-'})")
    run_id = registry.log_inference_run(experiment_id, summary, markdown)
    create_markdown_artifact(key=f"drift-{config.dataset.name}".lower().replace("_", "-").replace(".", "-"), markdown=markdown,
                             description=f"{summary['rows_scored']} rows scored; drift status {summary['drift_status']}")
    for alert in summary["drift"].get("alerts", []):
        get_run_logger().warning("drift: %s", alert)
    return run_id
