"""Greedy ensemble selection on out-of-fold predictions, and the ensemble as one scikit-learn pipeline."""

import numpy as np
import pandas as pd
import pytest

from pipeline_core.config import TrainingConfig
from pipeline_core.modeling.ensemble import ENSEMBLE, build_ensemble, ensemble_pipeline, greedy_weights
from pipeline_core.modeling.preprocessing import build_preprocessor
from pipeline_core.modeling.training import make_pipeline, split_data, train_model


def _two_views(n=2000, seed=0):
    """Two scores that each see half of the signal: their average ranks better than either."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(size=n)
    y = (a + b + rng.normal(0, 0.5, n) > 0).astype(int)
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    return y, sigmoid(a), sigmoid(b), sigmoid(rng.normal(size=n))


def test_complementary_models_share_the_weight_and_noise_gets_none():
    from sklearn.metrics import roc_auc_score

    y, view_a, view_b, noise = _two_views()
    weights = greedy_weights({"a": view_a, "b": view_b, "noise": noise}, y, "roc_auc")
    assert set(weights) == {"a", "b"} and sum(weights.values()) == pytest.approx(1.0)
    assert 0.3 < weights["a"] < 0.7
    blend = weights["a"] * view_a + weights["b"] * view_b
    assert roc_auc_score(y, blend) > max(roc_auc_score(y, view_a), roc_auc_score(y, view_b)) + 0.05


def test_a_dominant_model_takes_all_the_weight_and_ties_repeat():
    y, view_a, _, noise = _two_views()
    assert greedy_weights({"a": view_a, "noise": noise}, y, "roc_auc") == {"a": 1.0}
    # a thresholded primary metric: the selection scores log loss instead
    assert greedy_weights({"a": view_a, "noise": noise}, y, "accuracy") == {"a": 1.0}
    assert greedy_weights({"x": view_a, "y": view_a}, y, "roc_auc") == {"x": 1.0}  # equal models: the first name


def _data(n=600, seed=1):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"x": rng.normal(size=n), "z": rng.normal(size=n), "c": rng.choice(["a", "b"], n).astype(object)})
    y = ((X["x"] + np.sin(3 * X["z"]) + (X["c"] == "a") + rng.normal(0, 0.5, n)) > 0.5).astype(int).to_numpy()
    prep = {"numeric_columns": ["x", "z"], "categorical_columns": ["c"], "scaler": "standard",
            "imputation": {"numeric": "median", "categorical": "most_frequent"}}
    return X, y, build_preprocessor(prep)


def test_the_ensemble_scores_through_its_own_pipeline_what_its_weights_say():
    cfg = TrainingConfig.model_validate({"tuning": {"enabled": False, "cv_folds": 3}})
    X, y, pre = _data(n=1500, seed=0)
    data = split_data(X, y, cfg)
    from pipeline_core.config import ModelConfig

    results = {m: train_model(m, ModelConfig(params=p), pre, data, cfg, 1, m)
               for m, p in [("random_forest", {"n_estimators": 60}), ("xgboost", {})]}
    ensemble = build_ensemble({m: r.pipeline for m, r in results.items()}, {m: r.oof for m, r in results.items()}, data, cfg)
    if ensemble is None:  # the selection kept one model: then it must beat every blend of the two on the OOF rows
        pytest.fail("the two models are complementary on this data; the selection should keep both")
    assert ensemble.name == ENSEMBLE and set(ensemble.params) == set(results)
    expected = sum(w * results[m].test_probabilities for m, w in ensemble.params.items())
    assert np.allclose(ensemble.test_probabilities, expected)
    assert ensemble.folds_run == 3 and 0 < ensemble.threshold < 1
    assert ensemble.metrics["roc_auc"] >= min(r.metrics["roc_auc"] for r in results.values())
    # the pipeline is the shared preprocessing and the weighted estimators: export and serving read it like any model
    assert list(ensemble.pipeline.named_steps) == ["pre", "model"]


def test_weights_apply_to_fitted_pipelines():
    X, y, pre = _data()
    p1 = make_pipeline("logistic_regression", {}, pre, 0, 1).fit(X, y)
    p2 = make_pipeline("random_forest", {"n_estimators": 20}, pre, 0, 1).fit(X, y)
    blend = ensemble_pipeline({"logistic_regression": p1, "random_forest": p2}, {"logistic_regression": 0.6, "random_forest": 0.4})
    expected = 0.6 * p1.predict_proba(X)[:, 1] + 0.4 * p2.predict_proba(X)[:, 1]
    assert np.allclose(blend.predict_proba(X)[:, 1], expected)
    assert ((blend.predict(X) == 1) == (expected >= 0.5)).all()
