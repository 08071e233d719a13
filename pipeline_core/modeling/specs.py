"""The models the pipeline can train: one `ModelSpec` each, in one table.

Adding a model is one entry in `MODEL_SPECS`: how to build the estimator, its default Optuna
search space (one comment per hyperparameter), how it stops early, and what to install.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline_core.errors import ConfigError, first_line

Space = dict[str, dict[str, Any]]


def default_importance(estimator: Any) -> list[float] | None:
    """Impurity or gain for tree ensembles, |coefficient| for linear models."""
    import numpy as np

    if hasattr(estimator, "feature_importances_"):
        return np.asarray(estimator.feature_importances_, dtype=float).tolist()
    if hasattr(estimator, "coef_"):
        return np.abs(np.ravel(estimator.coef_)).tolist()
    return None


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[[dict[str, Any], int, int], Any]  # (params, seed, n_jobs) -> a fresh, seeded estimator
    search_space: Space
    # The strong defaults every run evaluates first (the first rung of the budget): tuning only has
    # to beat them, and a model that is not tuned still trains with them.
    defaults: dict[str, Any] = field(default_factory=dict)
    package: str = "scikit-learn"  # what `pip install` brings it
    module: str = "sklearn"  # what it is imported as
    # Fits on a training fold with the validation fold for early stopping and returns the number of
    # rounds it kept; None: the model fits on the training rows alone.
    fit_early_stopping: Callable[[Any, Any, Any, Any, Any], int] | None = None
    rounds_param: str | None = None  # the parameter the kept rounds set on the final refit
    # Parameters that depend on the width of the encoded table, set on a fresh estimator once the
    # preprocessing is fitted: (params the model was built from, encoded columns) -> parameters.
    width_params: Callable[[dict[str, Any], int], dict[str, Any]] | None = None
    # Importance per transformed feature of a fitted estimator (None: the model has none to give).
    importance: Callable[[Any], list[float] | None] = default_importance
    # The parameter names the library takes beyond its estimator's constructor (its own names and aliases).
    library_params: Callable[[], frozenset[str]] = frozenset

    def available(self) -> bool:
        return importlib.util.find_spec(self.module) is not None


def feature_importance(model: str, pipeline: Any) -> dict[str, float]:
    """{transformed feature: importance}, largest first, for a fitted preprocessing + estimator pipeline
    (empty for what is not one model of the table, such as the weighted ensemble)."""
    if model not in MODEL_SPECS:
        return {}
    estimator = pipeline.named_steps["model"]
    values = model_spec(model).importance(getattr(estimator, "classifier", estimator))  # a calibrated model's own
    if values is None:
        return {}
    names = list(pipeline.named_steps["pre"].get_feature_names_out())
    return dict(sorted(zip(names, values), key=lambda kv: -kv[1]))


def _logistic_regression(params: dict[str, Any], seed: int, n_jobs: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=500, random_state=seed, **params)


# Newton's method converges in a handful of iterations where lbfgs, on heavy-tailed columns scaled by
# their interquartile range, can spend all 500 without converging, and stop far from the optimum
# (benchmarks/AUTOML_RESULTS.md). Its Hessian costs rows x columns² per iteration, so past a few
# hundred encoded columns lbfgs is the cheaper one.
NEWTON_MAX_COLUMNS = 250


def _logistic_regression_solver(params: dict[str, Any], columns: int) -> dict[str, Any]:
    """newton-cholesky for a narrow encoded table, lbfgs for a wide one; a solver the config names stays."""
    if "solver" in params:
        return {}
    return {"solver": "newton-cholesky" if columns <= NEWTON_MAX_COLUMNS else "lbfgs"}


def _random_forest(params: dict[str, Any], seed: int, n_jobs: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(random_state=seed, n_jobs=n_jobs, **params)


def _extra_trees(params: dict[str, Any], seed: int, n_jobs: int) -> Any:
    from sklearn.ensemble import ExtraTreesClassifier

    return ExtraTreesClassifier(random_state=seed, n_jobs=n_jobs, **params)


def _hist_gradient_boosting(params: dict[str, Any], seed: int, n_jobs: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(random_state=seed, early_stopping=True, **params)  # stops on its own inner split


BOOSTING_MAX_ROUNDS = 2000  # an upper bound: early stopping on the validation fold picks the rounds
BOOSTING_EARLY_STOPPING = 50
BALANCED = "balanced"  # scale_pos_weight: negatives / positives of the rows the model is fitted on


def positive_weight(y: Any) -> float:
    """negatives / positives: the weight that makes both classes count alike."""
    import numpy as np

    positives = int(np.sum(y))
    return (len(y) - positives) / positives if positives else 1.0


def resolve_balance(estimator: Any, y: Any) -> None:
    """Turn ``scale_pos_weight: balanced`` into the number for these training rows (the search space
    cannot know the class ratio; the classes' own ``class_weight='balanced'`` needs no help)."""
    params = estimator.get_params()
    if params.get("scale_pos_weight") == BALANCED:
        estimator.set_params(scale_pos_weight=positive_weight(y))


def _xgboost(params: dict[str, Any], seed: int, n_jobs: int) -> Any:
    from xgboost import XGBClassifier

    defaults = {"n_estimators": BOOSTING_MAX_ROUNDS, "tree_method": "hist", "eval_metric": "logloss"}
    return XGBClassifier(random_state=seed, n_jobs=n_jobs, **{**defaults, **params})


@functools.cache
def _xgboost_params() -> frozenset[str]:
    """Every parameter name XGBoost's core takes: the names in the configuration each kind of booster saves."""
    import json

    import numpy as np
    from xgboost import XGBClassifier

    def names(node: Any) -> set[str]:
        if isinstance(node, dict):
            return set(node) | {n for value in node.values() for n in names(value)}
        return {n for value in node for n in names(value)} if isinstance(node, list) else set()

    X, y = np.random.default_rng(0).normal(size=(20, 2)), np.tile([0, 1], 10)
    kinds = [{"tree_method": m} for m in ("hist", "approx", "exact")] + [{"booster": "dart"}, {"booster": "gblinear"}]
    return frozenset().union(*(names(json.loads(XGBClassifier(n_estimators=1, n_jobs=1, **kind).fit(X, y).get_booster().save_config()))
                               for kind in kinds))


def _xgboost_early_stopping(pipeline: Any, X: Any, y: Any, X_val: Any, y_val: Any) -> int:
    """Fit the preprocessing on the training fold, then boost until the validation fold stops improving."""
    pre = pipeline.named_steps["pre"].fit(X, y)
    est = pipeline.named_steps["model"]
    est.set_params(early_stopping_rounds=BOOSTING_EARLY_STOPPING)
    est.fit(pre.transform(X), y, eval_set=[(pre.transform(X_val), y_val)], verbose=False)
    return int(est.best_iteration) + 1


def _lightgbm(params: dict[str, Any], seed: int, n_jobs: int) -> Any:
    from lightgbm import LGBMClassifier

    defaults = {"n_estimators": BOOSTING_MAX_ROUNDS, "verbose": -1}
    return LGBMClassifier(random_state=seed, n_jobs=n_jobs, **{**defaults, **params})


@functools.cache
def _lightgbm_params() -> frozenset[str]:
    """Every parameter name LightGBM's core takes, aliases included, as its C library lists them."""
    from lightgbm.basic import _ConfigAliases

    aliases = _ConfigAliases._get_all_param_aliases()
    return frozenset(aliases) | {alias for names in aliases.values() for alias in names}


def _lightgbm_early_stopping(pipeline: Any, X: Any, y: Any, X_val: Any, y_val: Any) -> int:
    """As for XGBoost: boost on the training fold until the validation fold's log loss stops improving."""
    import lightgbm

    pre = pipeline.named_steps["pre"].fit(X, y)
    est = pipeline.named_steps["model"]
    est.fit(pre.transform(X), y, eval_X=pre.transform(X_val), eval_y=y_val, eval_metric="binary_logloss",
            callbacks=[lightgbm.early_stopping(BOOSTING_EARLY_STOPPING, verbose=False)])
    return int(est.best_iteration_ or est.n_estimators)


_SPACES: dict[str, Space] = {
    "logistic_regression": {
        # inverse regularisation strength; above 10 the scaled, one-hot features are barely regularised
        # and lbfgs needs thousands of iterations for no gain
        "C": {"type": "float", "low": 1e-3, "high": 10.0, "log": True},
        "class_weight": {"type": "categorical", "choices": [None, "balanced"]},  # reweights the rarer class
    },
    "random_forest": {
        "n_estimators": {"type": "int", "low": 50, "high": 300, "step": 50},  # more trees: less variance, more time
        "max_depth": {"type": "int", "low": 4, "high": 16},  # caps tree size: the main overfitting knob
        "min_samples_leaf": {"type": "int", "low": 1, "high": 20, "log": True},  # smooths leaf probabilities
        "max_features": {"type": "categorical", "choices": ["sqrt", "log2", 0.5]},  # decorrelates trees
        "class_weight": {"type": "categorical", "choices": [None, "balanced_subsample"]},  # reweights the rarer class per tree
    },
    "extra_trees": {
        "n_estimators": {"type": "int", "low": 50, "high": 300, "step": 50},  # as for random forest
        "max_depth": {"type": "int", "low": 4, "high": 24},  # random splits tolerate deeper trees
        "min_samples_leaf": {"type": "int", "low": 1, "high": 20, "log": True},  # smooths leaf probabilities
        "class_weight": {"type": "categorical", "choices": [None, "balanced_subsample"]},  # reweights the rarer class per tree
    },
    "xgboost": {
        "learning_rate": {"type": "float", "low": 0.02, "high": 0.3, "log": True},  # shrinkage per round (as for LightGBM)
        "max_depth": {"type": "int", "low": 2, "high": 8},  # interaction depth
        "min_child_weight": {"type": "float", "low": 0.5, "high": 20.0, "log": True},  # minimum hessian in a leaf
        "subsample": {"type": "float", "low": 0.5, "high": 1.0},  # row sampling per tree
        "colsample_bytree": {"type": "float", "low": 0.4, "high": 1.0},  # column sampling per tree
        "reg_lambda": {"type": "float", "low": 1e-3, "high": 10.0, "log": True},  # L2 on leaf weights
        "scale_pos_weight": {"type": "categorical", "choices": [1.0, BALANCED]},  # reweights the rarer class
    },
    "lightgbm": {
        # shrinkage per round; below 0.02 early stopping needs thousands of rounds for little gain
        "learning_rate": {"type": "float", "low": 0.02, "high": 0.2, "log": True},
        "num_leaves": {"type": "int", "low": 8, "high": 64, "log": True},  # tree complexity (leaf-wise growth)
        "min_child_samples": {"type": "int", "low": 5, "high": 100, "log": True},  # rows in a leaf: smooths leaves
        "colsample_bytree": {"type": "float", "low": 0.4, "high": 1.0},  # column sampling per tree
        "subsample": {"type": "float", "low": 0.5, "high": 1.0},  # row sampling (with subsample_freq)
        "reg_lambda": {"type": "float", "low": 1e-3, "high": 10.0, "log": True},  # L2 on leaf values
        "class_weight": {"type": "categorical", "choices": [None, "balanced"]},  # reweights the rarer class
    },
    "hist_gradient_boosting": {
        "learning_rate": {"type": "float", "low": 0.01, "high": 0.3, "log": True},  # shrinkage per iteration
        "max_leaf_nodes": {"type": "int", "low": 8, "high": 64, "log": True},  # tree complexity
        "l2_regularization": {"type": "float", "low": 1e-4, "high": 10.0, "log": True},  # L2 on leaf values
        "min_samples_leaf": {"type": "int", "low": 5, "high": 100, "log": True},  # smooths leaves
        "class_weight": {"type": "categorical", "choices": [None, "balanced"]},  # reweights the rarer class
    },
}

# Defaults in the manner of AutoGluon's first models: good on most tables without any search.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "logistic_regression": {"C": 1.0},
    "random_forest": {"n_estimators": 100, "min_samples_leaf": 5, "max_features": "sqrt"},
    "extra_trees": {"n_estimators": 100, "min_samples_leaf": 5},
    "xgboost": {"learning_rate": 0.05, "max_depth": 6, "subsample": 0.9, "colsample_bytree": 0.8},
    "lightgbm": {"learning_rate": 0.05, "num_leaves": 31, "min_child_samples": 20, "colsample_bytree": 0.8,
                 "subsample": 0.9, "subsample_freq": 1},
    "hist_gradient_boosting": {"learning_rate": 0.1},
}


MODEL_SPECS: dict[str, ModelSpec] = {
    "logistic_regression": ModelSpec("logistic_regression", _logistic_regression, _SPACES["logistic_regression"],
                                     _DEFAULTS["logistic_regression"], width_params=_logistic_regression_solver),
    "random_forest": ModelSpec("random_forest", _random_forest, _SPACES["random_forest"], _DEFAULTS["random_forest"]),
    "xgboost": ModelSpec("xgboost", _xgboost, _SPACES["xgboost"], _DEFAULTS["xgboost"], package="xgboost", module="xgboost",
                         fit_early_stopping=_xgboost_early_stopping, rounds_param="n_estimators", library_params=_xgboost_params),
    "lightgbm": ModelSpec("lightgbm", _lightgbm, _SPACES["lightgbm"], _DEFAULTS["lightgbm"], package="lightgbm", module="lightgbm",
                          fit_early_stopping=_lightgbm_early_stopping, rounds_param="n_estimators", library_params=_lightgbm_params),
    "hist_gradient_boosting": ModelSpec("hist_gradient_boosting", _hist_gradient_boosting, _SPACES["hist_gradient_boosting"],
                                        _DEFAULTS["hist_gradient_boosting"]),
    "extra_trees": ModelSpec("extra_trees", _extra_trees, _SPACES["extra_trees"], _DEFAULTS["extra_trees"]),
}
# Cheapest first: the budget's first rung evaluates them in this order.
DEFAULT_MODELS = ("logistic_regression", "lightgbm", "xgboost", "random_forest")


def model_spec(model: str) -> ModelSpec:
    if model not in MODEL_SPECS:
        raise ConfigError(f"unknown model '{model}'; allowed: {', '.join(MODEL_SPECS)}")
    return MODEL_SPECS[model]


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
    spec = model_spec(model)
    if not spec.available():
        raise ConfigError(f"training.models.{model}: the {spec.package} package is not installed; "
                          f"pip install {spec.package}, or set enabled: false")
    return spec.build(params, seed, n_jobs)


def unknown_param_names(model: str, names: dict[str, Any]) -> list[str]:
    """The names in ``names`` that the model's library does not take: XGBoost and LightGBM pass unknown
    keywords on to their cores, which ignore them, so a typo would tune or train with the default."""
    spec = model_spec(model)
    known = set(spec.build({}, 0, 1).get_params()) | spec.library_params()
    return sorted(n for n in names if n not in known)


def _bound_values(space: Space, end: int) -> dict[str, Any]:
    """One corner of a search space: every parameter at its low (end 0) or high (end -1) value."""
    return {p: spec["choices"][end] if spec["type"] == "categorical" else spec["low" if end == 0 else "high"]
            for p, spec in space.items()}


def _unknown_hint(name: str) -> str:
    return " (a YAML mapping needs a space after each colon: 'max_depth: 4')" if ":" in name else ""


def check_model_params(models: dict[str, Any]) -> None:
    """Refuse, naming the key, the fixed ``params`` and configured ``search_space`` entries of each enabled
    model that its library does not take: an unknown name, or a value it rejects when fitting a few
    synthetic rows (the libraries check some values at construction and the rest only when fitting)."""
    import warnings

    import numpy as np

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), np.tile([0, 1], 20)
    for model, mc in models.items():
        if not (mc.enabled and (mc.params or mc.search_space)):
            continue
        if not model_spec(model).available():
            make_estimator(model, {}, seed=0, n_jobs=1)  # the install hint
        candidates = [("params", dict(mc.params), mc.params)] if mc.params else []
        if mc.search_space:
            candidates += [("search_space", {**mc.params, **_bound_values(mc.search_space, end)}, mc.search_space) for end in (0, -1)]
        for section, params, given in candidates:
            key = f"training.models.{model}.{section}"
            for name in unknown_param_names(model, given):
                raise ConfigError(f"{key}.{name}: {model} takes no parameter of that name{_unknown_hint(name)}; "
                                  "see the library's parameter list")
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    estimator = make_estimator(model, {**model_spec(model).defaults, **params}, seed=0, n_jobs=1)
                    resolve_balance(estimator, y)
                    estimator.fit(X, y)
            except ConfigError:
                raise
            except Exception as exc:
                raise ConfigError(f"{key}: {first_line(exc)}") from None


def search_space(model: str, configured: Space | None) -> Space:
    space = configured if configured is not None else model_spec(model).search_space
    validate_space(model, space)
    return space
