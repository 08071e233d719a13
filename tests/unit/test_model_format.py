"""The registered model's files: every model the pipeline trains round-trips through JSON + skops
under the type allow-list, and a file naming any other type is refused before anything is built."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from pipeline_core.errors import ModelError, StorageError
from pipeline_core.modeling.calibration import Calibrated, ProbabilityCalibrator
from pipeline_core.modeling.ensemble import ensemble_pipeline
from pipeline_core.modeling.preprocessing import build_preprocessor
from pipeline_core.modeling.specs import MODEL_SPECS
from pipeline_core.serving import RawRecordClassifier
from pipeline_io import model_format

PREP = {"imputation": {"numeric": "median", "categorical": "most_frequent"}, "scaler": "robust",
        "numeric_columns": ["a", "b"], "categorical_columns": ["c"]}
CLEANING = {"renames": {"A": "a", "B": "b", "C": "c"}}  # what the JSON must carry through, not a full spec


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(["x", "y", "z"], n)})
    y = (X["a"] + (X["c"] == "y") + rng.normal(size=n) > 0.5).astype(int).to_numpy()
    return X, y


def _fitted_pipelines():
    X, y = _data()
    pipelines = {name: Pipeline([("pre", build_preprocessor(PREP)), ("model", spec.build(dict(spec.defaults), 0, 1))]).fit(X, y)
                 for name, spec in MODEL_SPECS.items() if spec.available()}
    for method in ("isotonic", "sigmoid"):
        base = pipelines["random_forest"]
        calibrator = ProbabilityCalibrator.fit(method, base.predict_proba(X)[:, 1], y)
        pipelines[f"calibrated_{method}"] = Pipeline([("pre", base.named_steps["pre"]),
                                                      ("model", Calibrated(base.named_steps["model"], calibrator))])
    members = [n for n in MODEL_SPECS if n in pipelines]
    pipelines["weighted_ensemble"] = ensemble_pipeline({n: pipelines[n] for n in members}, {n: 1 / len(members) for n in members})
    return pipelines, X


def _model(pipeline):
    return RawRecordClassifier(pipeline, CLEANING, {"derived": []}, ["a", "b"], ["c"], np.float64(0.42),
                               {"edges": np.linspace(0, 1, 5), "counts": [1, 2, 3, 4]})


def test_every_model_the_pipeline_trains_round_trips_with_identical_probabilities(tmp_path):
    pipelines, X = _fitted_pipelines()
    assert {"xgboost", "lightgbm", "random_forest", "calibrated_isotonic", "weighted_ensemble"} <= set(pipelines)
    for name, pipeline in pipelines.items():
        folder = model_format.write_model_files(_model(pipeline), tmp_path / name)
        assert sorted(p.name for p in folder.iterdir()) == [model_format.SPEC_FILE, model_format.PIPELINE_FILE]
        back = model_format._load_pyfunc(str(folder))
        np.testing.assert_array_equal(back.pipeline.predict_proba(X), pipeline.predict_proba(X), err_msg=name)
        assert (back.cleaning, back.numeric, back.categorical) == (CLEANING, ["a", "b"], ["c"])
        assert back.threshold == 0.42 and back.prediction_reference["edges"] == [0.0, 0.25, 0.5, 0.75, 1.0]
        assert back.get_raw_model() is back


class Payload:
    """Any type outside the allow-list: building it is what the format must never do."""

    def __init__(self, marker):
        self.marker = marker

    def __setstate__(self, state):
        open(state["marker"], "w").close()


def register_pickled_model(marker, name: str = "legacy-pickled"):
    """Register a cloudpickled pyfunc, as earlier releases did, whose unpickling creates ``marker``;
    returns (registered version, logged model URI). Needs a tracking store set up by the caller."""
    import mlflow

    class Pickled(mlflow.pyfunc.PythonModel):
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

        def predict(self, context, model_input, params=None):
            return model_input

    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="model", python_model=Pickled(), pip_requirements=["mlflow"])
    return mlflow.register_model(info.model_uri, name), info.model_uri


def test_a_file_naming_a_type_outside_the_allow_list_is_refused_before_anything_is_built(tmp_path):
    import skops.io

    pipelines, _ = _fitted_pipelines()
    folder = model_format.write_model_files(_model(pipelines["logistic_regression"]), tmp_path / "model")
    marker = tmp_path / "payload-ran"
    skops.io.dump({"model": Payload(str(marker))}, folder / model_format.PIPELINE_FILE)
    with pytest.raises(StorageError, match=r"pipeline.skops: names types outside the allow-list \(.*Payload\); refusing to load it"):
        model_format.read_model_files(folder)
    assert not marker.exists()

    (folder / model_format.PIPELINE_FILE).write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(StorageError, match=r"pipeline.skops: unreadable"):
        model_format.read_model_files(folder)

    spec = json.loads((folder / model_format.SPEC_FILE).read_text())
    (folder / model_format.SPEC_FILE).write_text(json.dumps({**spec, "format": "raw-record/skops-99"}))
    with pytest.raises(ModelError, match=r"format 'raw-record/skops-99' is not 'raw-record/skops-1'"):
        model_format.read_model_files(folder)


def test_a_model_with_a_type_the_allow_list_lacks_is_not_logged(tmp_path, monkeypatch):
    pipelines, _ = _fitted_pipelines()
    monkeypatch.setattr(model_format, "ALLOWED_TYPES", model_format.ALLOWED_TYPES - {"xgboost.core.Booster"})
    with pytest.raises(ModelError, match=r"types outside the model format's allow-list \(xgboost.core.Booster\)"):
        model_format.write_model_files(_model(pipelines["xgboost"]), tmp_path / "model")


def test_only_this_format_is_loaded_never_a_pickled_python_model(tmp_path):
    (tmp_path / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: mlflow.pyfunc.model\n"
                                      "    python_model: python_model.pkl\n")
    with pytest.raises(ModelError, match=r"^models:/m/1: not in this pipeline's model format \(a pickled Python model"):
        model_format.check_loadable(tmp_path, "models:/m/1")
    (tmp_path / "MLmodel").write_text(f"flavors:\n  python_function:\n    loader_module: {model_format.LOADER_MODULE}\n")
    model_format.check_loadable(tmp_path, "models:/m/1")
    os.remove(tmp_path / "MLmodel")
    with pytest.raises(StorageError, match=r"models:/m/1: its MLmodel file cannot be read"):
        model_format.check_loadable(tmp_path, "models:/m/1")


def test_the_environment_is_compared_with_the_models_pins(tmp_path):
    """What `mlflow.pyfunc.load_model` would warn about, checked without MLflow's scan of every installed package."""
    import importlib.metadata
    import platform

    from pipeline_io.model_integrity import requirement_mismatches

    polars = importlib.metadata.version("polars")
    major, minor, *_ = importlib.metadata.version("numpy").split(".")
    (tmp_path / "requirements.txt").write_text(
        f"polars=={polars}\n"
        "numpy==0.0.1\n"
        "no-such-package-here==1.0\n"
        "-r extra.txt\n"
        "pandas>=1\n"
        "# a comment\n"
        f"Scikit_Learn=={importlib.metadata.version('scikit-learn')}  # a name as a model may spell it\n"
        f"numpy=={major}.{minor}.*; python_version < '3'\n"  # a marker this interpreter does not match
        "pyyaml[extra]==0.1\n")
    (tmp_path / "python_env.yaml").write_text("python: 2.7.18\nbuild_dependencies:\n- pip\n")
    assert requirement_mismatches(tmp_path) == [
        f"numpy (installed {importlib.metadata.version('numpy')}, model 0.0.1)",
        "no-such-package-here (not installed, model 1.0)",
        f"pyyaml (installed {importlib.metadata.version('pyyaml')}, model 0.1)",
        f"python (installed {platform.python_version()}, model 2.7.18)"]
    # versions compare as versions: 3.0 is 3.0.0, and a pin with a wildcard matches its series
    (tmp_path / "requirements.txt").write_text(f"polars=={polars}.0\nnumpy=={major}.{minor}.*\n")
    (tmp_path / "python_env.yaml").write_text(f"python: {platform.python_version()}\n")
    assert requirement_mismatches(tmp_path) == []
    assert requirement_mismatches(tmp_path / "missing") == []
