"""Optuna tuning of one model: a seeded study under cross-validation, a wall-time budget that
holds between folds, and worker processes that share one study through a storage.

What the budget guarantees: no trial and no fold starts once less time is left than the mean
fold time seen so far, so tuning ends within ``timeout_seconds`` plus at most the overrun of the
fold in progress (a single fit cannot be interrupted). The final out-of-fold pass and refit of
the best parameters come after tuning and are not part of the budget.

Workers (``n_workers > 1``): the study is created once here, then each worker process loads it
and runs its share of the trials still missing, so ``n_trials`` is the study's total however
many workers run and however often a run resumes. Worker ``i`` samples with ``seed + i``; one
worker runs in this process with ``seed``, exactly as a plain run does.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline_core.config import ModelConfig, TrainingConfig
from pipeline_core.errors import ConfigError
from pipeline_core.model_zoo import search_space, suggest
from pipeline_core.training import Split, cv_scores

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
                     "pid": t.user_attrs.get("pid"), "seconds": seconds, **{f"param_{k}": v for k, v in t.params.items()}})
    return rows


def tune(name: str, model_cfg: ModelConfig, preprocessor: Any, data: Split, cfg: TrainingConfig, n_jobs: int,
         study_name: str) -> tuple[dict[str, Any], list[dict[str, Any]], bool]:
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
        run_worker_processes({"name": name, "model_cfg": model_cfg, "preprocessor": preprocessor, "data": data, "cfg": cfg,
                              "n_jobs": n_jobs, "study_name": study_name, "deadline": budget.deadline},
                             worker_shares(missing, tuning.n_workers))
    trials = trial_rows(study)
    completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not completed:
        log.warning("%s: no Optuna trial completed within the budget (training.tuning.timeout_seconds=%s); using the fixed params",
                    name, tuning.timeout_seconds)
        return dict(model_cfg.params), trials, False
    best = study.best_trial
    params = {**model_cfg.params, **best.params}
    if name == "xgboost" and "best_rounds" in best.user_attrs:
        params["n_estimators"] = best.user_attrs["best_rounds"]
    return params, trials, True


def run_worker_processes(payload: dict[str, Any], shares: list[int]) -> None:
    """Start one `python -m pipeline_core.tuning` per share on the shared study and wait for all.

    Separate interpreters (not multiprocessing) so this works from any host process, a Dask
    worker's daemon process included. The payload is handed over as a pickle in a private
    temporary folder that this process creates and removes; nothing from elsewhere is unpickled.
    """
    import pipeline_core

    env = dict(os.environ)
    root = str(Path(pipeline_core.__file__).resolve().parent.parent)  # the children import this very code
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    with tempfile.TemporaryDirectory(prefix="optuna-workers-") as tmp:
        path = Path(tmp) / "payload.pkl"
        path.write_bytes(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
        procs: list[tuple[int, subprocess.Popen[bytes], Path]] = []
        try:
            for index, share in enumerate(shares):
                out = Path(tmp) / f"worker-{index}.log"
                with out.open("wb") as fh:
                    cmd = [sys.executable, "-m", "pipeline_core.tuning", str(path), str(index), str(share)]
                    procs.append((index, subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env), out))
            log.info("%s: %d Optuna workers on study %s, trials %s", payload["name"], len(procs), payload["study_name"], shares)
            for _, proc, _ in procs:
                proc.wait()
        finally:
            for _, proc, _ in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        failed = [(i, p.returncode, out.read_text(errors="replace").strip().splitlines()[-1:]) for i, p, out in procs if p.returncode]
        if failed:
            raise RuntimeError("Optuna worker(s) failed: " + "; ".join(f"worker {i} exit {rc}: {' '.join(last)}" for i, rc, last in failed))


def worker_main(payload_path: str, index: int, n_trials: int) -> None:
    """One worker process: load the shared study and run ``n_trials`` of it with sampler seed + index."""
    import optuna

    from pipeline_core.concurrency import limit_threads

    p = pickle.loads(Path(payload_path).read_bytes())
    cfg: TrainingConfig = p["cfg"]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=p["study_name"], storage=open_storage(cfg.tuning.storage),
                              sampler=_sampler(cfg.seed + index), pruner=_pruner())
    budget = TimeBudget(p["deadline"])
    objective = make_objective(p["name"], p["model_cfg"], p["preprocessor"], p["data"], cfg, p["n_jobs"], budget, worker=index)
    with limit_threads(p["n_jobs"]):
        run_trials(study, objective, n_trials, budget)


if __name__ == "__main__":
    worker_main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
