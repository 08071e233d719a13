"""Optuna tuning of one model: a seeded study under cross-validation, a wall-time deadline that
holds between folds, and worker processes that share one study through a storage.

What the deadline guarantees: no trial and no fold starts once less time is left than the mean
fold time seen so far plus the final fit's reserve (see `TimeBudget`), so tuning ends in time for
the final fit, late by at most the fold in progress (a single fit cannot be interrupted). Folds
are the fidelity of Optuna's Hyperband pruner: a trial whose first folds score poorly stops early.
The out-of-fold predictions of the best trial are kept, so the final model needs no second CV pass.

Workers (``n_workers > 1``): the study is created once here, then each worker loads it from the
shared storage and runs its share of the trials still missing, so ``n_trials`` is the study's
total however many workers run and however often a run resumes. Worker ``i`` samples with
``seed + i``. Where the workers run is the caller's choice (`WorkerMap`): the Prefect tasks of
`tasks.training` run them side by side; without one they run one after another.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from pipeline_core import progress
from pipeline_core.config import ModelConfig, TrainingConfig
from pipeline_core.errors import ConfigError, StorageError, first_line
from pipeline_core.modeling.budget import stall_patience, stalled
from pipeline_core.modeling.specs import search_space, suggest
from pipeline_core.modeling.training import Evaluation, Split, cv_scores, default_params

log = logging.getLogger(__name__)

FINISHED = ("COMPLETE", "PRUNED", "FAIL")


# The final fit sees cv_folds / (cv_folds - 1) of a fold's rows; with 5 folds and some slack, about 1.5 folds' time.
FINAL_FIT_FOLDS = 1.5
UNBOUNDED_TRIALS = 20  # trials per model when neither a time budget nor training.tuning.n_trials bounds tuning


# Set when the process is asked to stop (SIGTERM, Ctrl-C): no further fold or trial starts in any thread.
# Reached through the functions below: code that Dask pickles by value must not hold the Event itself.
_STOP_REQUESTED = threading.Event()


def request_stop() -> None:
    _STOP_REQUESTED.set()


def clear_stop() -> None:
    _STOP_REQUESTED.clear()


def stop_requested() -> bool:
    return _STOP_REQUESTED.is_set()


@dataclass
class TimeBudget:
    """A wall-clock deadline (epoch seconds, shared by processes) and the fold times seen so far.

    A fold may start while the time left holds one more fold and the final fit after it.
    """

    deadline: float | None
    fold_seconds: list[float] = field(default_factory=list)

    @classmethod
    def starting_now(cls, seconds: float | None) -> TimeBudget:
        return cls(None if seconds is None else time.time() + seconds)

    def remaining(self) -> float:
        return math.inf if self.deadline is None else self.deadline - time.time()

    def mean_fold(self) -> float:
        return float(np.mean(self.fold_seconds)) if self.fold_seconds else 0.0

    def allows_fold(self) -> bool:
        """Room for one more fold of average length and the final fit (none once a stop is requested)."""
        if stop_requested():
            return False
        left = self.remaining()
        return left > 0 and left >= self.mean_fold() * (1 + FINAL_FIT_FOLDS)

    def record_fold(self, seconds: float) -> None:
        self.fold_seconds.append(seconds)

    def progress(self, total: float | None) -> tuple[int, int]:
        """(seconds spent, seconds in all) of a budget of ``total`` seconds ending at the deadline; (0, 0) without one."""
        if self.deadline is None or not total:
            return 0, 0
        return int(min(max(total - self.remaining(), 0.0), total)), int(total)

    def stop_when_spent(self, study: Any, trial: Any) -> None:
        """Optuna callback: end the study once no further fold fits in the budget."""
        if not self.allows_fold():
            study.stop()


def open_storage(url: str | None) -> Any:
    """None: in memory; a URL with a scheme: an RDB (SQLite, PostgreSQL, MySQL); a plain path: a journal file."""
    import optuna

    if url is None:
        return None
    try:
        if "://" in url:
            # SQLite serialises writers: wait for the lock instead of failing when workers write at once.
            engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
            return optuna.storages.RDBStorage(url, engine_kwargs=engine)
        from optuna.storages.journal import JournalFileBackend

        path = Path(url).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    except Exception as exc:  # a driver's own error (SQLAlchemy, OSError): name the key and the storage
        from pipeline_core.redaction import redact

        first = first_line(exc)
        raise StorageError(f"training.tuning.storage {redact(url)}: cannot open it ({redact(first)}); "
                           "check the URL, that its server answers and that the path is writable") from None


def _sampler(seed: int) -> Any:
    import optuna

    return optuna.samplers.TPESampler(seed=seed)


def _pruner(cv_folds: int) -> Any:
    """Hyperband over folds: low-fidelity looks (one fold) at many trials, full CV for the promising."""
    import optuna

    return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=cv_folds, reduction_factor=3)


def direction(cfg: TrainingConfig) -> str:
    from pipeline_core.modeling.training import lower_is_better

    return "minimize" if lower_is_better(cfg.primary_metric) else "maximize"


class BestEvaluation:
    """The out-of-fold predictions of the best trial so far (workers share one instance on threads)."""

    def __init__(self, minimize: bool) -> None:
        self.sign = -1 if minimize else 1
        self.by_trial: dict[int, Evaluation] = {}
        self._lock = threading.Lock()

    def offer(self, number: int, evaluation: Evaluation) -> None:
        with self._lock:
            current = max(self.by_trial.values(), key=lambda e: self.sign * e.cv_mean, default=None)
            if current is None or self.sign * evaluation.cv_mean > self.sign * current.cv_mean:
                self.by_trial = {number: evaluation}


def trial_params(name: str, model_cfg: ModelConfig, suggested: dict[str, Any]) -> dict[str, Any]:
    """A trial's params: the model's defaults and fixed params, under what the sampler suggested."""
    return {**default_params(name, model_cfg), **suggested}


def make_objective(name: str, model_cfg: ModelConfig, preprocessor: Any, data: Split, cfg: TrainingConfig, n_jobs: int,
                   budget: TimeBudget, worker: int, keep: BestEvaluation | None = None) -> Any:
    """The CV objective over data split once; each trial records which worker process ran it."""
    space = search_space(name, model_cfg.search_space)

    def objective(trial: Any) -> float:
        trial.set_user_attr("worker", worker)
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("thread", threading.get_native_id())
        params = trial_params(name, model_cfg, suggest(trial, space))
        started = time.perf_counter()
        scores, oof, rounds = cv_scores(name, params, preprocessor, data, cfg, n_jobs, trial, budget)
        if rounds:
            trial.set_user_attr("best_rounds", int(np.mean(rounds)))
        if keep is not None:
            keep.offer(trial.number, Evaluation(params, scores, oof, rounds, time.perf_counter() - started))
        return float(np.mean(scores))

    return objective


def report_progress(name: str, budget: TimeBudget, total: float | None) -> Callable[[Any, Any], None]:
    """Optuna callback: the model's trials so far and best score, and the budget spent (the CLI draws it)."""

    def report(study: Any, trial: Any) -> None:
        finished = sum(t.state.name in FINISHED for t in study.get_trials(deepcopy=False))
        try:
            best = f", best cv {study.best_value:.4f}"
        except ValueError:  # no trial completed yet
            best = ""
        progress.report(f"tuning {name}: {finished} trials{best}; time budget spent (s)", *budget.progress(total))

    return report


def stop_when_stalled(patience: int) -> Callable[[Any, Any], None]:
    """Optuna callback: end the study once its best score stopped rising (see `budget.stalled`).

    (Optuna's own `terminator` module does this kind of stop, but is deprecated since Optuna 4.9.)
    """
    import optuna

    def stop(study: Any, trial: Any) -> None:
        values = [t.value for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
        if stalled(values, patience, study.direction == optuna.study.StudyDirection.MINIMIZE):
            study.set_user_attr("stopped_by", f"stalled: no gain over its last {patience} completed trials")
            study.stop()

    return stop


def run_trials(study: Any, objective: Any, n_trials: int | None, budget: TimeBudget,
               on_trial: Callable[[Any, Any], None] | None = None, patience: int | None = None) -> None:
    """Up to ``n_trials`` trials (None: until the deadline) in this process, within the budget;
    with ``patience``, only until the study stalls."""
    if (n_trials is not None and n_trials <= 0) or not budget.allows_fold():
        return
    timeout = None if budget.deadline is None else max(budget.remaining(), 0.0)
    callbacks = [budget.stop_when_spent, *([stop_when_stalled(patience)] if patience else []), *([on_trial] if on_trial else [])]
    study.optimize(objective, n_trials=n_trials, timeout=timeout, callbacks=callbacks, n_jobs=1)


def worker_shares(missing: int | None, n_workers: int) -> list[int | None]:
    """Trials per worker so that they add up to exactly ``missing`` (None: each runs until the deadline);
    workers without a share are not started."""
    if missing is None:
        return [None] * n_workers
    shares = [missing // n_workers + (1 if i < missing % n_workers else 0) for i in range(n_workers)]
    return [s for s in shares if s > 0]


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """The trials table, read back from the study's storage (so it covers every worker's trials)."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else None
        rows.append({"number": t.number, "state": t.state.name, "value": t.value, "worker": t.user_attrs.get("worker"),
                     "pid": t.user_attrs.get("pid"), "thread": t.user_attrs.get("thread"), "seconds": seconds, **{f"param_{k}": v for k, v in t.params.items()}})
    return rows


# Runs ``work(index, n_trials)`` once per share, wherever the caller likes; returns when all are done.
WorkerMap = Callable[[Callable[[int, Any], None], list[Any]], None]


def run_sequentially(work: Callable[[int, Any], None], shares: list[Any]) -> None:
    for index, share in enumerate(shares):
        work(index, share)


def trial_cap(cfg: TrainingConfig, deadline: float | None) -> int | None:
    """Trials per model: the configured cap; none when a deadline bounds tuning; else UNBOUNDED_TRIALS."""
    if cfg.tuning.n_trials is not None:
        return cfg.tuning.n_trials
    return None if deadline is not None else UNBOUNDED_TRIALS


def tune(name: str, model_cfg: ModelConfig, preprocessor: Any, data: Split, cfg: TrainingConfig, n_jobs: int,
         study_name: str, run_workers: WorkerMap | None = None, deadline: float | None = None,
         fold_seconds: float | None = None) -> tuple[Evaluation | None, list[dict[str, Any]], str]:
    """The best parameters by seeded TPE under stratified k-fold CV, pruned by Hyperband over folds.

    Returns (the best trial's evaluation, or None when no trial completed in time; the trials table;
    what ended tuning: "stalled", "trial cap" or "time budget").
    ``deadline`` (epoch seconds) is the global budget's; ``training.tuning.timeout_seconds`` caps this
    model's share of it. ``fold_seconds`` (the defaults' fold time) is the budget's first estimate of
    a fold, so a model whose turn comes late starts no trial it cannot finish.
    """
    import optuna

    from pipeline_core.modeling.training import evaluate

    tuning = cfg.tuning
    if tuning.n_workers > 1 and tuning.storage is None:
        raise ConfigError("training.tuning.n_workers > 1 needs training.tuning.storage (a journal file path or an RDB URL)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # trial results are logged to MLflow instead
    patience = stall_patience(len(search_space(name, model_cfg.search_space)))  # also refuses a bad space before any worker starts
    if tuning.timeout_seconds is not None:
        own = time.time() + tuning.timeout_seconds
        deadline = own if deadline is None else min(deadline, own)
    seen = [fold_seconds] if fold_seconds else []
    budget = TimeBudget(deadline, list(seen))
    # Created once, here: concurrent creation of one study on SQLite fails.
    study = optuna.create_study(study_name=study_name, direction=direction(cfg), sampler=_sampler(cfg.seed),
                                pruner=_pruner(tuning.cv_folds), storage=open_storage(tuning.storage), load_if_exists=True)
    study.set_user_attr("stopped_by", "")  # this run's reason only, also in a resumed study
    done = sum(t.state.name in FINISHED for t in study.get_trials(deepcopy=False))
    cap = trial_cap(cfg, deadline)
    missing = None if cap is None else max(cap - done, 0)
    if done:
        log.info("%s: study %s resumes with %d finished trials, %s to go", name, study_name, done, missing)
    keep = BestEvaluation(direction(cfg) == "minimize")
    if tuning.n_workers == 1 or (missing is not None and missing <= 1):
        run_trials(study, make_objective(name, model_cfg, preprocessor, data, cfg, n_jobs, budget, worker=0, keep=keep), missing, budget,
                   report_progress(name, budget, cfg.time_budget_seconds), patience)
    else:
        shares = worker_shares(missing, tuning.n_workers)
        log.info("%s: %d Optuna workers on study %s, trials %s", name, len(shares), study_name, shares)
        work = partial(tune_worker, name=name, model_cfg=model_cfg, preprocessor=preprocessor, data=data, cfg=cfg,
                       n_jobs=n_jobs, study_name=study_name, deadline=budget.deadline, keep=keep, patience=patience, seen=seen)
        (run_workers or run_sequentially)(work, shares)
    trials = trial_rows(study)
    if study.user_attrs.get("stopped_by"):
        ended = "stalled"
        log.info("%s: tuning stopped after %d trials, %s", name, len(trials), study.user_attrs["stopped_by"])
    else:
        ended = "trial cap" if cap is not None and sum(t["state"] in FINISHED for t in trials) >= cap else "time budget"
    completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not completed:
        if trials:
            log.warning("%s: no Optuna trial completed within the time budget; the model keeps its defaults", name)
        else:  # queued behind other models' tuning: its turn came too late for a fold and its final fit
            log.info("%s: the time budget ended before its turn to be tuned; the model keeps its defaults", name)
        return None, trials, ended
    best = study.best_trial
    if best.number in keep.by_trial:
        return keep.by_trial[best.number], trials, ended
    # the best trial ran in an earlier run of a resumed study: its out-of-fold predictions are not in memory
    params = trial_params(name, model_cfg, best.params)
    return evaluate(name, params, preprocessor, data, cfg, n_jobs), trials, ended


def tune_worker(index: int, n_trials: int | None, *, name: str, model_cfg: ModelConfig, preprocessor: Any, data: Split,
                cfg: TrainingConfig, n_jobs: int, study_name: str, deadline: float | None, keep: BestEvaluation | None = None,
                patience: int | None = None, seen: list[float] | None = None) -> None:
    """One worker: load the shared study and run ``n_trials`` of it with sampler seed + index, within the deadline."""
    import optuna

    from pipeline_core.modeling.concurrency import limit_threads

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_name, storage=open_storage(cfg.tuning.storage),
                              sampler=_sampler(cfg.seed + index), pruner=_pruner(cfg.tuning.cv_folds))
    budget = TimeBudget(deadline, list(seen or []))
    objective = make_objective(name, model_cfg, preprocessor, data, cfg, n_jobs, budget, worker=index, keep=keep)
    with limit_threads(n_jobs):
        run_trials(study, objective, n_trials, budget, report_progress(name, budget, cfg.time_budget_seconds), patience)
