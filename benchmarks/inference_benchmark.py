"""Batch inference throughput and memory: raw CSV -> predictions Parquet beside the bare estimator.

Usage (from the repository root)::

    .venv/bin/python benchmarks/inference_benchmark.py --rows 1000000 [--model xgboost] [--chunk-size 100000]

Steps: build the layers and train one model (tuning off) on 30,000 demo rows in a scratch store
under ``benchmarks/work/``; generate a raw credit CSV of ``--rows`` rows; then, each in its own
child process so that peak RSS (``ru_maxrss``) is the step's own:

- ``pipeline``: `pipeline_core.inference.score_file` on the CSV (staging, cleaning, features,
  model, drift counts, output + quarantine + reports), the work `pipeline-cli predict` does
  without Prefect's fixed start-up;
- ``bare``: the same rows featurised and preprocessed first (untimed), then only the fitted
  estimator's ``predict_proba`` on that numeric array (timed), and the sklearn pipeline's
  ``predict_proba`` on the feature frame (timed).

Results go to ``benchmarks/INFERENCE_RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / "work" / "inference"
RESULTS = REPO / "benchmarks" / "INFERENCE_RESULTS.md"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def overrides(model: str) -> list[str]:
    return [f"dataset.source={WORK / 'train.csv'}", f"store.root={WORK / 'store'}", "training.tuning.enabled=false",
            f"training.models={{{model}: {{}}}}", "mlflow.min_metrics={}", "dataset.name=bench_inference"]


def prepare(model: str, rows: int) -> Path:
    """A trained champion in the scratch store and the raw batch to score."""
    from pipeline_core import demo_data

    WORK.mkdir(parents=True, exist_ok=True)
    if not (WORK / "train.csv").exists():
        demo_data.write_csv(demo_data.credit_default_frame(30_000, seed=42), WORK / "train.csv")
    batch = WORK / f"batch_{rows}.csv"
    if not batch.exists():
        demo_data.write_csv(demo_data.credit_default_frame(rows, seed=7), batch)
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from flows.layers import run_flow

    run_flow(str(REPO / "configs" / "credit_default.yaml"), overrides(model))
    return batch


def _load(model: str) -> tuple[Any, Any]:
    from pipeline_core import inference, tracking
    from pipeline_core.config import load_config

    config = load_config(REPO / "configs" / "credit_default.yaml", overrides(model))
    client, _ = tracking.connect(config)
    return config, inference.load_scoring_model(inference.default_model_uri(config), client)


def child_pipeline(model: str, batch: str, chunk: str) -> dict[str, Any]:
    from pipeline_core.gold import gold_paths
    from pipeline_core.inference import score_file
    from pipeline_core.storage import Store

    config, scoring = _load(model)
    config = config.model_copy(update={"inference": config.inference.model_copy(update={"chunk_size": int(chunk)})})
    store = Store(config.store.root)
    meta = store.read_json(gold_paths(store, config.dataset.name)["metadata"])
    start = time.perf_counter()
    out = score_file(config, scoring, batch, str(WORK / "predictions.parquet"), gold_metadata=meta)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows": out["rows_in"], "scored": out["rows_scored"], "drift": out["drift_status"]}


def child_bare(model: str, batch: str) -> dict[str, Any]:
    import polars as pl

    from pipeline_core.serving import feature_frame
    from pipeline_core.training import to_pandas_features

    _, scoring = _load(model)
    inner = scoring.model
    raw = pl.read_csv(batch, infer_schema=False)
    X = to_pandas_features(feature_frame(raw, inner.cleaning, inner.features), inner.numeric, inner.categorical)
    arr = inner.pipeline.named_steps["pre"].transform(X)
    est = inner.pipeline.named_steps["model"]
    start = time.perf_counter()
    est.predict_proba(arr)
    estimator_s = time.perf_counter() - start
    start = time.perf_counter()
    inner.pipeline.predict_proba(X)
    pipeline_s = time.perf_counter() - start
    return {"rows": raw.height, "estimator_seconds": estimator_s, "sklearn_pipeline_seconds": pipeline_s}


def run_child(kind: str, *args: str) -> dict[str, Any]:
    code = (f"import json, resource, sys; sys.path.insert(0, {str(REPO)!r}); import benchmarks.inference_benchmark as b; "
            f"r = b.child_{kind}(*{list(args)!r}); r['peak_rss_mib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024; "
            "print('RESULT' + json.dumps(r))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--model", default="xgboost")
    parser.add_argument("--chunk-size", type=int, default=100_000)
    args = parser.parse_args()
    lines = []
    for rows in args.rows:
        batch = prepare(args.model, rows)
        pipe = run_child("pipeline", args.model, str(batch), str(args.chunk_size))
        bare = run_child("bare", args.model, str(batch))
        row = {"rows": pipe["rows"], "model": args.model, "chunk_size": args.chunk_size,
               "pipeline_rows_per_s": pipe["rows"] / pipe["seconds"], "pipeline_seconds": pipe["seconds"],
               "pipeline_peak_rss_mib": pipe["peak_rss_mib"],
               "estimator_rows_per_s": bare["rows"] / bare["estimator_seconds"],
               "sklearn_pipeline_rows_per_s": bare["rows"] / bare["sklearn_pipeline_seconds"],
               "bare_peak_rss_mib": bare["peak_rss_mib"]}
        row["ratio_to_estimator"] = row["pipeline_rows_per_s"] / row["estimator_rows_per_s"]
        print(json.dumps(row))
        lines.append(f"| {row['rows']:,} | {args.model} | {args.chunk_size:,} | {pipe['seconds']:.1f} | {row['pipeline_rows_per_s']:,.0f} | "
                     f"{row['pipeline_peak_rss_mib']:,.0f} | {row['estimator_rows_per_s']:,.0f} | {row['sklearn_pipeline_rows_per_s']:,.0f} | "
                     f"{row['ratio_to_estimator']:.2f} | {row['bare_peak_rss_mib']:,.0f} |")
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = ["", f"### Run of {stamp}: `{' '.join(['.venv/bin/python', 'benchmarks/inference_benchmark.py', *sys.argv[1:]])}`",
              f"{os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}", "",
              "| raw rows | model | chunk | pipeline s | pipeline rows/s | pipeline peak MiB | bare estimator rows/s | "
              "sklearn pipeline rows/s | pipeline / estimator | bare peak MiB |", "|---|---|---|---|---|---|---|---|---|---|"]
    if not RESULTS.exists():
        RESULTS.write_text("# Inference benchmark\n\nTarget (DESIGN.md): at least 50% of the bare model's `predict_proba` "
                           "throughput on already-featurised arrays, memory bounded by the chunk size.\n")
    with RESULTS.open("a") as fh:
        fh.write("\n".join(header + lines) + "\n")


if __name__ == "__main__":
    main()
