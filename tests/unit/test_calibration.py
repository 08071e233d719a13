"""Calibration fitted on out-of-fold predictions: calibrated probabilities, the same ranking, one pipeline step."""

import numpy as np
import pandas as pd
import pytest

from pipeline_core.config import ModelConfig, TrainingConfig
from pipeline_core.modeling.calibration import Calibrated, ProbabilityCalibrator
from pipeline_core.modeling.preprocessing import build_preprocessor
from pipeline_core.modeling.training import split_data, train_model


def _imbalanced(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n)})
    y = ((X["x"] + 0.5 * X["z"] + rng.normal(0, 1.0, n)) > 1.6).astype(int).to_numpy()  # about 10% positives
    prep = {"numeric_columns": ["x", "z"], "categorical_columns": [], "scaler": "standard",
            "imputation": {"numeric": "median", "categorical": "most_frequent"}}
    return X, y, build_preprocessor(prep)


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_calibration_repairs_the_probabilities_of_a_reweighted_model(method):
    """class_weight=balanced inflates probabilities of the rare class; the calibrator fitted out of fold brings them back."""
    X, y, pre = _imbalanced()
    plain = TrainingConfig.model_validate({"tuning": {"enabled": False, "cv_folds": 3}})
    calibrated = plain.model_copy(update={"calibration": method})
    mc = ModelConfig(params={"class_weight": "balanced"})
    before = train_model("logistic_regression", mc, pre, split_data(X, y, plain), plain, 1, "b")
    after = train_model("logistic_regression", mc, pre, split_data(X, y, calibrated), calibrated, 1, "a")
    assert before.metrics["ece"] > 0.15 and after.metrics["ece"] < 0.05
    assert after.metrics["brier"] < before.metrics["brier"]
    assert after.metrics["roc_auc"] == pytest.approx(before.metrics["roc_auc"], abs=0.01)  # a monotone map keeps the ranking
    step = after.pipeline.named_steps["model"]
    assert isinstance(step, Calibrated) and step.calibrator.method == method
    assert after.test_probabilities.min() >= 0 and after.test_probabilities.max() <= 1


def test_an_unknown_method_is_refused():
    with pytest.raises(ValueError, match="isotonic"):
        ProbabilityCalibrator.fit("beta", np.array([0.2, 0.8]), np.array([0, 1]))
