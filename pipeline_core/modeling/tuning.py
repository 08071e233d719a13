"""Optuna tuning of one model: a seeded study under cross-validation, a wall-time budget that
holds between folds, and worker processes that share one study through a storage.

What the budget guarantees: no trial and no fold starts once less time is left than the mean
fold time seen so far, so tuning ends within ``timeout_seconds`` plus at most the overrun of the
fold in progress (a single fit cannot be interrupted). The final out-of-fold pass and refit of
the best parameters come after tuning and are not part of the budget.

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

from pipeline_core.config import ModelConfig, TrainingConfig
from pipeline_core.errors import ConfigError
from pipeline_core.modeling.specs import model_spec, search_space, suggest
from pipeline_core.modeling.training import Split, cv_scores

log = logging.getLogger(__name__)

FINISHED = ("COMPLETE", "PRUNED", "FAIL")


@dataclass
class TimeBudget:
    """A wall-clock deadline (epoch seconds, shared by processes) and the fold times seen so far."""

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
        """Room for one more fold of average length."""
        left = self.remaining()
        return left > 0 and left >= self.mean_fold()

    def record_fold(self, seconds: float) -> None:
        self.fold_seconds.append(seconds)

    def stop_when_spent(self, study: Any, trial: Any) -> None:
        """Optuna callback: end the study once no further fold fits in the budget."""
        if not self.allows_fold():
            study.stop()


def open_storage(url: str | None) -> Any:
    """None: in memory; a URL with a scheme: an RDB (SQLite, PostgreSQL, MySQL); a plain path: a journal file."""
    import optuna

    if url is None:
        return None
    if "://" in url:
        # SQLite serialises writers: wait for the lock instead of failing when workers write at once.
        engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
        return optuna.storages.RDBStorage(url, engine_kwargs=engine)
    from optuna.storages.journal import JournalFileBackend

    path = Path(url).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def _sampler(seed: int) -> Any:
    import optuna

    return optuna.samplers.TPESampler(seed=seed)


def _pruner() -> Any:
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)


def make_objective(name: str, model_cfg: ModelConfig, preprocessor: Any, data: Split, cfg: TrainingConfig, n_jobs: int,
                   budget: TimeBudget, worker: int) -> Any:
    """The CV objective over data split once; each trial records which worker process ran it."""
    space = search_space(name, model_cfg.search_space)

    def objective(trial: Any) -> float:
        trial.set_user_attr("worker", worker)
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("thread", threading.get_native_id())
        params = {**model_cfg.params, **suggest(trial, space)}
        scores, _, rounds = cv_scores(name, params, preprocessor, data, cfg, n_jobs, trial, budget)
        if rounds:
            trial.set_user_attr("best_rounds", int(np.mean(rounds)))
        return float(np.mean(scores))

    return objective


def run_trials(study: Any, objective: Any, n_trials: int, budget: TimeBudget) -> None:
    """Up to ``n_trials`` trials in this process, within the budget."""
    if n_trials <= 0 or not budget.allows_fold():
        return
    timeout = None if budget.deadline is None else max(budget.remaining(), 0.0)
    study.optimize(objective, n_trials=n_trials, timeout=timeout, callbacks=[budget.stop_when_spent], n_jobs=1)


def worker_shares(missing: int, n_workers: int) -> list[int]:
    """Trials per worker so that they add up to exactly ``missing``; workers without a share are not started."""
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
WorkerMap = Callable[[Callable[[int, int], None], list[int]], None]


def run_sequentially(work: Callable[[int, int], None], shares: list[int]) -> None:
    for index, share in enumerate(shares):
        work(index, share)


def tune(name: str, model_cfg: ModelConfig, preprocessor: Any, data: Split, cfg: TrainingConfig, n_jobs: int,
         study_name: str, run_workers: WorkerMap | None = None) -> tuple[dict[str, Any], list[dict[str, Any]], bool]:
    """Best hyperparameters by seeded TPE under stratified k-fold CV, with median pruning on fold scores.

    Returns (params, trials table, tuned). When no trial completes within the budget the model
    keeps its fixed params (tuned=False) rather than failing the run.
    """
    import optuna

    tuning = cfg.tuning
    if tuning.n_workers > 1 and tuning.storage is None:
        raise ConfigError("training.tuning.n_workers > 1 needs training.tuning.storage (a journal file path or an RDB URL)")
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # trial results are logged to MLflow instead
    search_space(name, model_cfg.search_space)  # refuse a bad space before any worker starts
    budget = TimeBudget.starting_now(tuning.timeout_seconds)
    # Created once, here: concurrent creation of one study on SQLite fails.
    study = optuna.create_study(study_name=study_name, direction="maximize", sampler=_sampler(cfg.seed), pruner=_pruner(),
                                storage=open_storage(tuning.storage), load_if_exists=True)
    done = sum(t.state.name in FINISHED for t in study.get_trials(deepcopy=False))
    missing = max(tuning.n_trials - done, 0)
    if done:
        log.info("%s: study %s resumes with %d finished trials, %d to go", name, study_name, done, missing)
    if tuning.n_workers == 1 or missing <= 1:
        run_trials(study, make_objective(name, model_cfg, preprocessor, data, cfg, n_jobs, budget, worker=0), missing, budget)
    else:
        shares = worker_shares(missing, tuning.n_workers)
        log.info("%s: %d Optuna workers on study %s, trials %s", name, len(shares), study_name, shares)
        work = partial(tune_worker, name=name, model_cfg=model_cfg, preprocessor=preprocessor, data=data, cfg=cfg,
                       n_jobs=n_jobs, study_name=study_name, deadline=budget.deadline)
        (run_workers or run_sequentially)(work, shares)
    trials = trial_rows(study)
    completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not completed:
        log.warning("%s: no Optuna trial completed within the budget (training.tuning.timeout_seconds=%s); using the fixed params",
                    name, tuning.timeout_seconds)
        return dict(model_cfg.params), trials, False
    best = study.best_trial
    params = {**model_cfg.params, **best.params}
    rounds_param = model_spec(name).rounds_param
    if rounds_param and "best_rounds" in best.user_attrs:
        params[rounds_param] = best.user_attrs["best_rounds"]
    return params, trials, True


def tune_worker(index: int, n_trials: int, *, name: str, model_cfg: ModelConfig, preprocessor: Any, data: Split,
                cfg: TrainingConfig, n_jobs: int, study_name: str, deadline: float | None) -> None:
    """One worker: load the shared study and run ``n_trials`` of it with sampler seed + index, within the deadline."""
    import optuna

    from pipeline_core.modeling.concurrency import limit_threads

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_name, storage=open_storage(cfg.tuning.storage),
                              sampler=_sampler(cfg.seed + index), pruner=_pruner())
    budget = TimeBudget(deadline)
    objective = make_objective(name, model_cfg, preprocessor, data, cfg, n_jobs, budget, worker=index)
    with limit_threads(n_jobs):
        run_trials(study, objective, n_trials, budget)
