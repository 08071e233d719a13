"""Training at scale: concurrency sizing, Dask, Optuna workers on one study, time budgets, local export."""

import json
import os
import shutil
import time

import numpy as np
import pandas as pd
import pytest

from pipeline_core.config import ModelConfig, TrainingConfig, parse_config
from pipeline_core.errors import ConfigError, StorageError
from pipeline_core.modeling.concurrency import plan_training
from pipeline_core.modeling.tuning import worker_shares

FAST = [
    "training.models={logistic_regression: {}, xgboost: {}}",
    "training.tuning.n_trials=3",
    "training.tuning.cv_folds=3",
    "training.n_jobs=1",  # the same threads per fit in every run below, whatever the machine
]


# --- sizing -------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "cores, models, workers, n_jobs, max_models, expected",
    [
        (2, 3, 1, None, None, (2, 1)),   # two models at once, one thread each
        (16, 3, 1, None, None, (3, 5)),  # every model at once, the spare cores as threads
        (2, 3, 2, None, None, (1, 1)),   # two tuning workers fill both cores: one model at a time
        (8, 3, 2, None, None, (3, 1)),
        (8, 2, 2, None, None, (2, 2)),
        (8, 3, 1, 4, None, (2, 4)),      # explicit threads per fit are kept; fewer models at once
        (2, 3, 1, 4, None, (1, 4)),      # never fewer than one model
        (16, 3, 1, None, 1, (1, 16)),    # max_models=1: the sequential run
        (1, 1, 1, None, None, (1, 1)),
    ],
)
def test_plan_training(cores, models, workers, n_jobs, max_models, expected):
    plan = plan_training(cores, models, workers, n_jobs, max_models)
    assert (plan.concurrent_models, plan.n_jobs) == expected


def test_plan_never_oversubscribes():
    for cores in range(1, 33):
        for models in range(1, 6):
            for workers in range(1, cores + 1):
                plan = plan_training(cores, models, workers)
                assert plan.cores_used <= cores, (cores, models, workers, plan)
                assert 1 <= plan.concurrent_models <= models


@pytest.mark.parametrize("missing, workers, shares", [(6, 2, [3, 3]), (7, 3, [3, 2, 2]), (1, 4, [1]), (0, 2, [])])
def test_worker_shares_add_up_to_the_budget(missing, workers, shares):
    assert worker_shares(missing, workers) == shares


# --- config and CLI -------------------------------------------------------------------------------

BASE = {"dataset": {"name": "d", "source": "x.csv", "target": "y"}}


@pytest.mark.parametrize(
    "concurrency, message",
    [
        ({"task_runner": "ray"}, "key 'training.concurrency.task_runner': Input should be 'thread' or 'dask'"),
        ({"dask_address": "tcp://h:8786"}, "training.concurrency.dask_address is set but training.concurrency.task_runner is not 'dask'"),
        ({"task_runner": "dask", "dask_address": "h:8786"}, "key 'training.concurrency.dask_address': String should match"),
        ({"max_models": 0}, "key 'training.concurrency.max_models'"),
    ],
)
def test_concurrency_config_errors_name_the_key(concurrency, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({**BASE, "training": {"concurrency": concurrency}})


def test_cli_training_options_become_validated_overrides():
    from typer.testing import CliRunner

    from pipeline_cli.main import app, training_overrides

    assert training_overrides(None, None, None, None) == []
    overrides = training_overrides(2, None, "tcp://10.0.0.5:8786", "results/artifacts")
    cfg = parse_config(BASE, overrides).training
    assert (cfg.tuning.n_workers, cfg.concurrency.task_runner, cfg.concurrency.dask_address, cfg.export_dir) == (
        2, "dask", "tcp://10.0.0.5:8786", "results/artifacts")
    for command in ("train", "run"):
        help_text = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"}).stdout
        for option in ("--n-workers", "--task-runner", "--dask-address", "--export"):
            assert option in help_text, (command, option)


# --- Optuna: shared study, resume, time budget --------------------------------------------------------

def _toy(n=400, seed=0):
    from pipeline_core.modeling.preprocessing import build_preprocessor

    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"x": rng.normal(size=n), "c": rng.choice(["a", "b", "c"], n).astype(object)})
    y = ((X["x"] + (X["c"] == "a") * 0.8 + rng.normal(0, 0.7, n)) > 0.5).astype(int).to_numpy()
    prep = {"numeric_columns": ["x"], "categorical_columns": ["c"], "scaler": "robust",
            "imputation": {"numeric": "median", "categorical": "most_frequent"}}
    return X, y, build_preprocessor(prep)


def _tuning_cfg(**tuning):
    return TrainingConfig.model_validate({"tuning": {"cv_folds": 3, **tuning}})


def _threads(work, shares):
    """A WorkerMap that runs the workers side by side on threads, as the Prefect tasks do."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(shares)) as pool:
        for future in [pool.submit(work, i, n) for i, n in enumerate(shares)]:
            future.result()


def test_two_workers_share_one_study(tmp_path):
    import optuna

    from pipeline_core.modeling.training import split_data
    from pipeline_core.modeling.tuning import open_storage, tune

    X, y, pre = _toy()
    storage = str(tmp_path / "study.journal")
    cfg = _tuning_cfg(n_trials=6, n_workers=2, storage=storage)
    best, trials, _ = tune("logistic_regression", ModelConfig(), pre, split_data(X, y, cfg), cfg, 1, "shared", _threads)
    params = best.params
    assert 1e-3 <= params["C"] <= 10
    study = optuna.load_study(study_name="shared", storage=open_storage(storage))
    assert len(study.trials) == 6 == len(trials)  # n_trials is the study's total, not per worker
    assert {t.user_attrs["worker"] for t in study.trials} == {0, 1}
    assert len({t.user_attrs["thread"] for t in study.trials}) == 2  # each worker on its own thread
    assert params["C"] == study.best_params["C"]  # the caller takes the best of the shared study


def test_without_a_worker_map_the_workers_run_in_turn(tmp_path):
    from pipeline_core.modeling.training import split_data
    from pipeline_core.modeling.tuning import tune

    X, y, pre = _toy()
    cfg = _tuning_cfg(n_trials=4, n_workers=2, storage=str(tmp_path / "study.journal"))
    best, trials, _ = tune("logistic_regression", ModelConfig(), pre, split_data(X, y, cfg), cfg, 1, "turns")
    assert best is not None and len(trials) == 4 and {t["worker"] for t in trials} == {0, 1}


def test_a_rerun_on_the_same_storage_resumes_the_study(tmp_path):
    from pipeline_core.modeling.training import split_data
    from pipeline_core.modeling.tuning import tune

    X, y, pre = _toy()
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    data = split_data(X, y, _tuning_cfg())
    best, first, _ = tune("logistic_regression", ModelConfig(), pre, data, _tuning_cfg(n_trials=3, storage=storage), 1, "resume")
    resumed, again, _ = tune("logistic_regression", ModelConfig(), pre, data, _tuning_cfg(n_trials=3, storage=storage), 1, "resume")
    _, more, _ = tune("logistic_regression", ModelConfig(), pre, data, _tuning_cfg(n_trials=5, storage=storage), 1, "resume")
    assert (len(first), len(again), len(more)) == (3, 3, 5)
    assert again == first and more[:3] == first
    # the resumed run's best trial ran in the first run: its out-of-fold predictions are computed again, the same
    assert resumed.params == best.params and resumed.cv_mean == pytest.approx(best.cv_mean)
    assert np.allclose(resumed.oof, best.oof)


def test_tuning_stops_within_its_time_budget_and_still_yields_a_model():
    from pipeline_core.modeling.training import split_data, train_model

    X, y, pre = _toy(n=3000)
    budget = 2.0
    cfg = _tuning_cfg(n_trials=10_000, timeout_seconds=budget)
    start = time.perf_counter()
    result = train_model("random_forest", ModelConfig(params={"n_estimators": 40}), pre, split_data(X, y, cfg), cfg, 1, "budget")
    elapsed = time.perf_counter() - start
    fold = max(t["seconds"] for t in result.trials if t["seconds"]) / cfg.tuning.cv_folds
    tuning = sum(t["seconds"] or 0 for t in result.trials)
    assert tuning <= budget + 2 * fold + 1.0, (tuning, fold)  # within the budget plus about one fold (and slack for a busy box)
    assert elapsed < budget + 10  # final CV pass and refit of one forest on top
    assert len(result.trials) < 10_000 and result.metrics["roc_auc"] > 0.75


def test_a_budget_too_small_for_any_trial_falls_back_to_fixed_params():
    from pipeline_core.modeling.training import split_data, train_model

    X, y, pre = _toy()
    cfg = _tuning_cfg(n_trials=50, timeout_seconds=0.001)
    result = train_model("logistic_regression", ModelConfig(params={"C": 0.5}), pre, split_data(X, y, cfg), cfg, 1, "tiny")
    assert not result.tuned and result.params == {"C": 0.5}
    assert all(t["state"] != "COMPLETE" for t in result.trials)
    assert result.metrics["roc_auc"] > 0.75


# --- the training flow: threads, sequential, Dask, workers + export -------------------------------------

@pytest.fixture(scope="module")
def scaled(tmp_path_factory, prefect_harness, demo_dir):
    """Gold once; then the same training on the thread runner, one model at a time, and on Dask, each in its own MLflow store."""
    from flows.layers import run_flow
    from flows.training import training_flow
    from tests.conftest import shipped_config

    tmp = tmp_path_factory.mktemp("scale")
    config = shipped_config("credit_default", demo_dir / "credit.csv", tmp)
    run_flow(str(config), FAST, through="gold")

    def train(label, *extra):
        return training_flow(str(config), [*FAST, f"mlflow.tracking_uri=sqlite:///{tmp / label}.db", *extra])

    return {"config": config, "tmp": tmp,
            "thread": train("thread"),
            "sequential": train("sequential", "training.concurrency.max_models=1"),
            "dask": train("dask", "training.concurrency.task_runner=dask")}


def _board(summary):
    return [(m["name"], m["metrics"], m["threshold"], m["params"], m["cv_mean"]) for m in summary["models"]]


def test_concurrent_thread_and_dask_runs_match_the_sequential_run(scaled):
    thread, sequential, dask = scaled["thread"], scaled["sequential"], scaled["dask"]
    assert thread["concurrency"]["concurrent_models"] == min(2, os.cpu_count() or 1)
    assert sequential["concurrency"]["concurrent_models"] == 1
    assert dask["concurrency"]["task_runner"] == "dask"
    # the same models, parameters and scores; a model alone fits with two threads and side by side with one, so BLAS
    # may sum in another order: scores agree to the last few bits, not always bit for bit
    for other in (sequential, dask):
        assert [(name, params) for name, _, _, params, _ in _board(thread)] == [(name, params) for name, _, _, params, _ in _board(other)]
        for (_, metrics, threshold, _, cv), (_, metrics2, threshold2, _, cv2) in zip(_board(thread), _board(other)):
            assert metrics == pytest.approx(metrics2, rel=1e-9) and (threshold, cv) == pytest.approx((threshold2, cv2), rel=1e-9)
    assert thread["best_model"] == sequential["best_model"] == dask["best_model"]


def test_concurrent_models_log_into_their_own_runs(scaled):
    from mlflow import MlflowClient

    for label in ("thread", "dask"):
        client = MlflowClient(scaled[label]["tracking_uri"])
        for m in scaled[label]["models"]:
            run_id = m.get("holdout_run_id", m["run_id"])  # the best model's own run, not the run of its refit on every row
            run = client.get_run(run_id)
            assert run.data.tags["model"] == m["name"] and run.info.run_name == m["name"]
            assert set(run.data.params) == {k for k in m["params"]}
            assert run.data.metrics["roc_auc"] == pytest.approx(m["metrics"]["roc_auc"])
            assert run.data.tags["tuned"] == str(m["tuned"]).lower()
            if m["name"] in scaled[label]["tuned_models"]:
                trials = _read_artifact(client, run_id, "optuna/trials.json", scaled["tmp"])
                assert len(trials["data"]) == 3  # training.tuning.n_trials in FAST
            else:  # the budget's first rung found it less promising: trained with its defaults, and says so
                assert not m["tuned"] and run.data.tags["untuned_reason"] == "not among the most promising defaults"
        assert len(scaled[label]["tuned_models"]) == 1  # half of the two models


def _read_artifact(client, run_id, path, tmp):
    local = client.download_artifacts(run_id, path, str(tmp / f"dl-{run_id}"))
    with open(local) as fh:
        return json.load(fh)


@pytest.fixture(scope="module")
def workers_and_export(scaled):
    """`pipeline-cli train --n-workers 2 --export DIR` on one model."""
    from typer.testing import CliRunner

    from pipeline_cli.main import app

    tmp = scaled["tmp"]
    export_dir = tmp / "artifacts"
    args = ["train", "--config", str(scaled["config"]), *[a for o in FAST for a in ("--set", o)],
            "--set", "training.models={logistic_regression: {}}", "--set", "training.tuning.n_trials=4",
            "--set", f"mlflow.tracking_uri=sqlite:///{tmp / 'workers'}.db", "--n-workers", "2", "--export", str(export_dir), "--json"]
    cwd = os.getcwd()
    os.chdir(tmp)  # the CLI writes its log under ./results/logs
    try:
        result = CliRunner().invoke(app, args)
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output[-3000:]
    return json.loads(result.stdout)["result"][0], export_dir


def test_n_workers_runs_two_prefect_task_workers_on_one_study_from_the_cli(workers_and_export, scaled):
    from mlflow import MlflowClient

    summary, _ = workers_and_export
    assert summary["concurrency"]["tuning_workers"] == 2
    model = summary["models"][0]
    assert model["optuna_storage"].endswith(os.path.join("store", "optuna", "credit_default.journal"))  # default under the store root
    trials = _read_artifact(MlflowClient(summary["tracking_uri"]), model.get("holdout_run_id", model["run_id"]), "optuna/trials.json",
                            scaled["tmp"])
    columns = trials["columns"]
    rows = [dict(zip(columns, r)) for r in trials["data"]]
    assert len(rows) == 4 and {r["worker"] for r in rows} == {0, 1} and len({r["thread"] for r in rows}) == 2


def test_export_loads_as_the_registered_model(workers_and_export, scaled, tmp_path):
    import mlflow
    import skops.io

    from pipeline_core.config import load_config
    from pipeline_core.modeling.holdout import raw_holdout
    from pipeline_core.modeling.training import to_pandas_features
    from pipeline_io.export import KNOWN_PREPROCESSOR_TYPES, export_registered_model, is_export_of, load_preprocessor
    from pipeline_io.readers import load_training_data
    from pipeline_io.store import Store

    summary, export_dir = workers_and_export
    folder = export_dir / f"{summary['registered_model']}-v{summary['version']}"
    assert summary["export_dir"] == str(folder)
    assert sorted(p.name for p in export_dir.iterdir()) == [folder.name]  # nothing half-written left beside it
    assert {p.name for p in folder.iterdir()} == {"model", "model_metadata.json", "preprocessor.skops", "config_snapshot.json"}
    meta = json.loads((folder / "model_metadata.json").read_text())
    best = summary["models"][0]
    assert meta["version"] == summary["version"] and meta["model_uri"] == f"models:/{summary['registered_model']}/{summary['version']}"
    assert meta["hyperparameters"] == best["params"] and meta["metrics"] == best["metrics"] and meta["threshold"] == best["threshold"]
    assert meta["duration_seconds"] == best["seconds"] and meta["trained_at"] and meta["exported_at"]
    snapshot = json.loads((folder / "config_snapshot.json").read_text())
    assert snapshot["training"]["tuning"]["n_workers"] == 2
    # a re-export replaces only an export of the same version from the same store, with nothing else in it
    name, version = summary["registered_model"], summary["version"]
    assert is_export_of(folder, meta["tracking_uri"], name, version)
    assert not is_export_of(folder, "sqlite:///another-store.db", name, version) and not is_export_of(folder, meta["tracking_uri"], name, "2")
    theirs = tmp_path / "theirs"
    shutil.copytree(folder, theirs / folder.name)
    (theirs / folder.name / "notes.txt").write_text("mine")
    assert not is_export_of(theirs / folder.name, meta["tracking_uri"], name, version)
    cfg = load_config(scaled["config"], [f"training.export_dir={theirs}"])
    with pytest.raises(StorageError, match="holds something other than this store's export of .* and is left as it is"):
        export_registered_model(cfg, summary, best)
    assert (theirs / folder.name / "notes.txt").read_text() == "mine"

    cfg = load_config(scaled["config"])
    data = load_training_data(cfg, Store(cfg.store.root))
    raw = raw_holdout(data).head(25)
    mlflow.set_tracking_uri(summary["tracking_uri"])
    registered = mlflow.pyfunc.load_model(meta["model_uri"]).predict(raw)["probability"].to_numpy()
    exported = mlflow.pyfunc.load_model(str(folder / "model")).predict(raw)["probability"].to_numpy()
    np.testing.assert_array_equal(exported, registered)

    path = folder / "preprocessor.skops"
    untrusted = skops.io.get_untrusted_types(file=path)
    assert set(untrusted) <= KNOWN_PREPROCESSOR_TYPES  # only types we know, before anything is loaded
    pre = skops.io.load(path, trusted=untrusted)
    features = to_pandas_features(data.gold[data.split.test_index[:25].tolist()], data.preprocessing["numeric_columns"],
                                            data.preprocessing["categorical_columns"])
    reference = mlflow.pyfunc.load_model(meta["model_uri"]).get_raw_model().pipeline.named_steps["pre"]
    np.testing.assert_array_equal(pre.transform(features), reference.transform(features))
    np.testing.assert_array_equal(load_preprocessor(path).transform(features), pre.transform(features))


def test_a_study_that_stops_gaining_ends_before_the_deadline_and_says_so():
    import time

    from pipeline_core.modeling.budget import stall_patience
    from pipeline_core.modeling.training import split_data
    from pipeline_core.modeling.tuning import tune

    X, y, pre = _toy()
    cfg = _tuning_cfg()
    flat = ModelConfig(search_space={"C": {"type": "float", "low": 1.0, "high": 1.000001}})  # every trial scores the same
    started = time.time()
    best, trials, ended = tune("logistic_regression", flat, pre, split_data(X, y, cfg), cfg, 1, "flat", deadline=started + 120)
    completed = [t for t in trials if t["state"] == "COMPLETE"]
    assert ended == "stalled" and best is not None
    assert len(completed) == stall_patience(1) + 1  # one first best, then the patience without a gain
    assert time.time() - started < 60  # far from the deadline: the freed time goes to the next model

    _, capped, ended = tune("logistic_regression", flat, pre, split_data(X, y, cfg), _tuning_cfg(n_trials=4), 1, "capped")
    assert ended == "trial cap" and len(capped) == 4


def test_a_model_whose_turn_comes_late_starts_no_trial_its_known_fold_time_cannot_finish():
    import time

    from pipeline_core.modeling.training import split_data
    from pipeline_core.modeling.tuning import tune

    X, y, pre = _toy()
    cfg = _tuning_cfg()
    data = split_data(X, y, cfg)
    late, trials, _ = tune("logistic_regression", ModelConfig(), pre, data, cfg, 1, "late", deadline=time.time() + 2, fold_seconds=5.0)
    assert late is None and trials == []  # 5 s folds and the final fit do not fit in 2 s
    early, trials, _ = tune("logistic_regression", ModelConfig(), pre, data, cfg, 1, "early", deadline=time.time() + 2)
    assert trials  # with no fold time known, a first trial starts


def test_an_unreachable_dask_scheduler_is_refused_in_one_line_before_dask_retries():
    from tasks.runners import refuse_silent_scheduler
    from tests.servers import free_port

    address = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(StorageError, match=f"^training.concurrency.dask_address {address}: no Dask scheduler answers there"):
        refuse_silent_scheduler(address, timeout=1.0)
