"""The registered model's files: JSON for its specs, skops for the fitted pipeline, no pickle.

The logged MLflow pyfunc names this module as its ``loader_module``, so loading it (here, in a stock
MLflow client or in `mlflow models serve`) runs only the installed package's code on files read as
data. skops rebuilds scikit-learn's own types and the allow-list below; a file that names any
other type is refused before anything is built. The boosters travel in their native formats
inside it (XGBoost's raw buffer, LightGBM's model text).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline_core.errors import ModelError, StorageError, first_line

FORMAT = "raw-record/skops-1"
LOADER_MODULE = __name__
SPEC_FILE = "model.json"
PIPELINE_FILE = "pipeline.skops"
FORMAT_TAG = "model_format"

# Types beyond skops' own trusted scikit-learn/numpy set that the pipeline's models are made of:
# the boosters and their scikit-learn wrappers, the forests' trees, and the project's two
# composite classifiers (calibration, ensemble). A test fits every model spec and checks this list.
ALLOWED_TYPES = frozenset({
    "numpy.dtype",
    "collections.OrderedDict",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    "pipeline_core.modeling.calibration.Calibrated",
    "pipeline_core.modeling.calibration.ProbabilityCalibrator",
    "pipeline_core.modeling.ensemble.WeightedAverage",
})


def write_model_files(model: Any, folder: Path) -> Path:
    """Write a `RawRecordClassifier` as ``folder``/model.json + pipeline.skops; returns ``folder``."""
    import skops.io

    folder.mkdir(parents=True, exist_ok=True)
    foreign = sorted(set(skops.io.get_untrusted_types(data=skops.io.dumps(model.pipeline))) - ALLOWED_TYPES)
    if foreign:  # a new model type must join the allow-list, or its registered model could not be loaded
        raise ModelError(f"the fitted pipeline holds types outside the model format's allow-list ({', '.join(foreign)}); "
                         "add them to pipeline_io.model_format.ALLOWED_TYPES")
    skops.io.dump(model.pipeline, folder / PIPELINE_FILE)
    spec = {"format": FORMAT, "cleaning": model.cleaning, "features": model.features, "numeric": model.numeric,
            "categorical": model.categorical, "threshold": model.threshold, "prediction_reference": model.prediction_reference}
    (folder / SPEC_FILE).write_text(json.dumps(spec, indent=1, default=_plain))
    return folder


def read_model_files(folder: Path) -> Any:
    """The `RawRecordClassifier` written by `write_model_files`; refuses any type outside the allow-list."""
    import skops.io

    from pipeline_core.serving import RawRecordClassifier

    try:
        spec = json.loads((folder / SPEC_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise StorageError(f"model file {folder / SPEC_FILE}: unreadable ({exc}); restore the artifact store or retrain") from None
    if spec.get("format") != FORMAT:
        raise ModelError(f"model file {folder / SPEC_FILE}: format {spec.get('format')!r} is not {FORMAT!r}; "
                         "install the release that registered it, or retrain")
    path = folder / PIPELINE_FILE
    try:
        foreign = sorted(set(skops.io.get_untrusted_types(file=path)) - ALLOWED_TYPES)
    except Exception as exc:
        raise StorageError(f"model file {path}: unreadable ({first_line(exc, 160)}); "
                           "restore the artifact store or retrain") from None
    if foreign:
        raise StorageError(f"model file {path}: names types outside the allow-list ({', '.join(foreign[:3])}); refusing to load it")
    pipeline = skops.io.load(path, trusted=sorted(ALLOWED_TYPES))
    return RawRecordClassifier(pipeline, spec["cleaning"], spec["features"], spec["numeric"], spec["categorical"],
                               float(spec["threshold"]), spec.get("prediction_reference"))


def _load_pyfunc(data_path: str) -> Any:
    """MLflow's entry point for a ``loader_module`` model: the folder logged as its data."""
    return read_model_files(Path(data_path))


def check_loadable(model_dir: Path, shown: str) -> None:
    """Refuse, before MLflow loads it, a model whose pyfunc is not this format (an older release's pickle)."""
    import yaml

    try:
        flavor = (yaml.safe_load((model_dir / "MLmodel").read_text()) or {}).get("flavors", {}).get("python_function", {})
    except (OSError, yaml.YAMLError) as exc:
        raise StorageError(f"{shown}: its MLmodel file cannot be read ({exc}); restore the artifact store or retrain") from None
    if flavor.get("loader_module") != LOADER_MODULE:
        raise ModelError(f"{shown}: not in this pipeline's model format (a pickled Python model, which is never loaded); "
                         "retrain with `pipeline-cli train` to register one in the safe format")


def _plain(value: Any) -> Any:
    """numpy scalars and arrays in the specs -> JSON."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")
