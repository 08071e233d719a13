"""The training stage at the edge: read gold, train each model, log to MLflow, register and gate.

The numerical work lives in `training.py`; this module does the I/O around it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from pipeline_core import tracking
from pipeline_core.concurrency import TrainingPlan, available_cores, plan_training
from pipeline_core.config import PipelineConfig
from pipeline_core.errors import ConfigError, DataError
from pipeline_core.fingerprint import digest
from pipeline_core.gold import gold_paths
from pipeline_core.metrics import classification_metrics, confusion
from pipeline_core.plots import feature_importance, write_evaluation_plots
from pipeline_core.preprocessing import build_preprocessor
from pipeline_core.serving import RawRecordClassifier
from pipeline_core.storage import Store
from pipeline_core.training import Split, split_data, to_pandas_features, train_model

log = logging.getLogger(__name__)


@dataclass
class TrainingData:
    gold: pl.DataFrame
    metadata: dict[str, Any]
    preprocessing: dict[str, Any]
    split: Split


def load_training_data(config: PipelineConfig, store: Store) -> TrainingData:
    paths = gold_paths(store, config.dataset.name)
    if not store.exists(paths["metadata"]):
        raise DataError(f"no gold layer for dataset '{config.dataset.name}' in {store.root}; run `pipeline-cli features` first")
    meta = store.read_json(paths["metadata"])
    prep = store.read_json(paths["preprocessing"])
    gold = store.scan_parquet(paths["features"]).collect()
    X = to_pandas_features(gold, prep["numeric_columns"], prep["categorical_columns"])
    y = gold[prep["target"]].to_numpy()
    return TrainingData(gold, meta, prep, split_data(X, y, config.training))


def check_training_config(config: PipelineConfig) -> None:
    """Refuse an unknown primary metric or search space before any work starts."""
    from pipeline_core.model_zoo import search_space

    known = list(classification_metrics(np.array([0, 1]), np.array([0.2, 0.8])))
    for key, name in [("training.primary_metric", config.training.primary_metric),
                      *[("training.tie_breakers", t) for t in config.training.tie_breakers]]:
        if name not in known:
            raise ConfigError(f"{key}: unknown metric '{name}'; allowed: {', '.join(known)}")
    for model, mc in config.training.models.items():
        if mc.enabled:
            search_space(model, mc.search_space)


def training_plan(config: PipelineConfig, cores: int | None = None) -> TrainingPlan:
    """Models at once and threads per fit for this config on this machine (see `concurrency.plan_training`)."""
    cfg = config.training
    n_models = sum(mc.enabled for mc in cfg.models.values())
    workers = cfg.tuning.n_workers if cfg.tuning.enabled else 1
    if cfg.concurrency.dask_address:  # an external cluster: its workers' cores are not ours to count
        return TrainingPlan(min(n_models, cfg.concurrency.max_models or n_models), cfg.n_jobs or 1, workers)
    return plan_training(cores or available_cores(), n_models, workers, cfg.n_jobs, cfg.concurrency.max_models)


def tuning_storage(config: PipelineConfig) -> str | None:
    """The Optuna storage: the configured one; a journal file under the store root when workers need one; else memory."""
    tuning = config.training.tuning
    if tuning.storage or tuning.n_workers == 1 or not tuning.enabled:
        return tuning.storage
    root = config.store.root
    folder = Path("results") if root.startswith("s3://") else Path(root).expanduser().resolve()
    path = str(folder / "optuna" / f"{config.dataset.name}.journal")
    log.info("training.tuning.n_workers=%d needs a shared study storage and training.tuning.storage is not set: "
             "using the journal file %s", tuning.n_workers, path)
    return path


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_tags(config: PipelineConfig, data: TrainingData) -> dict[str, str]:
    return {
        "dataset": config.dataset.name,
        "feature_version": data.metadata["feature_version"],
        "data_fingerprint": data.metadata["fingerprint"],
        "config_hash": digest(config.model_dump(mode="json"))[:16],
        "git_commit": git_commit(),
    }


def raw_holdout(data: TrainingData) -> pd.DataFrame:
    """Holdout rows under their raw source names (what the registered model accepts), without the target."""
    renames = data.metadata["cleaning_spec"]["renames"]  # raw name -> silver name
    target = data.preprocessing["target"]
    rows = data.gold[data.split.test_index.tolist()].select([pl.col(new).alias(raw) for raw, new in renames.items() if new != target])
    # Integers as doubles in the signature: a missing value at inference time turns an int column into floats.
    return rows.with_columns(pl.col(c).cast(pl.Float64) for c, t in rows.schema.items() if t.is_integer()).to_pandas()


def prediction_reference(probabilities: np.ndarray, threshold: float) -> dict[str, Any]:
    """The holdout's probability distribution, kept with the model as the reference for output drift."""
    from pipeline_core.drift import histogram_reference

    return {**histogram_reference(probabilities), "positive_rate": float(np.mean(probabilities >= threshold))}


def holdout_predictions(data: TrainingData, probabilities: np.ndarray) -> pd.DataFrame:
    """Holdout row ids and probabilities: lets anyone check that serving reproduces training's scores."""
    id_col = data.preprocessing.get("id_column")
    ids = data.gold[id_col].gather(data.split.test_index).to_list() if id_col else data.split.test_index.tolist()
    return pd.DataFrame({"id": ids, "label": data.split.y_test, "probability": probabilities})


def study_name(config: PipelineConfig, data: TrainingData, model: str) -> str:
    """Same data and same tuning setup -> same study, so a rerun on a persistent storage resumes it."""
    cfg = config.training
    setup = {"model": config.training.models[model].model_dump(mode="json"), "seed": cfg.seed, "test_size": cfg.test_size,
             "cv_folds": cfg.tuning.cv_folds, "primary_metric": cfg.primary_metric}
    return f"{config.dataset.name}-{model}-{data.metadata['fingerprint'][:12]}-{digest(setup)[:8]}"


def train_and_log(config: PipelineConfig, data: TrainingData, model: str, parent_run_id: str, experiment_id: str,
                  n_jobs: int | None = None) -> dict[str, Any]:
    """Train one model in a child run: params, metrics, trials, plots, reports, metadata and the raw-record model.

    Every MLflow call names its run (the child run is opened by id in this thread or process), so
    models trained at once in threads or Dask workers never log into each other's runs.
    """
    import mlflow
    from mlflow.entities import Metric, Param, RunTag
    from sklearn.metrics import classification_report

    storage = tuning_storage(config)
    cfg = config.training.model_copy(update={"tuning": config.training.tuning.model_copy(update={"storage": storage})})
    threads = n_jobs or training_plan(config).n_jobs
    result = train_model(model, cfg.models[model], build_preprocessor(data.preprocessing), data.split, cfg, threads,
                         study_name=study_name(config, data, model))
    pyfunc = RawRecordClassifier(result.pipeline, data.metadata["cleaning_spec"], data.metadata["feature_spec"],
                                 data.preprocessing["numeric_columns"], data.preprocessing["categorical_columns"], result.threshold,
                                 prediction_reference(result.test_probabilities, result.threshold))
    client = mlflow.MlflowClient()
    run = client.create_run(experiment_id, tags={"mlflow.parentRunId": parent_run_id, "mlflow.runName": model, "model": model,
                                                 **run_tags(config, data)})
    run_id = run.info.run_id
    metrics = {**result.metrics, **{f"{k}_at_0.5": v for k, v in result.metrics_at_05.items()},
               f"cv_{cfg.primary_metric}_mean": result.cv_mean, f"cv_{cfg.primary_metric}_std": result.cv_std,
               "threshold": result.threshold, "train_seconds": result.seconds}
    now = int(datetime.now(timezone.utc).timestamp() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                     params=[Param(k, str(v)) for k, v in result.params.items()],
                     tags=[RunTag("tuned", str(result.tuned).lower()), RunTag("n_jobs", str(threads)),
                           RunTag("optuna_storage", storage or "memory")])
    if result.trials:  # read back from the study after tuning: complete even when trials ran in parallel workers
        client.log_table(run_id, pd.DataFrame(result.trials), artifact_file="optuna/trials.json")
    client.log_dict(run_id, {"model": model, "params": result.params, "metrics": result.metrics, "threshold": result.threshold,
                             "cv_mean": result.cv_mean, "cv_std": result.cv_std, "seconds": result.seconds, "tuned": result.tuned,
                             "trained_at": datetime.now(timezone.utc).isoformat()}, "model_metadata.json")
    with tempfile.TemporaryDirectory() as tmp:
        importance = feature_importance(result.pipeline)
        write_evaluation_plots(tmp, data.split.y_test, result.test_probabilities, result.threshold, importance, result.trials)
        client.log_artifacts(run_id, tmp, "plots")
    predicted = (result.test_probabilities >= result.threshold).astype(int)
    client.log_dict(run_id, importance, "feature_importance.json")
    client.log_text(run_id, classification_report(data.split.y_test, predicted, digits=4, zero_division=0), "classification_report.txt")
    client.log_dict(run_id, confusion(data.split.y_test, predicted), "confusion_matrix.json")
    client.log_table(run_id, holdout_predictions(data, result.test_probabilities), artifact_file="holdout_predictions.json")
    with mlflow.start_run(run_id=run_id, nested=True):  # log_model attaches to the active run: this thread's, by id
        info = tracking.log_raw_record_model(pyfunc, raw_holdout(data).head(5))
    return {"name": model, "metrics": result.metrics, "metrics_at_0.5": result.metrics_at_05, "threshold": result.threshold,
            "cv_mean": result.cv_mean, "cv_std": result.cv_std, "params": result.params, "run_id": run_id,
            "model_uri": info.model_uri, "seconds": round(result.seconds, 2), "tuned": result.tuned, "n_jobs": threads,
            "optuna_storage": storage,
            "trials": {state: sum(t["state"] == state for t in result.trials) for state in ("COMPLETE", "PRUNED", "FAIL")},
            "holdout_probabilities": result.test_probabilities.tolist()}


def register_and_gate(config: PipelineConfig, data: TrainingData, ranked: list[dict[str, Any]], parent_run_id: str) -> dict[str, Any]:
    """Register the best model as `challenger`; move `champion` only through the gate."""
    import mlflow

    cfg = config.training
    best = ranked[0]
    name = tracking.registered_model_name(config)
    client = mlflow.MlflowClient()
    holdout = raw_holdout(data)
    current = tracking.champion_version(client, name)
    champion_metrics = None
    if current is not None:
        champion = mlflow.pyfunc.load_model(f"models:/{name}@{tracking.CHAMPION}")
        proba = champion.predict(holdout)["probability"].to_numpy()
        champion_metrics = classification_metrics(data.split.y_test, proba, float(current.tags.get("threshold", 0.5)))
    with contextlib.redirect_stderr(io.StringIO()) as said:  # MLflow prints registry chatter to stderr
        version = mlflow.register_model(best["model_uri"], name)
    log.info("%s", said.getvalue().strip())
    client.set_model_version_tag(name, version.version, "threshold", str(best["threshold"]))
    client.set_model_version_tag(name, version.version, "run_id", best["run_id"])
    tracking.record_alias(client, name, tracking.CHALLENGER, version.version, best["metrics"], "best model of this training run")
    promote, reason = tracking.gate_decision(best["metrics"], champion_metrics, cfg.primary_metric, config.mlflow.min_metrics)
    if promote:
        tracking.record_alias(client, name, tracking.CHAMPION, version.version, best["metrics"], reason)
    client.set_tag(parent_run_id, "registry_outcome", ("promoted: " if promote else "not promoted: ") + reason)
    return {"registered_model": name, "version": str(version.version), "best_model": best["name"], "promoted": promote,
            "reason": reason, "champion_version": str(version.version) if promote else (str(current.version) if current else None),
            "leaderboard": [{k: r[k] for k in ("rank", "name", "metrics", "threshold", "cv_mean", "cv_std", "run_id", "seconds")} for r in ranked]}


def log_leaderboard(ranked: list[dict[str, Any]], primary: str) -> None:
    """CSV and Markdown leaderboards as artifacts of the active (parent) run."""
    import mlflow

    from pipeline_core.selection import leaderboard_markdown, leaderboard_rows

    columns = list(ranked[0]["metrics"])
    with tempfile.TemporaryDirectory() as tmp:
        pd.DataFrame(leaderboard_rows(ranked, columns)).to_csv(os.path.join(tmp, "leaderboard.csv"), index=False)
        with open(os.path.join(tmp, "leaderboard.md"), "w") as fh:
            fh.write(leaderboard_markdown(ranked, columns))
        mlflow.log_artifacts(tmp, "leaderboard")
    mlflow.log_dict({"primary_metric": primary, "ranking": [r["name"] for r in ranked]}, "leaderboard/ranking.json")
