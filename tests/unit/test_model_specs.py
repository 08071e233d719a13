"""A model is one ModelSpec entry: the config, tuning, fitting and importances all read it from the table."""

import numpy as np
import pandas as pd
import pytest

from pipeline_core.config import ModelConfig, TrainingConfig, parse_config
from pipeline_core.errors import ConfigError
from pipeline_core.modeling import specs
from pipeline_core.modeling.preprocessing import build_preprocessor
from pipeline_core.modeling.specs import MODEL_SPECS, ModelSpec, feature_importance, make_estimator, search_space
from pipeline_core.modeling.training import split_data, train_model

MINIMAL = {"dataset": {"name": "d", "source": "x.csv", "target": "y"}}


@pytest.mark.parametrize("name", sorted(MODEL_SPECS))
def test_every_model_has_a_valid_space_and_a_seeded_estimator(name):
    assert search_space(name, None) == MODEL_SPECS[name].search_space
    est = make_estimator(name, {}, seed=11, n_jobs=1)
    assert est.get_params()["random_state"] == 11
    parse_config({**MINIMAL, "training": {"models": {name: {}}}})  # the config accepts it by its table name


def test_an_unknown_model_names_the_allowed_ones():
    with pytest.raises(ConfigError, match="unknown model.*logistic_regression"):
        parse_config({**MINIMAL, "training": {"models": {"nope": {}}}})


def _toy(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"x": rng.normal(size=n), "c": rng.choice(["a", "b"], n).astype(object)})
    y = ((X["x"] + (X["c"] == "a") + rng.normal(0, 0.5, n)) > 0.5).astype(int).to_numpy()
    prep = {"numeric_columns": ["x"], "categorical_columns": ["c"], "scaler": "standard",
            "imputation": {"numeric": "median", "categorical": "most_frequent"}}
    return X, y, build_preprocessor(prep)


def test_adding_a_model_is_one_table_entry(monkeypatch):
    from sklearn.tree import DecisionTreeClassifier

    entry = ModelSpec("decision_tree", lambda params, seed, n_jobs: DecisionTreeClassifier(random_state=seed, **params),
                      {"max_depth": {"type": "int", "low": 1, "high": 4}})
    monkeypatch.setitem(MODEL_SPECS, "decision_tree", entry)
    cfg = parse_config({**MINIMAL, "training": {"models": {"decision_tree": {}},
                                                "tuning": {"n_trials": 3, "cv_folds": 3}}}).training
    X, y, pre = _toy()
    result = train_model("decision_tree", cfg.models["decision_tree"], pre, split_data(X, y, cfg), cfg, 1, "dt")
    assert result.tuned and len(result.trials) == 3 and all(1 <= t["param_max_depth"] <= 4 for t in result.trials)
    if result.params_from == "tuning":
        assert 1 <= result.params["max_depth"] <= 4
    assert 0.5 < result.metrics["roc_auc"] <= 1
    importance = feature_importance("decision_tree", result.pipeline)
    assert set(importance) == {"x", "c_b"} and list(importance.values()) == sorted(importance.values(), reverse=True)


@pytest.mark.parametrize("model", ["xgboost", "lightgbm"])
def test_early_stopping_sets_the_rounds_of_the_refit(model):
    pytest.importorskip(MODEL_SPECS[model].module)
    cfg = TrainingConfig.model_validate({"tuning": {"enabled": False, "cv_folds": 3}})
    X, y, pre = _toy()
    result = train_model(model, ModelConfig(), pre, split_data(X, y, cfg), cfg, 1, model)
    # the spec stops on each validation fold; the refit takes their mean number of rounds
    assert MODEL_SPECS[model].rounds_param == "n_estimators"
    assert 1 <= result.params["n_estimators"] < specs.BOOSTING_MAX_ROUNDS
    assert result.pipeline.named_steps["model"].n_estimators == result.params["n_estimators"]
    assert result.params_from == "defaults" and not result.tuned and result.note == "tuning off"
    assert result.metrics["roc_auc"] > 0.8


def test_every_search_space_can_weight_the_rarer_class():
    for name, spec in MODEL_SPECS.items():
        weights = spec.search_space.get("class_weight") or spec.search_space.get("scale_pos_weight")
        assert weights is not None and len(weights["choices"]) == 2, name


def test_a_balanced_positive_weight_is_the_class_ratio_of_the_rows_fitted():
    pytest.importorskip("xgboost")
    cfg = TrainingConfig.model_validate({"tuning": {"enabled": False, "cv_folds": 3}})
    X, y, pre = _toy()
    result = train_model("xgboost", ModelConfig(params={"scale_pos_weight": "balanced"}), pre, split_data(X, y, cfg), cfg, 1, "w")
    fitted = result.pipeline.named_steps["model"].get_params()["scale_pos_weight"]
    y_train = split_data(X, y, cfg).y_train
    assert fitted == pytest.approx((y_train == 0).sum() / (y_train == 1).sum())


def test_a_missing_package_gives_an_install_hint(monkeypatch):
    monkeypatch.setitem(MODEL_SPECS, "ghost", ModelSpec("ghost", lambda p, s, n: None, {}, package="ghost-ml", module="ghost_ml"))
    with pytest.raises(ConfigError, match="pip install ghost-ml"):
        make_estimator("ghost", {}, 0, 1)


def _heavy_tailed(levels=3, seed=0):
    """Two numeric columns with outliers far beyond their interquartile range, and one text column of
    ``levels`` levels, each on enough rows to be in every training fold."""
    rng = np.random.default_rng(seed)
    n = max(2000, 40 * levels)
    income = rng.lognormal(10, 1.5, n)
    X = pd.DataFrame({"income": income, "balance": rng.pareto(1.1, n) * 1e4,
                      "grade": rng.permutation(np.array([f"g{i % levels}" for i in range(n)], dtype=object))})
    y = ((np.log(income) - 10 + rng.normal(0, 1, n)) > 0).astype(int)
    prep = {"numeric_columns": ["income", "balance"], "categorical_columns": ["grade"], "scaler": "robust",
            "imputation": {"numeric": "median", "categorical": "most_frequent"}}
    return X, y, build_preprocessor(prep)


def test_logistic_regression_solver_follows_the_width_of_the_encoded_table_unless_the_config_names_one():
    cfg = TrainingConfig.model_validate({"tuning": {"enabled": False, "cv_folds": 3}})
    X, y, pre = _heavy_tailed()
    narrow = train_model("logistic_regression", ModelConfig(), pre, split_data(X, y, cfg), cfg, 1, "lr")
    fitted = narrow.pipeline.named_steps["model"]
    assert fitted.solver == "newton-cholesky" and fitted.n_iter_[0] < 20  # converged, not stopped by max_iter
    assert "solver" not in narrow.params  # chosen from the data's width, not a setting

    X, y, pre = _heavy_tailed(levels=specs.NEWTON_MAX_COLUMNS + 10)
    wide = train_model("logistic_regression", ModelConfig(), pre, split_data(X, y, cfg), cfg, 1, "lr")
    assert wide.pipeline.named_steps["model"].solver == "lbfgs"

    X, y, pre = _heavy_tailed()
    named = train_model("logistic_regression", ModelConfig(params={"solver": "liblinear"}), pre, split_data(X, y, cfg), cfg, 1, "lr")
    assert named.pipeline.named_steps["model"].solver == "liblinear"


@pytest.mark.parametrize("model, section, entry, culprit", [
    # XGBoost and LightGBM pass unknown keywords on to their cores, which ignore them: a typo trained with the default
    ("xgboost", "params", {"colsample_bytre": 0.5}, "training.models.xgboost.params.colsample_bytre: xgboost takes no parameter"),
    ("xgboost", "params", {"max_depth:abc": None}, "training.models.xgboost.params.max_depth:abc: xgboost takes no parameter"),
    ("lightgbm", "params", {"colsample_bytre": 0.5}, "training.models.lightgbm.params.colsample_bytre: lightgbm takes no parameter"),
    ("random_forest", "params", {"n_estimator": 50}, "training.models.random_forest.params.n_estimator: random_forest takes no"),
    ("lightgbm", "search_space", {"num_leavs": {"type": "int", "low": 8, "high": 64}}, "training.models.lightgbm.search_space.num_leavs"),
    ("xgboost", "search_space", {"max_dept": {"type": "int", "low": 2, "high": 4}}, "xgboost.search_space.max_dept: xgboost takes no"),
    # a value the library refuses at one end of the space
    ("random_forest", "search_space", {"max_depth": {"type": "int", "low": -3, "high": 4}}, "search_space: The 'max_depth' parameter"),
])
def test_a_parameter_the_library_does_not_take_is_a_config_error_naming_its_key(model, section, entry, culprit):
    models = {model: ModelConfig.model_validate({section: entry})}
    with pytest.raises(ConfigError) as caught:
        specs.check_model_params(models)
    assert culprit in str(caught.value)


def test_library_names_and_aliases_pass_the_parameter_check():
    models = {"xgboost": ModelConfig(params={"eta": 0.1, "lambda": 2.0, "booster": "dart", "rate_drop": 0.1}),
              "lightgbm": ModelConfig(params={"feature_fraction": 0.5, "min_data_in_leaf": 3},
                                      search_space={"bagging_fraction": {"type": "float", "low": 0.5, "high": 1.0}}),
              "logistic_regression": ModelConfig(search_space={"class_weight": {"type": "categorical", "choices": [None, "balanced"]}})}
    specs.check_model_params(models)  # raises on any of them refused
    assert specs.unknown_param_names("lightgbm", {"feature_fraction": 0.5, "nope": 1}) == ["nope"]
