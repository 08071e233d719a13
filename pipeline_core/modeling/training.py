"""Split, tune under cross-validation, fit and evaluate one model: plain functions over arrays.

No MLflow and no Prefect here: the caller logs and orchestrates.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pipeline_core.config import ModelConfig, PipelineConfig, TrainingConfig
from pipeline_core.errors import DataError
from pipeline_core.modeling.calibration import Calibrated, ProbabilityCalibrator
from pipeline_core.modeling.concurrency import limit_threads
from pipeline_core.modeling.metrics import choose_threshold, classification_metrics, threshold_objective
from pipeline_core.modeling.specs import make_estimator, model_spec, resolve_balance

if TYPE_CHECKING:
    import polars as pl

    from pipeline_core.modeling.tuning import TimeBudget, WorkerMap

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
    oof: np.ndarray  # out-of-fold probabilities behind cv_mean and the threshold (NaN: rows of folds not run)
    trials: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    tuned: bool = False  # True: at least one Optuna trial completed
    note: str = ""  # why the model was not tuned, or why tuning's best was not kept
    params_from: str = "defaults"  # "defaults" or "tuning": which evaluation the final model's params come from
    folds_run: int = 0  # cross-validation folds behind cv_mean (fewer than cv_folds when the budget ran out)
    tuning_ended: str = ""  # what ended tuning: "stalled", "trial cap" or "time budget"; "" when not tuned


def to_pandas_features(frame: pl.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """Feature columns as pandas with NaN for every missing value (scikit-learn's convention).

    Numeric columns leave polars as one float block (nulls become NaN on the way), categorical
    ones as object columns. Going through pandas' own conversion and re-typing each column
    cost about twice as much CPU.
    """
    import polars as pl

    index = pd.RangeIndex(frame.height)
    X = pd.DataFrame(index=index)
    if numeric:
        # the array is this frame's own: pandas need not copy it (under copy-on-write it would)
        X = pd.DataFrame(frame.select(pl.col(numeric).cast(pl.Float64, strict=False)).to_numpy(), columns=numeric, index=index, copy=False)
    for c in categorical:
        # object, as pandas made it: ints stay ints (floats when the column has nulls), text stays text
        column = frame.get_column(c)
        if column.dtype == pl.String:
            X[c] = pd.Series(text_objects(column), dtype=object, index=index)
            continue
        values = pd.Series(column.to_numpy(), dtype=object, index=index)
        if column.null_count() and not (column.dtype.is_integer() or column.dtype.is_float()):  # numbers arrive with NaN for null
            values = values.where(values.notna(), np.nan)
        X[c] = values
    return X


def text_objects(column: pl.Series) -> np.ndarray:
    """A text column as an object array of str, NaN for null.

    Each distinct value becomes one Python string that its rows share, instead of one string per
    row: this runs on the thread that feeds the model.
    """
    import polars as pl

    levels = column.drop_nulls().unique()
    codes = column.cast(pl.Enum(levels)).to_physical().fill_null(levels.len()).to_numpy()
    return np.array([*levels.to_list(), np.nan], dtype=object)[codes]


def split_data(X: pd.DataFrame, y: np.ndarray, cfg: TrainingConfig, keys: np.ndarray | None = None) -> Split:
    """Stratified holdout split; refuses targets a binary classifier cannot learn from.

    With ``keys`` (the id of each row), the holdout is chosen by a seeded hash of the id, class by class:
    a row keeps its side as gold grows, so a later run's holdout holds no row the earlier models trained
    on (but a few at the edge of each class's cut) and the gate compares both models on unseen rows.
    Without, a seeded random stratified split of the rows in their order.
    """
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
    if keys is not None:
        train_idx, test_idx = keyed_split(keys, y, cfg.test_size, cfg.seed)
    else:
        train_idx, test_idx = train_test_split(np.arange(len(y)), test_size=cfg.test_size, random_state=cfg.seed, stratify=y)
    return Split(X.iloc[train_idx].reset_index(drop=True), X.iloc[test_idx].reset_index(drop=True),
                 y[train_idx], y[test_idx], train_idx, test_idx)


def keyed_split(keys: np.ndarray, y: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row indices: in each class, the share ``test_size`` of rows whose seeded hash of the key is smallest."""
    hashed = pd.util.hash_array(np.asarray(keys).astype(str).astype(object), hash_key=f"{seed % 10**16:016d}", categorize=False)
    test = []
    for cls in np.unique(y):
        rows = np.flatnonzero(y == cls)
        take = min(max(int(round(test_size * len(rows))), 1), len(rows) - 1)
        test.append(rows[np.argsort(hashed[rows], kind="stable")[:take]])
    test_idx = np.sort(np.concatenate(test))
    return np.setdiff1d(np.arange(len(y)), test_idx), test_idx


def _fit(name: str, params: dict[str, Any], pipeline: Any, X: pd.DataFrame, y: np.ndarray, X_val: pd.DataFrame | None = None,
         y_val: np.ndarray | None = None) -> int | None:
    """Fit a preprocessing+estimator pipeline built from ``params``; a model that stops early does so on
    the validation fold when given one, and the rounds it kept are returned. Convergence warnings are
    silenced: a search visits settings that converge slowly by design."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    estimator = pipeline.named_steps["model"]
    resolve_balance(estimator, y)
    spec = model_spec(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if spec.fit_early_stopping is not None and X_val is not None:
            return spec.fit_early_stopping(pipeline, X, y, X_val, y_val)
        if spec.width_params is None:
            pipeline.fit(X, y)
            return None
        encoded = pipeline.named_steps["pre"].fit_transform(X, y)
        estimator.set_params(**spec.width_params(params, encoded.shape[1]))
        estimator.fit(encoded, y)
    return None


def make_pipeline(name: str, params: dict[str, Any], preprocessor: Any, seed: int, n_jobs: int) -> Any:
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline

    return Pipeline([("pre", clone(preprocessor)), ("model", make_estimator(name, params, seed, n_jobs))])


@dataclass
class Evaluation:
    """One parameter set under cross-validation: fold scores and out-of-fold probabilities.

    Rows of folds that the time budget did not let run are NaN in ``oof``.
    """

    params: dict[str, Any]
    scores: list[float]
    oof: np.ndarray
    rounds: list[int]
    seconds: float = 0.0

    @property
    def fold_seconds(self) -> float:
        """Mean seconds per fold run (the budget's estimate of a fold of this model)."""
        return self.seconds / max(len(self.scores), 1)

    @property
    def cv_mean(self) -> float:
        return float(np.mean(self.scores))

    @property
    def cv_std(self) -> float:
        return float(np.std(self.scores))


def lower_is_better(metric: str) -> bool:
    from pipeline_core.modeling.selection import LOWER_IS_BETTER

    return metric in LOWER_IS_BETTER


def default_params(name: str, model_cfg: ModelConfig) -> dict[str, Any]:
    """The model's strong defaults under the configured fixed params."""
    return {**model_spec(name).defaults, **model_cfg.params}


def cv_scores(name: str, params: dict[str, Any], preprocessor: Any, data: Split, cfg: TrainingConfig, n_jobs: int,
              trial: Any = None, budget: TimeBudget | None = None) -> tuple[list[float], np.ndarray, list[int]]:
    """Per-fold primary-metric scores and out-of-fold probabilities; reports folds to Optuna for pruning.

    With a time budget, a fold starts only while the budget has room for one more (see TimeBudget):
    inside a trial the trial is pruned; outside one (a model's defaults) at least one fold runs and
    the folds not run leave NaN in the out-of-fold probabilities.
    """
    import optuna
    from sklearn.model_selection import StratifiedKFold

    folds = StratifiedKFold(n_splits=cfg.tuning.cv_folds, shuffle=True, random_state=cfg.seed)
    oof = np.full(len(data.y_train), np.nan)
    scores: list[float] = []
    best_rounds: list[int] = []
    for k, (tr, va) in enumerate(folds.split(data.X_train, data.y_train)):
        if budget is not None and not budget.allows_fold():
            if trial is not None:
                trial.set_user_attr("stopped_by", "time budget")
                trial.study.stop()
                raise optuna.TrialPruned(f"time budget spent before fold {k}")
            if scores:
                log.info("%s: time budget spent after %d of %d folds", name, k, cfg.tuning.cv_folds)
                break
        started = time.perf_counter()
        pipe = make_pipeline(name, params, preprocessor, cfg.seed, n_jobs)
        X_tr, X_va = data.X_train.iloc[tr], data.X_train.iloc[va]
        rounds = _fit(name, params, pipe, X_tr, data.y_train[tr], X_va, data.y_train[va])
        if rounds is not None:
            best_rounds.append(rounds)
        oof[va] = pipe.predict_proba(X_va)[:, 1]
        scores.append(classification_metrics(data.y_train[va], oof[va])[cfg.primary_metric])
        if budget is not None:
            budget.record_fold(time.perf_counter() - started)
        if trial is not None:
            trial.report(float(np.mean(scores)), k)
            if trial.should_prune():
                raise optuna.TrialPruned()
    return scores, oof, best_rounds


def evaluate(name: str, params: dict[str, Any], preprocessor: Any, data: Split, cfg: TrainingConfig, n_jobs: int,
             budget: TimeBudget | None = None) -> Evaluation:
    """Cross-validate one parameter set (a model's defaults: the first rung of the budget)."""
    from pipeline_core import progress

    started = time.perf_counter()
    with limit_threads(n_jobs):
        scores, oof, rounds = cv_scores(name, params, preprocessor, data, cfg, n_jobs, budget=budget)
    result = Evaluation(dict(params), scores, oof, rounds, time.perf_counter() - started)
    progress.report(f"defaults of {name}: cv {result.cv_mean:.4f}; time budget spent (s)",
                    *(budget.progress(cfg.time_budget_seconds) if budget else (0, 0)))
    return result


def train_model(name: str, model_cfg: ModelConfig, preprocessor: Any, data: Split, cfg: TrainingConfig, n_jobs: int,
                study_name: str, run_workers: WorkerMap | None = None, *, defaults: Evaluation | None = None,
                tune: bool | None = None, deadline: float | None = None) -> ModelResult:
    """Defaults, then (when ``tune``) Optuna until ``deadline``; keep whichever cross-validates better,
    pick the threshold on its out-of-fold predictions, refit on all training rows, score the holdout.

    ``defaults`` is the model's first-rung evaluation when the caller already ran it.
    """
    from pipeline_core.modeling.tuning import TimeBudget
    from pipeline_core.modeling.tuning import tune as run_tuning

    start = time.perf_counter()
    tune = cfg.tuning.enabled if tune is None else tune
    with limit_threads(n_jobs):
        if defaults is None:
            defaults = evaluate(name, default_params(name, model_cfg), preprocessor, data, cfg, n_jobs, TimeBudget(deadline))
        chosen, trials, tuned, ended = defaults, [], False, ""
        note = "tuning off" if not cfg.tuning.enabled else "not among the most promising defaults"
        if tune:
            best, trials, ended = run_tuning(name, model_cfg, preprocessor, data, cfg, n_jobs, study_name, run_workers, deadline=deadline,
                                             fold_seconds=defaults.fold_seconds)
            if best is None:
                # no trial at all: it waited for a slot that freed too late
                note = "no trial completed within the time budget" if trials else "the time budget ended before its turn to be tuned"
            else:
                tuned, note = True, ""
                sign = -1 if lower_is_better(cfg.primary_metric) else 1
                if sign * best.cv_mean > sign * defaults.cv_mean:
                    chosen = best
                else:
                    note = "no trial beat the defaults"
        params = dict(chosen.params)
        rounds_param = model_spec(name).rounds_param
        if rounds_param and chosen.rounds and rounds_param not in model_cfg.params:
            params[rounds_param] = int(np.mean(chosen.rounds))
        th = cfg.threshold
        oof = chosen.oof.copy()
        seen = ~np.isnan(oof)
        calibrator = None
        if cfg.calibration != "none":
            calibrator = ProbabilityCalibrator.fit(cfg.calibration, oof[seen], data.y_train[seen])
            oof[seen] = calibrator.transform(oof[seen])
        threshold = choose_threshold(data.y_train[seen], oof[seen], threshold_objective(th.objective, cfg.primary_metric),
                                     fp_cost=th.fp_cost, fn_cost=th.fn_cost, fixed=th.fixed)
        pipeline = make_pipeline(name, params, preprocessor, cfg.seed, n_jobs)
        _fit(name, params, pipeline, data.X_train, data.y_train)
        if calibrator is not None:
            pipeline.steps[-1] = ("model", Calibrated(pipeline.named_steps["model"], calibrator))
        proba = pipeline.predict_proba(data.X_test)[:, 1]
    return ModelResult(
        name=name, params=params, pipeline=pipeline, threshold=threshold,
        metrics=classification_metrics(data.y_test, proba, threshold),
        metrics_at_05=classification_metrics(data.y_test, proba, 0.5),
        cv_mean=chosen.cv_mean, cv_std=chosen.cv_std, test_probabilities=proba, oof=oof, trials=trials,
        seconds=time.perf_counter() - start + (defaults.seconds if defaults is not None else 0.0), tuned=tuned, note=note,
        params_from="tuning" if chosen is not defaults else "defaults", folds_run=len(chosen.scores),
        tuning_ended=ended if trials else "",
    )


def check_training_config(config: PipelineConfig) -> None:
    """Refuse a malformed search space, and fixed params the model rejects, before any work starts (metric names
    are checked by the config's types)."""
    from pipeline_core.modeling.specs import check_model_params, search_space

    for model, mc in config.training.models.items():
        if mc.enabled:
            search_space(model, mc.search_space)
    check_model_params(config.training.models)
