"""The training stage's work: read gold, train each model as a task (its Optuna workers as tasks
too), log to MLflow, then register behind the gate (`tasks.registration`).

Imported only when the stage runs: `tasks.training` holds the cached stage task, so a rerun that
hits its cache loads none of the modelling libraries.
"""

from __future__ import annotations

import logging
import subprocess
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import TerminationSignal
from prefect.logging import get_run_logger

from pipeline_core.config import PipelineConfig
from pipeline_core.errors import ConfigError, Terminated
from pipeline_core.fingerprint import digest
from pipeline_core.gold_metadata import built_with_other_settings
from pipeline_core.modeling.budget import deadline, promising, refit_reserve, tuning_schedule
from pipeline_core.modeling.concurrency import training_plan
from pipeline_core.modeling.ensemble import build_ensemble
from pipeline_core.modeling.holdout import (
    TrainingData,
    holdout_predictions,
    optional_raw_columns,
    prediction_reference,
    raw_holdout,
    study_name,
)
from pipeline_core.modeling.metrics import confusion
from pipeline_core.modeling.plots import write_evaluation_plots
from pipeline_core.modeling.preprocessing import build_preprocessor
from pipeline_core.modeling.selection import rank_models, ranking_basis
from pipeline_core.modeling.specs import feature_importance
from pipeline_core.modeling.training import Evaluation, ModelResult, check_training_config, default_params, evaluate
from pipeline_core.modeling.training import train_model as fit_model
from pipeline_core.modeling.tuning import FINAL_FIT_FOLDS, TimeBudget, WorkerMap, clear_stop, open_storage, request_stop
from pipeline_core.serving import RawRecordClassifier
from pipeline_io import delta, export, layout, registry, registry_state
from pipeline_io.readers import gold_metadata, load_training_data
from pipeline_io.store import open_store
from pipeline_io.workarounds import api_visible_to_workers
from tasks.registration import export_model, lineage_tags, register_best
from tasks.reporting import write_training_report
from tasks.runners import model_task_runner, wait_all

log = logging.getLogger(__name__)

def tuning_storage(config: PipelineConfig) -> str | None:
    """The Optuna storage: the configured one; a journal file under the store root when workers need one; else memory."""
    tuning = config.training.tuning
    if tuning.storage or tuning.n_workers == 1 or not tuning.enabled:
        return tuning.storage
    path = str(layout.optuna_journal(config.store.root, config.dataset.name))
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
        **lineage_tags(data),
        "data_fingerprint": data.metadata["fingerprint"],
        "config_hash": digest(config.model_dump(mode="json"))[:16],
        "git_commit": git_commit(),
        **registry.owner_tags(),
    }


@task(name="tune-worker", cache_policy=NO_CACHE, task_run_name="tune-{model}-worker-{index}")
def tune_worker(work: Callable[[int, Any], None], model: str, index: int, n_trials: int | None) -> None:
    """One Optuna worker: loads the model's shared study and runs its share of the trials."""
    work(index, n_trials)


def tuning_workers(model: str) -> WorkerMap:
    """Run a model's Optuna workers as Prefect tasks side by side on threads (the fits release the GIL)."""

    def run(work: Callable[[int, Any], None], shares: list[Any]) -> None:
        from prefect.futures import wait
        from prefect.task_runners import ThreadPoolTaskRunner

        with ThreadPoolTaskRunner(max_workers=len(shares)) as runner:
            futures = [runner.submit(tune_worker, {"work": work, "model": model, "index": i, "n_trials": n})
                       for i, n in enumerate(shares)]
            wait(futures)
            for future in futures:
                future.result()  # a worker's failure fails the model

    return run


def train_and_log(config: PipelineConfig, data: TrainingData, model: str, parent_run_id: str, experiment_id: str,
                  n_jobs: int | None = None, run_workers: WorkerMap | None = None, *, defaults: Evaluation | None = None,
                  tune: bool | None = None, deadline: float | None = None) -> dict[str, Any]:
    """Train one model and log it in a child run (see `log_result`)."""
    storage = tuning_storage(config)
    cfg = config.training.model_copy(update={"tuning": config.training.tuning.model_copy(update={"storage": storage})})
    threads = n_jobs or training_plan(config).n_jobs
    result = fit_model(model, cfg.models[model], build_preprocessor(data.preprocessing), data.split, cfg, threads,
                       study_name=study_name(config, data, model), run_workers=run_workers, defaults=defaults, tune=tune,
                       deadline=deadline)
    return {**log_result(config, data, result, parent_run_id, experiment_id, {"n_jobs": str(threads), "optuna_storage": storage or "memory"}),
            "n_jobs": threads, "optuna_storage": storage}


def served_model(data: TrainingData, pipeline: Any, threshold: float, holdout_probabilities: Any) -> RawRecordClassifier:
    """The raw-record pyfunc of a fitted pipeline, with the holdout's probabilities as its output-drift reference."""
    return RawRecordClassifier(pipeline, data.metadata["cleaning_spec"], data.metadata["feature_spec"],
                               data.preprocessing["numeric_columns"], data.preprocessing["categorical_columns"], threshold,
                               prediction_reference(holdout_probabilities, threshold))


def log_result(config: PipelineConfig, data: TrainingData, result: ModelResult, parent_run_id: str, experiment_id: str,
               tags: dict[str, str]) -> dict[str, Any]:
    """A trained model's child run: params, metrics, trials, plots, reports, metadata and the raw-record model.

    Every MLflow call names its run (the child run is opened by id in this thread or process), so
    models trained at once in threads or Dask workers never log into each other's runs.
    The summary returned carries the fitted pipeline and out-of-fold probabilities for the ensemble;
    the stage drops them before its result is stored.
    """
    import mlflow
    from mlflow.entities import Metric, Param, RunTag
    from sklearn.metrics import classification_report

    model, primary = result.name, config.training.primary_metric
    pyfunc = served_model(data, result.pipeline, result.threshold, result.test_probabilities)
    client = mlflow.MlflowClient()
    run = client.create_run(experiment_id, tags={"mlflow.parentRunId": parent_run_id, "mlflow.runName": model, "model": model,
                                                 **run_tags(config, data)})
    run_id = run.info.run_id
    metrics = {**result.metrics, **{f"{k}_at_0.5": v for k, v in result.metrics_at_05.items()},
               f"cv_{primary}_mean": result.cv_mean, f"cv_{primary}_std": result.cv_std,
               "threshold": result.threshold, "train_seconds": result.seconds}
    now = int(datetime.now(timezone.utc).timestamp() * 1000)
    client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                     params=[Param(k, str(v)) for k, v in result.params.items()],
                     tags=[RunTag("tuned", str(result.tuned).lower()), RunTag("params_from", result.params_from),
                           *([RunTag("tuning_ended", result.tuning_ended)] if result.tuning_ended else []),
                           RunTag("untuned_reason" if not result.tuned and result.params_from != "ensemble" else "note", result.note or "-"),
                           *[RunTag(k, v) for k, v in tags.items()]])
    if result.trials:  # read back from the study after tuning: complete even when trials ran in parallel workers
        client.log_table(run_id, pd.DataFrame(result.trials), artifact_file="optuna/trials.json")
    client.log_dict(run_id, {"model": model, "params": result.params, "metrics": result.metrics, "threshold": result.threshold,
                             "cv_mean": result.cv_mean, "cv_std": result.cv_std, "seconds": result.seconds, "tuned": result.tuned,
                             "note": result.note, "params_from": result.params_from, "folds_run": result.folds_run,
                             "tuning_ended": result.tuning_ended, "trained_at": datetime.now(timezone.utc).isoformat()}, "model_metadata.json")
    with tempfile.TemporaryDirectory() as tmp:
        importance = feature_importance(model, result.pipeline)
        write_evaluation_plots(tmp, data.split.y_test, result.test_probabilities, result.threshold, importance, result.trials)
        client.log_artifacts(run_id, tmp, "plots")
    predicted = (result.test_probabilities >= result.threshold).astype(int)
    client.log_dict(run_id, importance, "feature_importance.json")
    client.log_text(run_id, classification_report(data.split.y_test, predicted, digits=4, zero_division=0), "classification_report.txt")
    client.log_dict(run_id, confusion(data.split.y_test, predicted), "confusion_matrix.json")
    client.log_table(run_id, holdout_predictions(data, result.test_probabilities), artifact_file="holdout_predictions.json")
    with mlflow.start_run(run_id=run_id, nested=True):  # log_model attaches to the active run: this thread's, by id
        info = registry.log_raw_record_model(pyfunc, raw_holdout(data).head(5), optional_raw_columns(data))
    return {"name": model, "metrics": result.metrics, "metrics_at_0.5": result.metrics_at_05, "threshold": result.threshold,
            "cv_mean": result.cv_mean, "cv_std": result.cv_std, "params": result.params, "run_id": run_id,
            "model_uri": info.model_uri, "seconds": round(result.seconds, 2), "tuned": result.tuned, "note": result.note,
            "params_from": result.params_from, "folds_run": result.folds_run, "tuning_ended": result.tuning_ended,
            "trials": {state: sum(t["state"] == state for t in result.trials) for state in ("COMPLETE", "PRUNED", "FAIL")},
            "holdout_probabilities": result.test_probabilities.tolist(), "pipeline": result.pipeline, "oof": result.oof}


@task(name="weighted-ensemble", cache_policy=NO_CACHE, task_run_name="weighted-ensemble")
def weighted_ensemble(config: PipelineConfig, results: list[dict[str, Any]], parent_run_id: str, experiment_id: str,
                      gold_version: int) -> dict[str, Any] | None:
    """The greedy weighted ensemble of the trained models, logged as one more candidate; None when it is one model."""
    data = load_training_data(config, open_store(config), as_of=str(gold_version))
    result = build_ensemble({r["name"]: r["pipeline"] for r in results}, {r["name"]: r["oof"] for r in results}, data.split,
                            config.training)
    if result is None:
        get_run_logger().info("ensemble: greedy selection kept a single model; no ensemble candidate")
        return None
    get_run_logger().info("ensemble: %s; holdout %s=%.4f (cv %.4f)", ", ".join(f"{n} {w:.2f}" for n, w in result.params.items()),
                          config.training.primary_metric, result.metrics[config.training.primary_metric], result.cv_mean)
    return log_result(config, data, result, parent_run_id, experiment_id, {"members": ",".join(result.params)})


@task(name="refit-full", cache_policy=NO_CACHE, task_run_name="refit-{best[name]}-on-all-rows")
def refit_on_all_rows(config: PipelineConfig, best: dict[str, Any], parent_run_id: str, experiment_id: str,
                      gold_version: int) -> dict[str, Any]:
    """``training.refit_full``: the chosen model refitted on training and holdout rows, with the same
    hyperparameters, rounds, threshold, calibration and ensemble weights, logged in its own child run.

    Its holdout metrics are those of the model before the refit (the holdout is now training data):
    the summary keeps them, and the run names where they were scored (``holdout_run_id``). Its own
    probabilities for the holdout rows are logged too, so that serving can be checked against the
    registered model itself (no train/serve skew).
    """
    import mlflow
    import numpy as np
    from sklearn.base import clone

    data = load_training_data(config, open_store(config), as_of=str(gold_version))
    split = data.split
    started = time.perf_counter()
    pipeline = clone(best["pipeline"]).fit(pd.concat([split.X_train, split.X_test], ignore_index=True),
                                          np.concatenate([split.y_train, split.y_test]))
    refit_seconds = time.perf_counter() - started
    probabilities = np.asarray(best["holdout_probabilities"])
    pyfunc = served_model(data, pipeline, best["threshold"], probabilities)
    client = mlflow.MlflowClient()
    run = client.create_run(experiment_id, tags={"mlflow.parentRunId": parent_run_id, "mlflow.runName": f"{best['name']}-refit-full",
                                                 "model": best["name"], "refit_full": "true", "holdout_run_id": best["run_id"],
                                                 **run_tags(config, data)})
    for key, value in best["params"].items():
        client.log_param(run.info.run_id, key, str(value))
    # the version's holdout metrics (what `models describe`, rollbacks and feedback read) are those scored before the refit
    from mlflow.entities import Metric

    now = int(datetime.now(timezone.utc).timestamp() * 1000)
    judged = {**client.get_run(best["run_id"]).data.metrics, "rows_fitted": float(len(split.y_train) + len(split.y_test)),
              "train_seconds": refit_seconds}  # this run's own fit
    client.log_batch(run.info.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in judged.items()])
    client.log_table(run.info.run_id, holdout_predictions(data, pipeline.predict_proba(split.X_test)[:, 1]),
                     artifact_file="holdout_predictions.json")
    with mlflow.start_run(run_id=run.info.run_id, nested=True):
        info = registry.log_raw_record_model(pyfunc, raw_holdout(data).head(5), optional_raw_columns(data))
    client.set_terminated(run.info.run_id, "FINISHED")
    get_run_logger().info("%s refitted on %d rows (training + holdout); holdout metrics are from run %s", best["name"],
                          len(split.y_train) + len(split.y_test), best["run_id"])
    return {**best, "pipeline": pipeline, "run_id": run.info.run_id, "model_uri": info.model_uri, "refit_full": True,
            "holdout_run_id": best["run_id"], "rows_fitted": len(split.y_train) + len(split.y_test)}


def final_fit_seconds(defaults: dict[str, Evaluation]) -> dict[str, float]:
    """Each model's expected fit on all training rows, from its defaults' folds."""
    return {n: FINAL_FIT_FOLDS * d.fold_seconds for n, d in defaults.items()}


def rung_one(config: PipelineConfig, defaults: dict[str, Evaluation], slots: int, ends: float | None
             ) -> list[tuple[str, bool, float | None]]:
    """Which models are tuned, in which order and until when (see `pipeline_core.modeling.budget`).

    A slot freed by a stalled study tunes the next model only when the budget alone bounds tuning:
    with ``training.tuning.n_trials`` set, the most promising models are tuned up to the cap.
    """
    if not config.training.tuning.enabled:
        return [(name, False, ends) for name in defaults]
    metric, cv = config.training.primary_metric, {n: d.cv_mean for n, d in defaults.items()}
    fit_seconds = final_fit_seconds(defaults)
    queue_tunes = config.training.tuning.n_trials is None and ends is not None
    schedule = tuning_schedule(cv, fit_seconds, slots, metric, ends, queue_tunes)
    first = promising(cv, slots, metric)
    if queue_tunes:
        later = [name for name, _, _ in schedule if name not in first]
        get_run_logger().info("tuning %s side by side%s, each until its score stalls or the time budget ends", ", ".join(first),
                              f", then {', '.join(later)} as slots free up" if later else "")
    else:
        get_run_logger().info("tuning %s; the other models keep their defaults", ", ".join(first))
    return schedule


@task(name="evaluate-defaults", cache_policy=NO_CACHE, task_run_name="defaults-{model}")
def evaluate_defaults(config: PipelineConfig, model: str, gold_version: int, n_jobs: int, deadline: float | None) -> Evaluation:
    """The budget's first rung: one model's defaults under cross-validation, on gold version ``gold_version``."""
    data = load_training_data(config, open_store(config), as_of=str(gold_version))
    mc = config.training.models[model]
    result = evaluate(model, default_params(model, mc), build_preprocessor(data.preprocessing), data.split, config.training, n_jobs,
                      TimeBudget(deadline))
    get_run_logger().info("%s: defaults cv %s %.4f over %d fold(s) in %.1fs", model, config.training.primary_metric,
                          result.cv_mean, len(result.scores), result.seconds)
    return result


@task(name="train-model", cache_policy=NO_CACHE, task_run_name="train-{model}")
def train_model(config: PipelineConfig, model: str, parent_run_id: str, experiment_id: str, gold_version: int,
                n_jobs: int | None = None, defaults: Evaluation | None = None, tune: bool | None = None,
                deadline: float | None = None) -> dict[str, Any]:
    """One model, end to end, on gold version ``gold_version``; safe to run beside others in threads or Dask worker processes."""
    registry.connect(config)
    data = load_training_data(config, open_store(config), as_of=str(gold_version))
    result = train_and_log(config, data, model, parent_run_id, experiment_id, n_jobs, run_workers=tuning_workers(model),
                           defaults=defaults, tune=tune, deadline=deadline)
    get_run_logger().info("%s: holdout %s=%.4f (cv %.4f ± %.4f) in %.1fs, %s", model, config.training.primary_metric,
                          result["metrics"][config.training.primary_metric], result["cv_mean"], result["cv_std"], result["seconds"],
                          "tuned" if result["tuned"] else f"untuned ({result['note']})")
    return result


def train_and_register(config: PipelineConfig, as_of: str | None = None) -> dict[str, Any]:
    """Every enabled model (several at once where the cores allow), a leaderboard, and the gated registry.

    Every model reads the same gold version: the current one, or the one current ``as_of``.
    """
    import mlflow


    start = time.perf_counter()
    ends = deadline(config.training.time_budget_seconds)
    check_training_config(config)
    if config.training.export_dir:  # where the run ends must be writable before it starts
        export.export_root(config)
    open_storage(tuning_storage(config))
    plan = training_plan(config)
    runner = model_task_runner(config, plan)
    models = [name for name, mc in config.training.models.items() if mc.enabled]
    get_run_logger().info("training %d models, %d at a time on the %s runner, %d thread(s) per fit, %d tuning worker(s) each",
                          len(models), plan.concurrent_models, config.training.concurrency.task_runner, plan.n_jobs,
                          plan.tuning_workers)
    store = open_store(config)
    gold = gold_metadata(store, config.dataset.name, as_of)
    if as_of is None and built_with_other_settings(config, gold):  # (an --as-of retrain reads an old version as it was built)
        raise ConfigError(f"features/preprocessing: gold/{config.dataset.name} version {gold['version']} was built with other settings "
                          "than this config's; run `pipeline-cli features` (or `run`) to rebuild gold with them before training")
    # a damaged gold file is named before any run is recorded for it
    delta.refuse_damaged(store, {layout.gold_paths(store, config.dataset.name)["features"]: gold["version"]})
    client, experiment_id = registry.connect(config)
    if orphans := registry.close_orphaned_runs(client, experiment_id):
        get_run_logger().warning("marked %d run(s) left open by a killed process as KILLED: %s", len(orphans), ", ".join(orphans))
    parent = client.create_run(experiment_id, tags={**registry.owner_tags(), "mlflow.runName": f"training-{config.dataset.name}",
                                                    "dataset": config.dataset.name,
                                                    "gold_fingerprint": gold["fingerprint"], "gold_version": str(gold["version"]),
                                                    "gold_table": gold["tables"]["features"]})
    parent_id = parent.info.run_id
    export_path = None
    try:
        with api_visible_to_workers(config.training.concurrency.task_runner == "dask"), runner:
            clear_stop()
            try:
                # rung 0: every model's defaults (see pipeline_core.modeling.budget)
                first = [runner.submit(evaluate_defaults, {"config": config, "model": name, "gold_version": gold["version"],
                                                           "n_jobs": plan.n_jobs, "deadline": ends}) for name in models]
                wait_all(first)
                defaults = {name: f.result() for name, f in zip(models, first)}
                if ends is not None and config.training.refit_full:
                    ends -= refit_reserve(final_fit_seconds(defaults), config.training.test_size, config.training.ensemble)
                schedule = rung_one(config, defaults, plan.concurrent_models, ends)
                # rung 1: tuning in the schedule's order, then every model's final fit
                futures = [runner.submit(train_model, {"config": config, "model": name, "parent_run_id": parent_id,
                                                       "experiment_id": experiment_id, "gold_version": gold["version"],
                                                       "n_jobs": plan.n_jobs, "defaults": defaults[name], "tune": tune,
                                                       "deadline": model_deadline})
                           for name, tune, model_deadline in schedule]
                wait_all(futures)
                by_name = {r["name"]: r for r in (f.result() for f in futures)}
                results = [by_name[name] for name in models]  # config order: the same list a sequential run builds
                tuned = [name for name, _, _ in schedule if by_name[name]["tuned"]]
            except (KeyboardInterrupt, Terminated, TerminationSignal):
                request_stop()  # model threads start no further fold, so leaving the runner does not wait out the budget
                raise
        if config.training.ensemble and len(results) > 1:
            ensemble = weighted_ensemble(config, results, parent_id, experiment_id, gold["version"])
            results += [ensemble] if ensemble else []
        ranked_by = ranking_basis(config.training.rank_by, config.training.primary_metric)
        ranked = rank_models(results, config.training.primary_metric, config.training.tie_breakers, ranked_by)
        scored_on_holdout = ranked[0]  # the report judges the model the holdout did not train
        if config.training.refit_full:
            ranked[0] = refit_on_all_rows(config, ranked[0], parent_id, experiment_id, gold["version"])
        slim = [{k: v for k, v in r.items() if k not in ("holdout_probabilities", "pipeline", "oof")} for r in ranked]
        outcome = register_best(config, slim, parent_id, gold["version"], ranked[0].get("holdout_probabilities"))
        if config.training.export_dir:
            export_path = export_model(config, outcome, slim)
        report = write_training_report(config, store, load_training_data(config, store, as_of=str(gold["version"])),
                                       scored_on_holdout, slim, {**outcome, "ranked_by": ranked_by}, parent_id)
    except BaseException as exc:
        client.set_terminated(parent_id, "KILLED" if isinstance(exc, (KeyboardInterrupt, Terminated, TerminationSignal)) else "FAILED")
        raise
    client.set_terminated(parent_id, "FINISHED")
    settled = registry_state.settled_view(config, client, outcome["registered_model"])
    return {"layer": "training", "status": "ran", "tracking_uri": mlflow.get_tracking_uri(), "parent_run_id": parent_id,
            "primary_metric": config.training.primary_metric, "ranked_by": ranked_by, "fingerprint": gold["fingerprint"], "gold_version": gold["version"],
            **outcome, **settled, "time_budget_seconds": config.training.time_budget_seconds, "tuned_models": tuned,
            "concurrency": {"task_runner": config.training.concurrency.task_runner, "concurrent_models": plan.concurrent_models,
                            "n_jobs": plan.n_jobs, "tuning_workers": plan.tuning_workers},
            "export_dir": export_path, "report": report, "models": slim, "seconds": round(time.perf_counter() - start, 3)}
