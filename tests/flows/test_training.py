"""Training: pure pieces, then one small end-to-end training under the Prefect harness."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline_core.config import TrainingConfig, parse_config
from pipeline_core.errors import ConfigError, DataError, StorageError
from pipeline_core.modeling.promotion import gate_decision
from pipeline_core.modeling.training import split_data, to_pandas_features
from tests.conftest import write_config

FAST = [
    "training.models={logistic_regression: {}, xgboost: {}}",
    "training.tuning.n_trials=3",
    "training.tuning.cv_folds=3",
    "mlflow.min_metrics={roc_auc: 0.7}",
]


def test_features_reach_scikit_learn_as_floats_and_objects_with_nan_for_missing():
    import polars as pl

    frame = pl.DataFrame({"x": [1, None, 3], "r": [0.5, 1.5, None], "code": [2, None, 1], "level": ["a", None, "b"],
                          "flag": [1, 2, 1], "unused": ["u", "v", "w"]})
    X = to_pandas_features(frame, ["x", "r"], ["code", "level", "flag"])
    assert list(X.columns) == ["x", "r", "code", "level", "flag"]
    assert X.dtypes.astype(str).tolist() == ["float64", "float64", "object", "object", "object"]
    assert X["x"].tolist()[::2] == [1.0, 3.0] and np.isnan(X["x"][1]) and np.isnan(X["r"][2])
    # missing categories are NaN (what the imputer looks for), never None; complete integer codes stay ints
    assert X["code"][0] == 2.0 and isinstance(X["code"][1], float) and np.isnan(X["code"][1])
    assert X["level"][0] == "a" and isinstance(X["level"][1], float) and np.isnan(X["level"][1])
    assert [type(v) for v in X["flag"]] == [int, int, int]
    assert to_pandas_features(frame, [], ["level"]).shape == (3, 1)


def test_text_categories_become_python_strings_shared_by_their_rows():
    import polars as pl

    frame = pl.DataFrame({"t": ["b", "a", None, "b", "é"], "none": pl.Series([None] * 5, dtype=pl.String)})
    X = to_pandas_features(frame, [], ["t", "none"])
    assert X["t"].tolist()[:2] == ["b", "a"] and X["t"].tolist()[3:] == ["b", "é"]
    assert [type(v) for v in X["t"]] == [str, str, float, str, str] and np.isnan(X["t"][2])
    assert X["t"][0] is X["t"][3]  # one object per level, not per row
    assert all(isinstance(v, float) and np.isnan(v) for v in X["none"])
    assert to_pandas_features(frame.head(0), [], ["t"]).shape == (0, 1)


def test_split_refuses_unlearnable_targets():
    X = pd.DataFrame({"a": range(40)})
    with pytest.raises(DataError, match="single class"):
        split_data(X, np.zeros(40, dtype=int), TrainingConfig())
    with pytest.raises(DataError, match="3 classes"):
        split_data(X, np.arange(40) % 3, TrainingConfig())
    y = np.array([1] * 5 + [0] * 35)
    with pytest.raises(DataError, match="only 5 rows of the rarer class"):
        split_data(X, y, TrainingConfig())


def test_split_is_stratified_and_seeded():
    X = pd.DataFrame({"a": range(100)})
    y = np.array([1] * 20 + [0] * 80)
    a, b = split_data(X, y, TrainingConfig()), split_data(X, y, TrainingConfig())
    assert a.y_test.sum() == 4 and len(a.y_test) == 20
    assert a.test_index.tolist() == b.test_index.tolist()


def test_a_split_by_id_keeps_each_row_on_its_side_as_the_data_grows():
    rng = np.random.default_rng(0)
    y = (rng.random(7000) < 0.22).astype(int)
    ids = rng.permutation(10**6)[:7000]
    X = pd.DataFrame({"a": range(7000)})
    before = split_data(X.head(5000), y[:5000], TrainingConfig(), ids[:5000])
    assert len(before.test_index) == 1000 and before.y_test.sum() == round(0.2 * y[:5000].sum())  # stratified, exactly
    # rows arrive in another order and 2,000 new ones join them: the holdout of the grown data barely holds a row
    # the first split trained on (only rows at the edge of each class's cut change sides)
    order = rng.permutation(7000)
    after = split_data(X.iloc[order], y[order], TrainingConfig(), ids[order])
    trained_before = set(ids[before.train_index])
    seen = [i for i in ids[order][after.test_index] if i in trained_before]
    assert len(after.test_index) == 1400 and len(seen) < 0.02 * 1400
    other_seed = split_data(X.head(5000), y[:5000], TrainingConfig(seed=7), ids[:5000])
    assert len(set(other_seed.test_index) & set(before.test_index)) < 300  # another seed, another holdout


def test_unknown_model_name_lists_allowed():
    with pytest.raises(ConfigError, match="unknown model.*'catboost'.*allowed: logistic_regression"):
        parse_config({"dataset": {"name": "d", "source": "x.csv", "target": "y"}, "training": {"models": {"catboost": {}}}})


@pytest.mark.parametrize(
    "space, message",
    [
        ({"C": {"type": "float", "low": 5, "high": 1}}, "low \\(5\\) must be below high"),
        ({"C": {"type": "float", "low": 0, "high": 1, "log": True}}, "log scale needs low > 0"),
        ({"C": {"type": "normal"}}, "type must be int, float or categorical"),
        ({"penalty": {"type": "categorical", "choices": []}}, "non-empty choices"),
    ],
)
def test_invalid_search_space_names_key(space, message):
    from pipeline_core.modeling.training import check_training_config

    # refused when the config is read (so `config validate` catches it), before any training
    with pytest.raises(ConfigError, match=f"training.models.logistic_regression.search_space.*{message}"):
        check_training_config(parse_config({"dataset": {"name": "d", "source": "x.csv", "target": "y"},
                                            "training": {"models": {"logistic_regression": {"search_space": space}}}}))


def test_unknown_metric_names_are_config_errors_and_the_schema_lists_the_metrics():
    import typing

    from pipeline_core.config import Metric, PipelineConfig
    from pipeline_core.modeling.metrics import classification_metrics

    minimal = {"dataset": {"name": "d", "source": "x.csv", "target": "y"}}
    with pytest.raises(ConfigError, match="training.primary_metric.*'accuracy', 'precision'"):
        parse_config({**minimal, "training": {"primary_metric": "auc"}})
    with pytest.raises(ConfigError, match="training.tie_breakers.0"):
        parse_config({**minimal, "training": {"tie_breakers": ["youden"]}})
    assert set(typing.get_args(Metric)) == set(classification_metrics(np.array([0, 1]), np.array([0.2, 0.8])))
    schema = json.dumps(PipelineConfig.model_json_schema())
    assert '"roc_auc"' in schema and '"ece"' in schema


def test_gate_decision_branches():
    assert gate_decision({"roc_auc": 0.8}, None, "roc_auc", {"roc_auc": 0.7}) == (True, "no champion yet and every minimum met")
    ok, why = gate_decision({"roc_auc": 0.6}, None, "roc_auc", {"roc_auc": 0.7})
    assert not ok and "roc_auc=0.6000 < 0.7" in why
    ok, why = gate_decision({"roc_auc": 0.80}, {"roc_auc": 0.81}, "roc_auc", {})
    assert not ok and "does not beat" in why
    assert gate_decision({"roc_auc": 0.82}, {"roc_auc": 0.81}, "roc_auc", {})[0]
    # lower-is-better metrics: their bound is a maximum, and beating the champion means lower
    ok, why = gate_decision({"roc_auc": 0.8, "ece": 0.08}, None, "roc_auc", {"ece": 0.05})
    assert not ok and "ece=0.0800 > 0.05" in why
    assert gate_decision({"roc_auc": 0.8, "ece": 0.03}, None, "roc_auc", {"ece": 0.05})[0]
    assert gate_decision({"brier": 0.12}, {"brier": 0.13}, "brier", {})[0]
    assert not gate_decision({"brier": 0.14}, {"brier": 0.13}, "brier", {})[0]


def test_preprocessor_drops_first_level_and_ignores_unknown():
    from pipeline_core.modeling.preprocessing import build_preprocessor

    prep = {"numeric_columns": ["x"], "categorical_columns": ["c"], "scaler": "robust",
            "imputation": {"numeric": "median", "categorical": "most_frequent"}}
    X = pd.DataFrame({"x": [1.0, np.nan, 3.0, 5.0], "c": ["a", "b", "c", np.nan]})
    pre = build_preprocessor(prep).fit(X)
    assert list(pre.get_feature_names_out()) == ["x", "c_b", "c_c"]
    out = pre.transform(pd.DataFrame({"x": [3.0], "c": ["zzz"]}))
    assert out.tolist() == [[0.0, 0.0, 0.0]]  # median-centred; unseen level encodes as all zeros


@pytest.fixture(scope="module")
def trained(tmp_path_factory, prefect_harness, demo_dir):
    """Layers once, then three trainings: first, a forced identical rerun, and one with an unreachable minimum."""
    from flows.layers import run_flow
    from flows.training import training_flow
    from tests.conftest import shipped_config

    config = shipped_config("credit_default", demo_dir / "credit.csv", tmp_path_factory.mktemp("train"))
    run_flow(str(config), FAST, through="gold")
    first = training_flow(str(config), FAST)
    second = training_flow(str(config), FAST, refresh=True)
    third = training_flow(str(config), [*FAST, "mlflow.min_metrics={roc_auc: 0.99}"])
    return config, first, second, third


def test_training_registers_and_promotes(trained):
    config, first, _, _ = trained
    assert first["promoted"] and first["version"] == "1" and first["champion_version"] == "1"
    # roc_auc needs no threshold, so `rank_by: auto` ranks by its cross-validated mean, best first
    assert first["ranked_by"] == "cv"
    assert [m["cv_mean"] for m in first["models"]] == sorted((m["cv_mean"] for m in first["models"]), reverse=True)
    best = first["models"][0]
    assert best["metrics"]["roc_auc"] > 0.7
    assert set(best["metrics"]) == {"accuracy", "precision", "recall", "f1", "specificity", "fpr", "fnr",
                                    "balanced_accuracy", "mcc", "roc_auc", "pr_auc", "brier", "ece"}
    assert 0.0 < best["threshold"] < 1.0
    # the budget's first rung: the better of the two defaults is tuned, the other keeps its defaults and says why
    (tuned,) = [m for m in first["models"] if m["tuned"]]
    (untuned,) = [m for m in first["models"] if not m["tuned"] and m["params_from"] != "ensemble"]
    assert first["tuned_models"] == [tuned["name"]] and tuned["cv_mean"] >= untuned["cv_mean"]
    assert tuned["trials"]["COMPLETE"] + tuned["trials"]["PRUNED"] == 3  # training.tuning.n_trials in FAST
    assert untuned["trials"] == {"COMPLETE": 0, "PRUNED": 0, "FAIL": 0} and untuned["params_from"] == "defaults"
    assert untuned["note"] == "not among the most promising defaults" and untuned["folds_run"] == 3
    from mlflow import MlflowClient

    from pipeline_core.config import load_config
    from pipeline_io import registry

    registry.connect(load_config(config))
    client = MlflowClient()
    # the best model's own run is where the holdout scored it; the refit on every row has a run of its own
    plots = {a.path for a in client.list_artifacts(tuned.get("holdout_run_id", tuned["run_id"]), "plots")}
    assert {"plots/confusion_matrix.png", "plots/roc_curve.png", "plots/pr_curve.png", "plots/calibration_curve.png",
            "plots/feature_importance.png", "plots/optuna_history.png"} <= plots
    run = client.get_run(best["run_id"])
    assert run.data.tags["mlflow.parentRunId"] == first["parent_run_id"]
    assert {"dataset", "feature_version", "data_fingerprint", "config_hash", "git_commit"} <= set(run.data.tags)
    assert run.data.metrics["roc_auc"] == pytest.approx(best["metrics"]["roc_auc"])


def test_same_inputs_same_metrics_and_gate_keeps_champion(trained):
    _, first, second, third = trained
    assert [m["metrics"] for m in second["models"]] == [m["metrics"] for m in first["models"]]
    assert second["version"] == "2" and not second["promoted"] and "not better by more than 0 at that confidence" in second["reason"]
    assert second["champion_version"] == "1"
    # the same model scored twice on the same rows: improvement 0, and so is every resample of it
    evidence = second["evidence"]
    assert (evidence["metric"], evidence["delta"], evidence["low"], evidence["high"]) == ("roc_auc", 0.0, 0.0, 0.0)
    from mlflow import MlflowClient

    tags = MlflowClient().get_model_version(second["registered_model"], "2").tags
    assert json.loads(tags["gate_evidence"]) == {**evidence, "champion": "1"}
    assert third["version"] == "3" and not third["promoted"] and "below the configured minimum" in third["reason"]


def test_registry_signature_changes_with_every_write_and_refuses_what_it_cannot_prove(tmp_path):
    import sqlite3

    from pipeline_io.registry_state import registry_signature

    def config(uri: str):
        return parse_config({"dataset": {"name": "d", "source": "x.csv", "target": "y"}, "store": {"root": str(tmp_path / "store")},
                             "mlflow": {"tracking_uri": uri}})

    db = tmp_path / "mlflow.db"
    local = config(f"sqlite:///{db}")
    assert registry_signature(local) is None  # no database yet
    with sqlite3.connect(db) as conn:
        conn.execute("create table t (v integer)")
    before = registry_signature(local)
    assert before is not None and registry_signature(local) == before
    with sqlite3.connect(db) as conn:
        conn.execute("insert into t values (1)")
    assert registry_signature(local) not in (None, before)
    (tmp_path / "mlflow.db-journal").write_bytes(b"")  # a transaction in flight proves nothing
    assert registry_signature(local) is None
    assert registry_signature(config("http://127.0.0.1:5000")) is None


def test_the_store_s3_endpoint_reaches_mlflow_in_every_process_not_only_the_first(tmp_path, monkeypatch):
    """An s3:// store whose endpoint is only in the config: MLflow reads its artifacts through it in a
    later process too (the experiment exists by then), not from AWS's own endpoint."""
    import os

    from pipeline_io import registry

    config = parse_config({"dataset": {"name": "d", "source": "x.csv", "target": "y"},
                           "store": {"root": "s3://lake/x", "s3": {"endpoint_url": "http://127.0.0.1:9000"}},
                           "mlflow": {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}})
    for var in ("MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    registry.connect(config)  # the first process creates the experiment
    monkeypatch.delenv("MLFLOW_S3_ENDPOINT_URL")  # a later process starts without it
    registry.connect(config)
    assert os.environ["MLFLOW_S3_ENDPOINT_URL"] == "http://127.0.0.1:9000"


def test_unchanged_rerun_reuses_training_until_the_registry_loses_its_model(trained, tmp_path, monkeypatch):
    """Same gold data, config and code: a cache hit that trains nothing; a deleted model version forces retraining."""
    from mlflow import MlflowClient

    from flows.training import training_flow
    from pipeline_core.config import load_config
    from pipeline_io import registry

    config = str(trained[0])
    quick = ["training.models={logistic_regression: {}}", "training.tuning.n_trials=1", "training.tuning.cv_folds=3",
             f"mlflow.tracking_uri=sqlite:///{tmp_path / 'cache.db'}"]
    first = training_flow(config, quick)
    again = training_flow(config, quick)
    assert (first["status"], again["status"]) == ("ran", "cached")
    assert (again["version"], again["parent_run_id"]) == (first["version"], first["parent_run_id"]) == ("1", first["parent_run_id"])
    assert [m["metrics"] for m in again["models"]] == [m["metrics"] for m in first["models"]]
    client, experiment = registry.connect(load_config(config, quick))
    assert len(client.search_runs([experiment])) == 3  # the parent, one model run and its refit: the hit logged nothing
    assert [v.version for v in MlflowClient().search_model_versions(f"name='{first['registered_model']}'")] == [1]

    # The hit trusted the database's signature; any registry change since is seen on the next hit.
    assert again["registry_signature"] == first["registry_signature"] is not None
    client.delete_registered_model_alias(first["registered_model"], "champion")
    unaliased = training_flow(config, quick)
    assert (unaliased["status"], unaliased["version"], unaliased["champion_version"]) == ("cached", "1", None)
    # That answer is remembered for the database as it now is: the next hit does not ask MLflow.
    with monkeypatch.context() as patched:
        patched.setattr(registry, "connect", lambda *a, **k: pytest.fail("asked MLflow although nothing changed"))
        remembered = training_flow(config, quick)
    assert (remembered["status"], remembered["version"], remembered["champion_version"]) == ("cached", "1", None)

    client.delete_model_version(first["registered_model"], "1")
    rebuilt = training_flow(config, quick)
    assert rebuilt["status"] == "ran" and rebuilt["version"] == "2" and rebuilt["parent_run_id"] != first["parent_run_id"]
    assert rebuilt["models"][0]["metrics"] == first["models"][0]["metrics"]  # same seed, same data: same model
    changed = training_flow(config, [*quick, "training.threshold.objective=cost"])
    assert changed["status"] == "ran" and changed["version"] == "3"


def test_a_champion_that_moved_while_the_gate_judged_is_not_replaced_uncompared(trained, monkeypatch, tmp_path):
    """Two trainings at once: the later gate must not promote over a champion it never compared with.
    Here the gate reads the registry as it was before the other run promoted (no champion yet)."""
    from flows.training import training_flow
    from tasks import registration

    config, _, _, _ = trained
    own = [*FAST, "mlflow.registered_model=raced", "mlflow.min_metrics={}", f"mlflow.tracking_uri=sqlite:///{tmp_path / 'own.db'}"]
    first = training_flow(str(config), own)
    assert first["promoted"] and first["champion_version"] == "1"
    real, reads = registration.champion_version, []

    def read_before_the_other_run_promoted(client, name):
        reads.append(name)
        return None if len(reads) == 1 else real(client, name)

    monkeypatch.setattr(registration, "champion_version", read_before_the_other_run_promoted)
    second = training_flow(str(config), own, refresh=True)
    assert second["version"] == "2" and not second["promoted"] and second["champion_version"] == "1"
    assert second["reason"] == ("champion moved to v1 while this run was judged against no champion; "
                                "train again to compare with it, or promote by hand")
    from mlflow import MlflowClient

    assert str(MlflowClient().get_model_version_by_alias("raced", "champion").version) == "1"



def test_a_champion_drawn_with_another_split_seed_is_compared_on_rows_neither_model_trained_on(trained, tmp_path):
    from mlflow import MlflowClient

    from flows.training import training_flow

    config, _, _, _ = trained
    own = [*FAST, "mlflow.registered_model=reseeded", "mlflow.min_metrics={}", f"mlflow.tracking_uri=sqlite:///{tmp_path / 'own.db'}"]
    first = training_flow(str(config), own)
    tags = MlflowClient().get_model_version("reseeded", first["version"]).tags
    assert (tags["split"], tags["split_seed"], tags["test_size"]) == ("keyed", "42", "0.2")
    second = training_flow(str(config), [*own, "training.seed=7"])
    shown = re.search(r"judged on the ([\d,]+) rows of this holdout that the champion's own holdout, drawn with split seed 42 "
                      r"and test size 0.2, also held\)$", second["reason"])
    assert shown, second["reason"]
    from pipeline_core.config import load_config
    from pipeline_core.modeling.training import keyed_split
    from pipeline_io.readers import load_training_data
    from pipeline_io.store import Store

    cfg = load_config(str(config), [*own, "training.seed=7"])
    data = load_training_data(cfg, Store(cfg.store.root))
    ids = data.gold[data.preprocessing["id_column"]].to_numpy()
    labels = data.gold[data.preprocessing["target"]].to_numpy()
    both = set(data.split.test_index) & set(keyed_split(ids, labels, 0.2, 42)[1])  # the seed-42 champion's holdout, redrawn
    assert int(shown.group(1).replace(",", "")) == len(both) and 0.1 * len(data.split.test_index) < len(both) < 0.35 * len(data.split.test_index)


def test_registry_aliases_and_history(trained):
    import mlflow

    from pipeline_core.config import load_config
    from pipeline_io import registry

    config, first, _, _ = trained
    client, _ = registry.connect(load_config(config))
    name = first["registered_model"]
    assert str(client.get_model_version_by_alias(name, "champion").version) == "1"
    assert str(client.get_model_version_by_alias(name, "challenger").version) == "3"
    history = registry.alias_history(client, name)
    assert [(h["alias"], h["version"]) for h in history] == [("challenger", "1"), ("champion", "1"), ("challenger", "2"), ("challenger", "3")]
    assert mlflow.get_tracking_uri().startswith("sqlite:///")


def test_champion_scores_raw_records_in_a_fresh_process(trained, tmp_path):
    """A stock MLflow client, in a new process, reproduces the logged holdout metrics exactly."""

    import mlflow

    from pipeline_core.config import load_config
    from pipeline_core.modeling.holdout import raw_holdout
    from pipeline_io import registry
    from pipeline_io.readers import load_training_data
    from pipeline_io.store import Store

    config, first, _, _ = trained
    cfg = load_config(config)
    client, _ = registry.connect(cfg)
    data = load_training_data(cfg, Store(cfg.store.root))
    holdout = raw_holdout(data)
    assert "LIMIT_BAL" in holdout.columns and "PAY_0" in holdout.columns  # raw source names
    path = tmp_path / "holdout.parquet"
    holdout.to_parquet(path)
    version = client.get_model_version_by_alias(first["registered_model"], "champion")
    _assert_stock_client_reproduces(client, data, path, [(f"models:/{first['registered_model']}@champion", version.tags["run_id"],
                                                          float(version.tags["threshold"]))])
    empty = subprocess.run([sys.executable, "-c", "import sys, mlflow, pandas as pd; mlflow.set_tracking_uri(sys.argv[1]); "
                            "out = mlflow.pyfunc.load_model(sys.argv[3]).predict(pd.read_parquet(sys.argv[2]).head(0)); "
                            "print(len(out), list(out.columns))", mlflow.get_tracking_uri(), str(path),
                            f"models:/{first['registered_model']}@champion"], capture_output=True, text=True, timeout=300)
    assert empty.returncode == 0 and empty.stdout.strip().splitlines()[-1] == "0 ['probability', 'prediction', 'quarantine_reason']", empty.stderr[-2000:]


def _assert_stock_client_reproduces(client, data, holdout_path, models):
    """[(model URI, run id, threshold)]: plain MLflow and pandas in a new process reproduce the holdout probabilities each
    run logged, and its holdout metrics; for a model refitted on every row (the holdout included) the metrics are
    reproduced by the model of its `holdout_run_id`, scored beside it."""
    import mlflow

    from pipeline_core.modeling.metrics import classification_metrics

    judged = [client.get_run(run_id).data.tags.get("holdout_run_id") for _, run_id, _ in models]
    models = models + [(f"runs:/{h}/model", h, threshold) for h, (_, _, threshold) in zip(judged, models) if h]
    script = (
        "import sys, json, mlflow, pandas as pd; mlflow.set_tracking_uri(sys.argv[1]); X = pd.read_parquet(sys.argv[2]); "
        "print(json.dumps([mlflow.pyfunc.load_model(u).predict(X)['probability'].tolist() for u in sys.argv[3:]]))"
    )
    proc = subprocess.run([sys.executable, "-c", script, mlflow.get_tracking_uri(), str(holdout_path), *[m[0] for m in models]],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    scored = [np.array(p) for p in json.loads(proc.stdout.strip().splitlines()[-1])]
    for proba, (uri, run_id, threshold) in zip(scored, models):
        with open(client.download_artifacts(run_id, "holdout_predictions.json", str(holdout_path.parent / run_id))) as fh:
            table = json.load(fh)
        expected = np.array([row[table["columns"].index("probability")] for row in table["data"]])
        assert np.max(np.abs(proba - expected)) < 1e-9, uri
        run = client.get_run(run_id)
        if run.data.tags.get("refit_full") == "true":
            continue
        got = classification_metrics(data.split.y_test, proba, threshold)
        for metric in ("roc_auc", "accuracy", "f1", "mcc"):
            assert got[metric] == pytest.approx(run.data.metrics[metric], abs=1e-12), (uri, metric)


def test_the_fast_preset_ensembles_untuned_models_and_registers_each_for_a_stock_client(tmp_path, prefect_harness, demo_dir):
    from flows.layers import run_flow
    from flows.training import training_flow
    from pipeline_core.config import load_config
    from pipeline_core.modeling.holdout import raw_holdout
    from pipeline_io import registry
    from pipeline_io.readers import load_training_data
    from pipeline_io.store import Store
    from tests.conftest import shipped_config

    config = shipped_config("credit_default", demo_dir / "credit.csv", tmp_path)
    run_flow(str(config), FAST, through="gold")
    summary = training_flow(str(config), ["training.models={logistic_regression: {}, random_forest: {params: {n_estimators: 50}}, "
                                          "xgboost: {}, lightgbm: {}}", "training.preset=fast", "training.register=all",
                                          "training.tuning={cv_folds: 3}",  # the shipped config's tuning keys would win
                                          "training.calibration=isotonic"])
    by_name = {m["name"]: m for m in summary["models"]}
    assert summary["time_budget_seconds"] == 60 and summary["tuned_models"] == []  # what the preset sets
    assert all(not m["tuned"] and m["note"] == "tuning off" for n, m in by_name.items() if n != "weighted_ensemble")
    assert all(m["metrics"]["ece"] < 0.05 for m in by_name.values())  # calibrated on out-of-fold predictions
    ensemble = by_name["weighted_ensemble"]
    weights = ensemble["params"]
    assert len(weights) >= 2 and set(weights) <= set(by_name) and sum(weights.values()) == pytest.approx(1.0)
    assert ensemble["params_from"] == "ensemble" and ensemble["folds_run"] == 3
    assert ensemble["cv_mean"] >= max(by_name[m]["cv_mean"] for m in weights) - 1e-9  # greedy never ends below its best member
    cfg = load_config(config)
    client, _ = registry.connect(cfg)
    data = load_training_data(cfg, Store(cfg.store.root))
    path = tmp_path / "holdout.parquet"
    raw_holdout(data).to_parquet(path)
    # training.register: all: every candidate under <registered model>-<model>, scored by that URI
    versions = summary["model_versions"]
    assert set(versions) == set(by_name)
    assert versions["lightgbm"] == f"models:/{summary['registered_model']}-lightgbm/1"
    _assert_stock_client_reproduces(client, data, path, [(versions[m["name"]], m["run_id"], m["threshold"]) for m in summary["models"]])


def test_unreachable_tracking_server(trained):
    from flows.training import training_flow
    from tests.servers import free_port as port

    config = trained[0]
    with pytest.raises(StorageError, match="tracking server unreachable"):
        training_flow(str(config), [*FAST, f"mlflow.tracking_uri=http://127.0.0.1:{port()}"])


def test_models_commands(trained, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from pipeline_cli.main import app

    monkeypatch.chdir(tmp_path)
    config, first, _, _ = trained
    name = first["registered_model"]
    run = CliRunner().invoke
    listed = json.loads(run(app, ["models", "list", "--config", str(config), "--json"]).stdout)["result"]
    assert listed == [{"name": name, "latest_version": 3, "aliases": {"champion": "1", "challenger": "3"}, "versions": 3}]
    described = json.loads(run(app, ["models", "describe", name, "--config", str(config), "--json"]).stdout)["result"]
    assert [v["aliases"] for v in described["versions"]] == [["champion"], [], ["challenger"]]
    assert described["versions"][0]["metrics"]["roc_auc"] == pytest.approx(first["models"][0]["metrics"]["roc_auc"])
    promoted = run(app, ["models", "promote", name, "2", "--config", str(config), "--reason", "rollback drill"])
    assert promoted.exit_code == 0, promoted.output
    history = json.loads(run(app, ["models", "history", name, "--config", str(config), "--json"]).stdout)["result"]
    assert (history[-1]["alias"], history[-1]["version"], history[-1]["reason"]) == ("champion", "2", "rollback drill")
    missing = run(app, ["models", "promote", name, "9", "--config", str(config)])
    assert missing.exit_code == 6 and "has no version 9" in missing.stderr
    # rollback: champion goes back to the one before, and the move says what it undid
    rolled = run(app, ["models", "rollback", name, "--config", str(config), "--reason", "live recall fell", "--json"])
    assert rolled.exit_code == 0, rolled.output
    entry = json.loads(rolled.stdout)["result"]
    assert (entry["version"], entry["previous"], entry["rollback_of"]) == ("1", "2", "2")
    assert entry["reason"] == "rollback from version 2: live recall fell"
    listed = json.loads(run(app, ["models", "list", "--config", str(config), "--json"]).stdout)["result"]
    assert listed[0]["aliases"]["champion"] == "1"
    again = run(app, ["models", "rollback", name, "--config", str(config)])
    assert again.exit_code == 6 and "version 1 is the only champion it has had" in again.stderr


@pytest.mark.parametrize("model", ["logistic_regression", "random_forest", "xgboost", "lightgbm", "hist_gradient_boosting", "extra_trees"])
def test_every_model_trains_with_fixed_params(model):
    from pipeline_core.config import ModelConfig
    from pipeline_core.modeling.preprocessing import build_preprocessor
    from pipeline_core.modeling.training import train_model

    rng = np.random.default_rng(0)
    n = 400
    X = pd.DataFrame({"x": rng.normal(size=n), "c": rng.choice(["a", "b", "c"], n).astype(object)})
    y = ((X["x"] + (X["c"] == "a") * 0.8 + rng.normal(0, 0.7, n)) > 0.5).astype(int).to_numpy()
    cfg = TrainingConfig.model_validate({"tuning": {"enabled": False, "cv_folds": 3}})
    prep = {"numeric_columns": ["x"], "categorical_columns": ["c"], "scaler": "robust",
            "imputation": {"numeric": "median", "categorical": "most_frequent"}}
    params = {"n_estimators": 30} if model in ("random_forest", "extra_trees", "xgboost", "lightgbm") else {}
    result = train_model(model, ModelConfig(params=params), build_preprocessor(prep), split_data(X, y, cfg), cfg, 1, "t")
    assert result.metrics["roc_auc"] > 0.75
    assert len(result.test_probabilities) == 80 and len(result.metrics) == 13


def test_two_first_runs_on_a_fresh_store_both_connect(tmp_path):
    """Two processes creating the MLflow SQLite schema and experiment at once: both succeed, one experiment."""
    import time

    config = write_config(tmp_path / "c.yaml", {"dataset": {"name": "race", "source": "x.csv", "target": "y"},
                                                 "store": {"root": str(tmp_path / "store")}})
    start = time.time() + 3  # both wait for the same instant, after their imports
    code = ("import sys, time; from pipeline_core.config import load_config; from pipeline_io import registry; "
            f"cfg = load_config({str(config)!r}); time.sleep(max(0, {start} - time.time())); "
            "print(registry.connect(cfg)[1])")
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-500:] for _, err in results]
    assert len({out.strip() for out, _ in results}) == 1  # the same experiment for both


ONE_MODEL = ["training.models={logistic_regression: {}}", "training.tuning.n_trials=2", "training.tuning.cv_folds=3",
             "mlflow.min_metrics={roc_auc: 0.6}"]


def test_retraining_as_of_an_old_gold_version_reproduces_the_old_model_and_lineage_names_it(tmp_path, prefect_harness, demo_dir):
    import polars as pl
    from typer.testing import CliRunner

    from flows.layers import run_flow
    from flows.training import training_flow
    from pipeline_cli.main import app
    from pipeline_core.config import load_config
    from pipeline_io.lineage import chain
    from tests.conftest import shipped_config

    raw = pl.read_csv(demo_dir / "credit.csv", infer_schema=False)
    day1, day2 = tmp_path / "day1.csv", tmp_path / "day2.csv"
    raw.slice(0, 2000).write_csv(day1)
    raw.slice(2000).write_csv(day2)
    config = shipped_config("credit_default", day1, tmp_path)
    layers1 = run_flow(str(config), ONE_MODEL, through="gold")
    first = training_flow(str(config), ONE_MODEL)
    layers2 = run_flow(str(config), [*ONE_MODEL, f"dataset.source={day2}"], through="gold")
    assert layers2[2]["version"] == layers1[2]["version"] + 1 and layers2[2]["mode"] == "incremental"
    second = training_flow(str(config), ONE_MODEL)
    assert second["gold_version"] == layers2[2]["version"]
    assert second["models"][0]["metrics"] != first["models"][0]["metrics"]  # more data, another model

    again = training_flow(str(config), ONE_MODEL, as_of=str(layers1[2]["version"]))
    assert again["gold_version"] == first["gold_version"] == layers1[2]["version"]
    assert again["models"][0]["metrics"] == first["models"][0]["metrics"]  # exactly the old model's numbers
    # the as-of result is not the current one: a plain run after it answers with the model of the current gold
    assert training_flow(str(config), ONE_MODEL)["gold_version"] == layers2[2]["version"]

    links = chain(load_config(config, ONE_MODEL), f"models:/{first['registered_model']}/{first['version']}")
    assert links["gold"]["version"] == layers1[2]["version"] and links["gold"]["table"] == "gold/credit_default/features"
    assert links["silver"]["version"] == layers1[1]["versions"]["data"]
    assert [b["batch_id"] for b in links["bronze"]["batches"]] == [layers1[0]["batch_id"]]
    assert links["bronze"]["batches"][0]["source"] == str(day1) and links["run"]["run_id"] == first["models"][0]["run_id"]
    later = chain(load_config(config, ONE_MODEL), f"models:/{second['registered_model']}/{second['version']}")
    assert [b["batch_id"] for b in later["bronze"]["batches"]] == [layers1[0]["batch_id"], layers2[0]["batch_id"]]

    shown = CliRunner().invoke(app, ["lineage", f"models:/{first['registered_model']}/{first['version']}", "--config", str(config)])
    assert shown.exit_code == 0, shown.output
    assert f"gold/credit_default/features version {layers1[2]['version']}" in shown.stdout and layers1[0]["batch_id"] in shown.stdout


def test_the_gate_does_not_compare_a_model_of_another_positive_label_with_the_champion(tmp_path, prefect_harness, demo_dir):
    from mlflow import MlflowClient

    from flows.layers import run_flow
    from flows.training import training_flow
    from tests.conftest import shipped_config

    config = shipped_config("credit_default", demo_dir / "credit.csv", tmp_path)
    run_flow(str(config), ONE_MODEL, through="gold")
    first = training_flow(str(config), ONE_MODEL)
    assert first["promoted"]
    flipped = [*ONE_MODEL, "dataset.positive_label=0"]
    run_flow(str(config), flipped, through="gold")
    second = training_flow(str(config), flipped)
    # scored against labels where 0 is positive, the champion's P(default) would have lost by about 0.6 of ROC-AUC
    assert not second["promoted"] and second["champion_version"] == first["version"]
    assert "predicts default_payment_next_month = 1, this model default_payment_next_month = 0" in second["reason"]
    tags = MlflowClient().get_model_version(second["registered_model"], second["version"]).tags
    assert (tags["target"], tags["positive_label"]) == ("default_payment_next_month", "0")


def test_one_time_budget_bounds_all_models_and_tunes_the_most_promising_first(tmp_path, prefect_harness, demo_dir):
    """No trial cap: the global budget (or a stalled score) alone ends tuning, and every model still ends with a fit."""
    from flows.layers import run_flow
    from flows.training import training_flow
    from tests.conftest import shipped_config

    config = shipped_config("credit_default", demo_dir / "credit.csv", tmp_path)
    run_flow(str(config), FAST, through="gold")
    budget = 20
    summary = training_flow(str(config), ["training.models={logistic_regression: {}, lightgbm: {}, xgboost: {}}",
                                          f"training.time_budget_seconds={budget}", "training.tuning.n_trials=null",
                                          "training.tuning.cv_folds=3"])
    slots = summary["concurrency"]["concurrent_models"]
    by_name = {m["name"]: m for m in summary["models"] if m["params_from"] != "ensemble"}
    assert len(by_name) == 3 and len(summary["tuned_models"]) >= min(slots, 2)  # at least the first ones tuned
    for name, model in by_name.items():
        if name in summary["tuned_models"]:
            assert model["tuned"] and model["trials"]["COMPLETE"] >= 1
            assert model["tuning_ended"] in ("stalled", "time budget")  # not a trial cap: there is none
        else:  # queued behind the first ones: the budget ran out before a trial of it completed
            assert not model["tuned"] and model["tuning_ended"] in ("", "time budget")
            assert model["note"] in ("the time budget ended before its turn to be tuned", "no trial completed within the time budget")
    # the models queued behind a slot that a stalled study freed got tuned; otherwise only the first ones were
    stalled = [n for n in summary["tuned_models"] if by_name[n]["tuning_ended"] == "stalled"]
    assert len(summary["tuned_models"]) <= min(slots, 2) + len(stalled)
    # model work is bounded by the budget; the final fits and MLflow logging come on top (a generous bound for a busy box)
    assert summary["seconds"] < budget + 30, summary["seconds"]


def test_refit_full_registers_a_model_fitted_on_every_row_and_the_gate_compares_the_models_from_before_the_refit(tmp_path, prefect_harness, demo_dir):
    from mlflow import MlflowClient

    from flows.layers import run_flow
    from flows.training import training_flow
    from pipeline_io import registry
    from tests.conftest import shipped_config

    config = shipped_config("credit_default", demo_dir / "credit.csv", tmp_path)
    run_flow(str(config), FAST, through="gold")
    quick = [*FAST, "training.ensemble=false"]  # refit_full is the default
    first = training_flow(str(config), quick)
    client = MlflowClient(first["tracking_uri"])
    version = client.get_model_version(first["registered_model"], first["version"])
    best = first["models"][0]
    assert version.tags["refit_full"] == "true" and version.tags["holdout_run_id"] != version.tags["run_id"]
    refit = client.get_run(version.tags["run_id"])
    holdout_run = client.get_run(version.tags["holdout_run_id"])
    assert refit.data.tags["refit_full"] == "true" and refit.data.params == holdout_run.data.params
    assert holdout_run.data.metrics["roc_auc"] == pytest.approx(best["metrics"]["roc_auc"])
    # the version's run carries a copy of the holdout metrics scored before the refit, beside its own fit's time and rows
    own = ("rows_fitted", "train_seconds")
    assert {k: v for k, v in refit.data.metrics.items() if k not in own} == {k: v for k, v in holdout_run.data.metrics.items() if k not in own}
    assert refit.data.metrics["train_seconds"] != holdout_run.data.metrics["train_seconds"]
    # `models describe` reads them from the run that scored them, so versions refitted before the copy existed show them too
    described = next(v for v in registry.describe_model(client, first["registered_model"])["versions"] if v["version"] == first["version"])
    assert described["run_id"] == refit.info.run_id and described["metrics"] == {
        k: v for k, v in holdout_run.data.metrics.items() if "_at_" not in k and not k.startswith("cv_")}
    from pipeline_core.config import load_config
    from pipeline_io.readers import load_training_data
    from pipeline_io.store import Store

    cfg = load_config(config)
    data = load_training_data(cfg, Store(cfg.store.root))
    assert refit.data.metrics["rows_fitted"] == len(data.split.y_train) + len(data.split.y_test) == data.gold.height
    assert best["rows_fitted"] == data.gold.height and best["refit_full"]  # what the console's "best:" line reports
    # the registered model's own probabilities for the holdout rows are logged with it: serving is checked against it
    def logged_table(run_id):
        with open(client.download_artifacts(run_id, "holdout_predictions.json", str(tmp_path / run_id))) as fh:
            table = json.load(fh)
        return pd.DataFrame(table["data"], columns=table["columns"])

    logged, pre_refit = logged_table(refit.info.run_id), logged_table(holdout_run.info.run_id)
    assert logged["id"].tolist() == pre_refit["id"].tolist() and not np.allclose(logged["probability"], pre_refit["probability"])
    # the champion has seen this run's holdout; the model it was judged by has not: an identical retrain is compared with
    # that model by the paired bootstrap, and ties
    assert json.loads(version.tags["holdout_artifact_sha256"])
    second = training_flow(str(config), quick, refresh=True)
    assert not second["promoted"] and second["evidence"] is not None, second["reason"]
    assert second["evidence"]["delta"] == pytest.approx(0.0, abs=1e-12) and "not better by more than 0" in second["reason"]
    # a candidate not refitted is its holdout model itself: the same paired comparison, and a tie
    plain = training_flow(str(config), [*quick, "training.refit_full=false"], refresh=True)
    assert not plain["promoted"] and plain["evidence"]["delta"] == pytest.approx(0.0, abs=1e-12), plain["reason"]
    # a champion refitted by an earlier release has no record of its judged model: its recorded holdout scores stand in
    judged_by = version.tags["holdout_artifact_sha256"]
    client.delete_model_version_tag(first["registered_model"], first["version"], "holdout_artifact_sha256")
    older = training_flow(str(config), quick, refresh=True)
    assert older["evidence"] is None and not older["promoted"]
    assert f"does not beat the champion's {holdout_run.data.metrics['roc_auc']:.4f}" in older["reason"], older["reason"]
    client.set_model_version_tag(first["registered_model"], first["version"], "holdout_artifact_sha256", judged_by)
    # the model the champion was judged by is checked like a registered one: a changed file stops the gate
    from urllib.parse import unquote, urlparse

    logged_model = client.get_logged_model(holdout_run.outputs.model_outputs[0].model_id)
    folder = Path(unquote(urlparse(logged_model.artifact_location).path))
    fitted = next(p for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "MLmodel")
    fitted.write_bytes(fitted.read_bytes() + b" ")
    with pytest.raises(StorageError, match=r"the files of the model it was judged by \(run \w+\) differ from those registered .*; "
                       r"refusing to load them; restore that run and its artifacts, or move the champion by hand \(`pipeline-cli models promote`\)$"):
        training_flow(str(config), quick, refresh=True)
