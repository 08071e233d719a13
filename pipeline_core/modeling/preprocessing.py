"""The scikit-learn preprocessing built from the gold layer's preprocessing_config.json."""

from __future__ import annotations

from typing import Any


def build_preprocessor(prep: dict[str, Any]) -> Any:
    """numeric: impute -> scale; categorical: impute -> one-hot (drop first, ignore unknown)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, RobustScaler, StandardScaler

    scalers = {"robust": RobustScaler, "standard": StandardScaler, "minmax": MinMaxScaler}
    numeric_steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy=prep["imputation"]["numeric"]))]
    if prep["scaler"] in scalers:
        numeric_steps.append(("scale", scalers[prep["scaler"]]()))
    categorical = Pipeline([
        ("impute", SimpleImputer(strategy=prep["imputation"]["categorical"], fill_value="missing")),
        ("onehot", OneHotEncoder(drop="first", handle_unknown="ignore", sparse_output=False)),
    ])
    transformers = []
    if prep["numeric_columns"]:
        transformers.append(("numeric", Pipeline(numeric_steps), list(prep["numeric_columns"])))
    if prep["categorical_columns"]:
        transformers.append(("categorical", categorical, list(prep["categorical_columns"])))
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)


def feature_columns(prep: dict[str, Any]) -> list[str]:
    return [*prep["numeric_columns"], *prep["categorical_columns"]]
