"""Split, tune under cross-validation, fit and evaluate one model: plain functions over arrays.

No MLflow and no Prefect here: the caller logs and orchestrates.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from pipeline_core.config import ModelConfig, TrainingConfig
from pipeline_core.errors import DataError
from pipeline_core.metrics import choose_threshold, classification_metrics
from pipeline_core.model_zoo import XGB_EARLY_STOPPING, make_estimator, search_space, suggest

log = logging.getLogger(__name__)


@dataclass
class Split:
    X_train: pd.DataFrame
    X_test: pd.DataFrame
    y_train: np.ndarray
    y_test: np.ndarray
    train_index: np.ndarray
    test_index: np.ndarray


@dataclass
class ModelResult:
    name: str
    params: dict[str, Any]
    pipeline: Any
    threshold: float
    metrics: dict[str, float]  # holdout, at the chosen threshold
    metrics_at_05: dict[str, float]
    cv_mean: float
    cv_std: float
    test_probabilities: np.ndarray
    trials: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def to_pandas_features(frame: Any, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """Feature columns as pandas with NaN for every missing value (scikit-learn's convention)."""
    pdf = frame.select([*numeric, *categorical]).to_pandas()
    for c in numeric:
        pdf[c] = pd.to_numeric(pdf[c], errors="coerce").astype("float64")
    for c in categorical:
        col = pdf[c].astype(object)
        pdf[c] = col.where(col.notna(), np.nan)
    return pdf


def split_data(X: pd.DataFrame, y: np.ndarray, cfg: TrainingConfig) -> Split:
    """Stratified holdout split; refuses targets a binary classifier cannot learn from."""
    from sklearn.model_selection import train_test_split

    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise DataError(f"target has a single class {classes.tolist()}; a classifier needs both classes")
    if len(classes) > 2:
        raise DataError(f"target has {len(classes)} classes; only binary targets are supported")
    needed = int(np.ceil(cfg.tuning.cv_folds / (1 - cfg.test_size))) + 1
    if counts.min() < needed:
        raise DataError(
            f"only {counts.min()} rows of the rarer class; training.test_size={cfg.test_size} with "
            f"training.tuning.cv_folds={cfg.tuning.cv_folds} needs at least {needed}"
        )
    train_idx, test_idx = train_test_split(np.arange(len(y)), test_size=cfg.test_size, random_state=cfg.seed, stratify=y)
    return Split(X.iloc[train_idx].reset_index(drop=True), X.iloc[test_idx].reset_index(drop=True),
                 y[train_idx], y[test_idx], train_idx, test_idx)


def _fit(name: str, pipeline: Any, X: pd.DataFrame, y: np.ndarray, X_val: pd.DataFrame | None = None, y_val: np.ndarray | None = None) -> Any:
    """Fit a preprocessing+estimator pipeline; XGBoost stops early on the validation fold when given one."""
    if name == "xgboost" and X_val is not None:
        pre = pipeline.named_steps["pre"].fit(X, y)
        est = pipeline.named_steps["model"]
        est.set_params(early_stopping_rounds=XGB_EARLY_STOPPING)
        est.fit(pre.transform(X), y, eval_set=[(pre.transform(X_val), y_val)], verbose=False)
        return pipeline
    return pipeline.fit(X, y)


def make_pipeline(name: str, params: dict[str, Any], preprocessor: Any, seed: int, n_jobs: int) -> Any:
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline

    return Pipeline([("pre", clone(preprocessor)), ("model", make_estimator(name, params, seed, n_jobs))])


def cv_scores(name: str, params: dict[str, Any], preprocessor: Any, data: Split, cfg: TrainingConfig, n_jobs: int,
              trial: Any = None) -> tuple[list[float], np.ndarray, list[int]]:
    """Per-fold primary-metric scores and out-of-fold probabilities; reports folds to Optuna for pruning."""
    import optuna
    from sklearn.model_selection import StratifiedKFold

    folds = StratifiedKFold(n_splits=cfg.tuning.cv_folds, shuffle=True, random_state=cfg.seed)
    oof = np.zeros(len(data.y_train))
    scores: list[float] = []
    best_rounds: list[int] = []
    for k, (tr, va) in enumerate(folds.split(data.X_train, data.y_train)):
        pipe = make_pipeline(name, params, preprocessor, cfg.seed, n_jobs)
        X_tr, X_va = data.X_train.iloc[tr], data.X_train.iloc[va]
        _fit(name, pipe, X_tr, data.y_train[tr], X_va, data.y_train[va])
        if name == "xgboost":
            best_rounds.append(int(pipe.named_steps["model"].best_iteration) + 1)
        oof[va] = pipe.predict_proba(X_va)[:, 1]
        scores.append(classification_metrics(data.y_train[va], oof[va])[cfg.primary_metric])
        if trial is not None:
            trial.report(float(np.mean(scores)), k)
            if trial.should_prune():
                raise optuna.TrialPruned()
    return scores, oof, best_rounds


def tune(name: str, model_cfg: ModelConfig, preprocessor: Any, data: Split, cfg: TrainingConfig, n_jobs: int,
         study_name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Best hyperparameters by seeded TPE under stratified k-fold CV, with median pruning on fold scores."""
    import optuna

    space = search_space(name, model_cfg.search_space)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # trial results are logged to MLflow instead
    sampler = optuna.samplers.TPESampler(seed=cfg.seed)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    study = optuna.create_study(study_name=study_name, direction="maximize", sampler=sampler, pruner=pruner,
                                storage=cfg.tuning.storage, load_if_exists=True)

    def objective(trial: Any) -> float:
        params = {**model_cfg.params, **suggest(trial, space)}
        scores, _, rounds = cv_scores(name, params, preprocessor, data, cfg, n_jobs, trial)
        if rounds:
            trial.set_user_attr("best_rounds", int(np.mean(rounds)))
        return float(np.mean(scores))

    study.optimize(objective, n_trials=cfg.tuning.n_trials, timeout=cfg.tuning.timeout_seconds, n_jobs=1)
    trials = [
        {"number": t.number, "state": t.state.name, "value": t.value, **{f"param_{k}": v for k, v in t.params.items()}}
        for t in study.trials
    ]
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not completed:
        raise DataError(f"{name}: no Optuna trial completed within the budget; raise training.tuning.n_trials or timeout_seconds")
    best = study.best_trial
    params = {**model_cfg.params, **best.params}
    if name == "xgboost" and "best_rounds" in best.user_attrs:
        params["n_estimators"] = best.user_attrs["best_rounds"]
    return params, trials


def train_model(name: str, model_cfg: ModelConfig, preprocessor: Any, data: Split, cfg: TrainingConfig, n_jobs: int,
                study_name: str) -> ModelResult:
    """Tune (or take fixed params), pick the threshold on out-of-fold predictions, refit, score the holdout."""
    start = time.perf_counter()
    trials: list[dict[str, Any]] = []
    if cfg.tuning.enabled:
        params, trials = tune(name, model_cfg, preprocessor, data, cfg, n_jobs, study_name)
    else:
        params = dict(model_cfg.params)
    scores, oof, rounds = cv_scores(name, params, preprocessor, data, cfg, n_jobs)
    if name == "xgboost" and rounds and "n_estimators" not in model_cfg.params:
        params["n_estimators"] = int(np.mean(rounds))
    th = cfg.threshold
    threshold = choose_threshold(data.y_train, oof, th.objective, fp_cost=th.fp_cost, fn_cost=th.fn_cost, fixed=th.fixed)
    pipeline = make_pipeline(name, params, preprocessor, cfg.seed, n_jobs).fit(data.X_train, data.y_train)
    proba = pipeline.predict_proba(data.X_test)[:, 1]
    return ModelResult(
        name=name, params=params, pipeline=pipeline, threshold=threshold,
        metrics=classification_metrics(data.y_test, proba, threshold),
        metrics_at_05=classification_metrics(data.y_test, proba, 0.5),
        cv_mean=float(np.mean(scores)), cv_std=float(np.std(scores)),
        test_probabilities=proba, trials=trials, seconds=time.perf_counter() - start,
    )
