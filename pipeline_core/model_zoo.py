"""The models the pipeline can train and their default Optuna search spaces."""

from __future__ import annotations

import importlib.util
from typing import Any

from pipeline_core.errors import ConfigError

# One comment per hyperparameter: why it is searched and over what range.
DEFAULT_SPACES: dict[str, dict[str, dict[str, Any]]] = {
    "logistic_regression": {
        "C": {"type": "float", "low": 1e-3, "high": 100.0, "log": True},  # inverse regularisation strength
    },
    "random_forest": {
        "n_estimators": {"type": "int", "low": 50, "high": 300, "step": 50},  # more trees: less variance, more time
        "max_depth": {"type": "int", "low": 4, "high": 16},  # caps tree size: the main overfitting knob
        "min_samples_leaf": {"type": "int", "low": 1, "high": 20, "log": True},  # smooths leaf probabilities
        "max_features": {"type": "categorical", "choices": ["sqrt", "log2", 0.5]},  # decorrelates trees
    },
    "extra_trees": {
        "n_estimators": {"type": "int", "low": 50, "high": 300, "step": 50},  # as for random forest
        "max_depth": {"type": "int", "low": 4, "high": 24},  # random splits tolerate deeper trees
        "min_samples_leaf": {"type": "int", "low": 1, "high": 20, "log": True},  # smooths leaf probabilities
    },
    "xgboost": {
        "learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True},  # shrinkage per round
        "max_depth": {"type": "int", "low": 2, "high": 8},  # interaction depth
        "min_child_weight": {"type": "float", "low": 0.5, "high": 20.0, "log": True},  # minimum hessian in a leaf
        "subsample": {"type": "float", "low": 0.5, "high": 1.0},  # row sampling per tree
        "colsample_bytree": {"type": "float", "low": 0.4, "high": 1.0},  # column sampling per tree
        "reg_lambda": {"type": "float", "low": 1e-3, "high": 10.0, "log": True},  # L2 on leaf weights
    },
    "hist_gradient_boosting": {
        "learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True},  # shrinkage per iteration
        "max_leaf_nodes": {"type": "int", "low": 8, "high": 64, "log": True},  # tree complexity
        "l2_regularization": {"type": "float", "low": 1e-4, "high": 10.0, "log": True},  # L2 on leaf values
        "min_samples_leaf": {"type": "int", "low": 5, "high": 100, "log": True},  # smooths leaves
    },
}

XGB_MAX_ROUNDS = 600
XGB_EARLY_STOPPING = 30


def validate_space(model: str, space: dict[str, dict[str, Any]]) -> None:
    """Refuse a malformed search space with the key path of the problem."""
    for param, spec in space.items():
        key = f"training.models.{model}.search_space.{param}"
        kind = spec.get("type")
        if kind in ("int", "float"):
            if "low" not in spec or "high" not in spec:
                raise ConfigError(f"{key}: needs low and high")
            if spec["low"] >= spec["high"]:
                raise ConfigError(f"{key}: low ({spec['low']}) must be below high ({spec['high']})")
            if spec.get("log") and spec["low"] <= 0:
                raise ConfigError(f"{key}: a log scale needs low > 0")
        elif kind == "categorical":
            if not spec.get("choices"):
                raise ConfigError(f"{key}: needs a non-empty choices list")
        else:
            raise ConfigError(f"{key}: type must be int, float or categorical (got {kind!r})")


def suggest(trial: Any, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, spec in space.items():
        if spec["type"] == "int":
            params[name] = trial.suggest_int(name, int(spec["low"]), int(spec["high"]), step=int(spec.get("step", 1)), log=bool(spec.get("log", False)))
        elif spec["type"] == "float":
            params[name] = trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log", False)))
        else:
            params[name] = trial.suggest_categorical(name, spec["choices"])
    return params


def make_estimator(model: str, params: dict[str, Any], seed: int, n_jobs: int) -> Any:
    """A fresh, seeded estimator; an optional library that is missing fails with an install hint."""
    if model == "logistic_regression":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(max_iter=2000, random_state=seed, **params)
    if model == "random_forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(random_state=seed, n_jobs=n_jobs, **params)
    if model == "extra_trees":
        from sklearn.ensemble import ExtraTreesClassifier

        return ExtraTreesClassifier(random_state=seed, n_jobs=n_jobs, **params)
    if model == "hist_gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(random_state=seed, early_stopping=True, **params)
    if model == "xgboost":
        if importlib.util.find_spec("xgboost") is None:
            raise ConfigError("training.models.xgboost: the xgboost package is not installed; pip install xgboost, or set enabled: false")
        from xgboost import XGBClassifier

        defaults = {"n_estimators": XGB_MAX_ROUNDS, "tree_method": "hist", "eval_metric": "logloss"}
        return XGBClassifier(random_state=seed, n_jobs=n_jobs, **{**defaults, **params})
    raise ConfigError(f"unknown model '{model}'")


def search_space(model: str, configured: dict[str, dict[str, Any]] | None) -> dict[str, dict[str, Any]]:
    space = configured if configured is not None else DEFAULT_SPACES[model]
    validate_space(model, space)
    return space
