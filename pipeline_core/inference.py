"""Batch scoring: raw records -> the registered model's own cleaning and features -> predictions.

Nothing here re-implements a step of training: each chunk goes through `with_cleaned`'s stages and
the model's `feature_rows`, i.e. the code the silver and gold layers ran. Input is streamed chunk by
chunk (CSV columns as text, as at ingest), output is written chunk by chunk to a temporary file
and published whole, so memory follows the chunk size and a failed run leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from pipeline_core.allocator import reuse_freed_memory
from pipeline_core.cleaning import (
    CLEAN, FAILED, PRESENT, REASON, CleaningSpec, CleaningStages, cleaning_stages, failed_expr, parsed_column, reason_expr,
)
from pipeline_core.concurrency import limit_threads
from pipeline_core.config import PipelineConfig, S3Settings
from pipeline_core.drift import DriftAccumulator, reference_columns, report_markdown
from pipeline_core.errors import ConfigError, DataError, StorageError
from pipeline_core.overlap import SerialWorker, map_ahead
from pipeline_core.parquet_writer import ParquetChunkWriter
from pipeline_core.serving import feature_rows
from pipeline_core.sources import detect_format, fetch_http, fetch_s3, scan_source
from pipeline_core.storage import is_s3, s3_filesystem

OUTPUT_COLUMNS = ("prediction", "probability", "inference_timestamp", "model_name", "model_version")
MODEL_SCHEMES = ("models:/", "runs:/")
Progress = Callable[[int, int], None]


@dataclass
class ScoringModel:
    uri: str
    name: str | None
    version: str | None
    run_id: str | None
    model: Any  # the RawRecordClassifier inside the MLflow pyfunc
    input_columns: list[str]


def default_model_uri(config: PipelineConfig) -> str:
    from pipeline_core.tracking import registered_model_name

    return f"models:/{registered_model_name(config)}@{config.inference.model_alias}"


def _registry_version(client: Any, uri: str) -> tuple[str | None, str | None]:
    """(name, version) that a models:/ URI points at; (None, None) for runs:/."""
    if not uri.startswith("models:/"):
        return None, None
    ref = uri[len("models:/"):]
    if "@" in ref:
        name, alias = ref.split("@", 1)
        try:
            return name, str(client.get_model_version_by_alias(name, alias).version)
        except Exception:
            raise ConfigError(f"model '{name}' has no version with alias '{alias}'; train one (`pipeline-cli train`), "
                              f"promote one (`pipeline-cli models promote`) or pass --model") from None
    name, _, version = ref.partition("/")
    return name, version or None


def load_scoring_model(uri: str, client: Any) -> ScoringModel:
    """The pyfunc behind a models:/ or runs:/ URI, with its registry name, version and input columns."""
    import mlflow

    if not uri.startswith(MODEL_SCHEMES):
        raise ConfigError(f"--model {uri!r}: use models:/<name>/<version>, models:/<name>@<alias> or runs:/<run id>/model")
    name, version = _registry_version(client, uri)
    try:
        pyfunc = mlflow.pyfunc.load_model(uri)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ConfigError(f"--model {uri}: cannot load it ({first}); `pipeline-cli models describe NAME` lists the versions") from None
    inner = pyfunc.unwrap_python_model()
    if not all(hasattr(inner, a) for a in ("cleaning", "features", "pipeline", "threshold")):
        raise ConfigError(f"--model {uri}: not a model logged by this pipeline (it lacks the raw-record cleaning and features)")
    schema = pyfunc.metadata.get_input_schema()
    columns = schema.input_names() if schema is not None else list(inner.cleaning["renames"])
    return ScoringModel(uri, name, version, pyfunc.metadata.run_id, inner, [str(c) for c in columns])


def inference_spec(cleaning: dict[str, Any], rules: bool) -> CleaningSpec:
    """Training's cleaning spec for scoring: no de-duplication, no rule on the target or the id.

    Uncastable values always quarantine a row; the silver rules (ranges, allowed values,
    not-null) do too unless ``rules`` is off, since the model never saw rows that break them.
    """
    spec = CleaningSpec.from_dict(cleaning)
    skip = {spec.target, spec.id_column}
    keep = (lambda c: c not in skip) if rules else (lambda c: False)
    return replace(spec, deduplicate=False, not_null=[c for c in spec.not_null if keep(c)],
                   ranges={c: r for c, r in spec.ranges.items() if keep(c)},
                   allowed_values={c: v for c, v in spec.allowed_values.items() if keep(c)})


def check_input_columns(columns: list[str], model: ScoringModel, source: str) -> None:
    id_raw = next((raw for raw, new in model.model.cleaning["renames"].items() if new == model.model.cleaning.get("id_column")), None)
    missing = [c for c in model.input_columns if c not in columns and c != id_raw]
    if missing:
        raise DataError(f"{source}: missing required column(s) {', '.join(missing)}; the model reads {', '.join(model.input_columns)}")
    clash = [c for c in OUTPUT_COLUMNS if c in columns]
    if clash:
        raise DataError(f"{source}: column(s) {', '.join(clash)} would be overwritten by the predictions; rename them first")


@dataclass
class FlaggedChunk:
    good: pl.DataFrame  # input columns of the rows that can be scored, numbers read as text parsed
    features: pl.DataFrame  # their features, as `feature_rows` makes them
    quarantined: pl.DataFrame  # input columns as text + _reason
    model_input: Any = None  # the features as the model's scikit-learn pipeline reads them

    @property
    def rows(self) -> int:
        return self.good.height + self.quarantined.height


@dataclass
class ScoredChunk:
    scored: pl.DataFrame  # input columns + prediction columns, in input order
    quarantined: pl.DataFrame  # input columns as text + _reason
    features: pl.DataFrame
    probabilities: np.ndarray
    predictions: np.ndarray


@dataclass(frozen=True)
class ChunkPlan:
    """The expressions `flag_chunk` applies to chunks of one input schema, built once per input.

    Rebuilding them for every chunk cost about 6 ms of Python per chunk (a third of flagging a
    small chunk), run under the GIL beside the model.
    """

    schema: pl.Schema  # of the input chunks
    cleaning: CleaningStages
    kept: tuple[pl.Expr, ...]  # input columns (numbers parsed), cleaned values, presence flags, the failure flag
    as_text: tuple[pl.Expr, ...]  # input columns as text, for the quarantine
    reason: pl.Expr


def chunk_plan(schema: pl.Schema, spec: CleaningSpec) -> ChunkPlan:
    cleaning = cleaning_stages(schema, spec, keep_parsed=True)
    staged = cleaning.apply(pl.LazyFrame(schema=schema)).collect_schema()
    originals = [pl.col(parsed_column(c)).alias(c) if parsed_column(c) in staged else pl.col(c) for c in schema]
    helpers = [pl.col(c) for c in staged if c.startswith((CLEAN, PRESENT))]
    return ChunkPlan(schema, cleaning, (*originals, *helpers, failed_expr(spec, staged)),
                     tuple(pl.col(c).cast(pl.String) for c in schema), reason_expr(spec, staged))


def flag_chunk(model: Any, raw: pl.DataFrame, spec: CleaningSpec, plan: ChunkPlan | None = None) -> FlaggedChunk:
    """Flag rows that cannot be scored, and featurise the rest with the model's own code.

    ``plan`` (from `chunk_plan` for ``raw``'s schema) saves rebuilding the expressions for every chunk.
    """
    if plan is None or plan.schema != raw.schema:
        plan = chunk_plan(raw.schema, spec)
    # Keep only what the steps below read, and stay lazy: each eager step on the wide staged frame
    # (raw, parsed, cleaned and presence columns) cost about as much as the cleaning itself.
    # (Staging the whole input as one streamed query was no faster and held 300 MiB more: polars
    # reads that far ahead of the model.)
    flagged = plan.cleaning.apply(raw.lazy()).select(plan.kept).collect()
    bad = flagged.get_column(FAILED)
    good = flagged.lazy().filter(~pl.col(FAILED))
    features = feature_rows(good, model.cleaning, model.features).collect()
    outputs = good.select(raw.columns).collect()
    if bad.any():  # reasons are joined for the few failing rows only: for every row it cost a third of the cleaning
        quarantined = pl.concat([raw.lazy().filter(bad).select(plan.as_text),
                                 flagged.lazy().filter(pl.col(FAILED)).select(plan.reason)], how="horizontal").collect()
    else:
        quarantined = pl.DataFrame(schema=dict.fromkeys([*raw.columns, REASON], pl.String))
    return FlaggedChunk(outputs, features, quarantined, model.model_input(features) if outputs.height else None)


def predict_chunk(model: Any, flagged: FlaggedChunk, threshold: float, stamp: datetime,
                  name: str | None, version: str | None) -> ScoredChunk:
    """The model's probabilities for the rows that can be scored, appended to their input columns."""
    proba = model.pipeline.predict_proba(flagged.model_input)[:, 1] if flagged.good.height else np.zeros(0)
    pred = (proba >= threshold).astype("int64")
    scored = flagged.good.with_columns(
        pl.Series("prediction", pred, dtype=pl.Int64),
        pl.Series("probability", proba, dtype=pl.Float64),
        pl.lit(stamp, dtype=pl.Datetime("us", "UTC")).alias("inference_timestamp"),
        pl.lit(name or "", dtype=pl.String).alias("model_name"),
        pl.lit(version or "", dtype=pl.String).alias("model_version"),
    )
    return ScoredChunk(scored, flagged.quarantined, flagged.features, proba, pred)


def score_chunk(model: Any, raw: pl.DataFrame, spec: CleaningSpec, threshold: float, stamp: datetime,
                name: str | None, version: str | None) -> ScoredChunk:
    """Flag, featurise and score one chunk of raw records."""
    return predict_chunk(model, flag_chunk(model, raw, spec), threshold, stamp, name, version)


# -- I/O edges -----------------------------------------------------------------------

def fetch_input(uri: str, s3: S3Settings, staging: Path, timeout: float = 60.0) -> Path:
    """A local path with the input's bytes (the input itself when it is local)."""
    if uri.startswith(("http://", "https://")):
        return fetch_http(uri, staging / (Path(uri.split("?", 1)[0]).name or "input"), timeout)
    if is_s3(uri):
        return fetch_s3(uri, staging / Path(uri).name, s3)
    path = Path(uri).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: input file not found")
    return path


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


def local_temp_for(uri: str, staging: Path) -> Path:
    """Where to build a file bound for ``uri``: beside it when local (so a rename publishes it), else in staging."""
    if is_s3(uri):
        return staging / f"{uuid.uuid4().hex}-{Path(uri).name}"
    target = Path(uri).expanduser().resolve()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"{target.parent}: cannot create the output folder ({exc.strerror})") from None
    return target.with_name(f".tmp-{uuid.uuid4().hex}-{target.name}")


def publish(local: Path, uri: str, s3: S3Settings) -> str:
    if is_s3(uri):
        try:
            s3_filesystem(s3).put_file(str(local), uri)
        except Exception as exc:  # botocore raises many types for one cause
            raise StorageError(f"{uri}: cannot write ({str(exc).splitlines()[0][:200]})") from None
        return uri
    target = Path(uri).expanduser().resolve()
    os.replace(local, target)
    return str(target)


def sibling(uri: str, suffix: str) -> str:
    """``out/preds.parquet`` -> ``out/preds<suffix>``: reports and quarantine sit beside the predictions."""
    base = uri[: -len(".parquet")] if uri.endswith(".parquet") else uri
    return base + suffix


def expand_output(uri: str, stamp: datetime) -> str:
    """Fill ``{timestamp}`` / ``{date}`` so that a scheduled run writes a new file each time."""
    return uri.replace("{timestamp}", stamp.strftime("%Y%m%dT%H%M%SZ")).replace("{date}", stamp.strftime("%Y-%m-%d"))


def score_file(config: PipelineConfig, model: ScoringModel, input_uri: str, output_uri: str, *, gold_metadata: dict[str, Any] | None,
               threshold: float | None = None, allow_empty: bool = False, progress: Progress | None = None) -> dict[str, Any]:
    """Score INPUT into OUTPUT (+ quarantine) chunk by chunk; return the summary and the drift counts."""
    start = time.perf_counter()
    stamp = datetime.now(timezone.utc)
    output_uri = expand_output(output_uri, stamp)
    if not output_uri.endswith(".parquet"):
        raise ConfigError(f"OUTPUT {output_uri}: predictions are written as Parquet; give a path ending in .parquet")
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
        local = fetch_input(input_uri, s3, staging)
        fmt = detect_format(str(local) if not is_s3(input_uri) else input_uri)
        source = scan_source(local, fmt, None, config.dataset.csv_separator, allow_empty=True)
        total, schema, chunks = read_chunks(source, config.inference.chunk_size)
        check_input_columns(list(schema), model, input_uri)
        if total == 0 and not allow_empty:
            raise DataError(f"{input_uri}: no rows to score; pass --allow-empty to write an empty output with the prediction columns")
        out_tmp, q_tmp = local_temp_for(output_uri, staging), local_temp_for(sibling(output_uri, ".quarantine.parquet"), staging)
        out, quarantine = ParquetChunkWriter(str(out_tmp)), ParquetChunkWriter(str(q_tmp))
        try:
            done = 0
            # Three stages one chunk apart: a worker cleans and featurises the next chunk (polars, then
            # the pandas frame the model reads) and another writes the previous one (pyarrow) and counts
            # it for drift, while this thread runs only the model's scikit-learn pipeline, which holds
            # the GIL for much of its time and uses one core for its preprocessing.
            # The model gets one OpenMP thread: the other core is busy beside it, and XGBoost's second
            # thread spin-waiting between calls took CPU from those stages (1M rows: 5.3 s -> 4.4 s,
            # identical probabilities). The estimator is a small share of the work (0.2 of 7.3 CPU s
            # per 1M rows), so one thread costs little on a larger machine either.
            # The writer runs at a lower priority: the model is the critical path, and a write only has
            # to end before the next chunk's (2 cores, runs alternated in one process: median 2.51 -> 2.40 s
            # over six runs of 1M rows each way, 4.70 -> 4.57 s over four of 2M).
            with limit_threads(1), reuse_freed_memory(), SerialWorker(background=True) as writer:
                plan = chunk_plan(schema, spec)
                for flagged in map_ahead(lambda raw: flag_chunk(inner, raw, spec, plan), chunks):
                    chunk = predict_chunk(inner, flagged, cut, stamp, model.name, model.version)
                    writer.submit(write_chunk, out, quarantine, chunk, drift)
                    done += flagged.rows
                    if progress:
                        progress(done, total)
            if out.rows and quarantine.rows:
                out.close()
                quarantine.close()
            else:  # an empty chunk gives a file without rows its columns; built only then, as it costs a small batch's scoring
                empty = score_chunk(inner, pl.DataFrame(schema=schema), spec, cut, stamp, model.name, model.version)
                out.close(empty.scored)
                quarantine.close(empty.quarantined)
            report = drift_summary(drift, config, gold_metadata, model)
            title = f"Drift of {Path(output_uri).name} ({model.name or model.uri} v{model.version or '-'})"
            reports = {".drift.json": json.dumps(report, indent=2, default=str), ".drift.md": report_markdown(report, title)}
            published = {"quarantine": publish(q_tmp, sibling(output_uri, ".quarantine.parquet"), s3)}
            for suffix, text in reports.items():
                path = local_temp_for(sibling(output_uri, suffix), staging)
                path.write_text(text)
                published[suffix.strip(".").replace(".", "_")] = publish(path, sibling(output_uri, suffix), s3)
            published["output"] = publish(out_tmp, output_uri, s3)  # last: predictions appear only when all is done
        finally:
            out_tmp.unlink(missing_ok=True)
            q_tmp.unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    return {
        "input": input_uri, **published, "rows_in": total, "rows_scored": out.rows,
        "rows_quarantined": quarantine.rows, "positives": drift.positives,
        "positive_rate": round(drift.positives / out.rows, 6) if out.rows else None,
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
