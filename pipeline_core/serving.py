"""The registered model: one MLflow pyfunc from a raw record to a probability.

It carries the cleaning spec, the feature spec and the fitted preprocessing+estimator, and
calls the very same `clean_rows` and `engineer_features` as the data layers, so any stock
MLflow client gets exactly the pipeline's predictions. `pipeline_io.model_format` writes it as
files (JSON and skops) and is the pyfunc's loader module.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from pipeline_core.cleaning import CleaningSpec, clean_rows
from pipeline_core.features import FeatureSpec, engineer_features
from pipeline_core.modeling.training import to_pandas_features


def feature_rows(raw: pl.DataFrame | pl.LazyFrame, cleaning: dict[str, Any], features: dict[str, Any]) -> pl.LazyFrame:
    """Raw records (or records already staged by `with_cleaned`) -> cleaned columns plus engineered features."""
    cleaned = clean_rows(raw.lazy(), CleaningSpec.from_dict(cleaning))
    return engineer_features(cleaned, FeatureSpec.from_dict(features))


def feature_frame(raw: pl.DataFrame | pl.LazyFrame, cleaning: dict[str, Any], features: dict[str, Any]) -> pl.DataFrame:
    """`feature_rows`, collected."""
    return feature_rows(raw, cleaning, features).collect()


def raw_frame(raw: pd.DataFrame, cleaning: dict[str, Any]) -> pl.DataFrame:
    """Raw (or already silver-named) records under their raw source names, as polars."""
    spec = CleaningSpec.from_dict(cleaning)
    renames = {new: old for old, new in spec.renames.items() if old not in raw.columns and new in raw.columns}
    return pl.from_pandas(raw.rename(columns=renames), include_index=False)


def raw_to_features(raw: pd.DataFrame, cleaning: dict[str, Any], features: dict[str, Any],
                    numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """Raw (or already silver-named) records -> the model's feature frame."""
    return to_pandas_features(feature_frame(raw_frame(raw, cleaning), cleaning, features), numeric, categorical)


def rule_failures(raw: pd.DataFrame, cleaning: dict[str, Any]) -> pd.Series:
    """Per record, why `pipeline-cli predict` would quarantine it (a value that does not parse, a silver rule it
    breaks), or None: the same checks, so that a stock client learns which answers the pipeline would not give."""
    from pipeline_core.scoring import chunk_plan, inference_spec

    frame = raw_frame(raw, cleaning)
    plan = chunk_plan(frame.schema, inference_spec(cleaning, rules=True))
    reasons = plan.cleaning.apply(frame.lazy()).select(plan.reason).collect().to_series()
    return pd.Series(reasons.to_list(), index=raw.index, dtype="object")


class RawRecordClassifier:
    """predict(raw records) -> DataFrame(probability, prediction): what MLflow's pyfunc calls.

    ``prediction_reference`` (quantile bins of the holdout probabilities) lets batch inference
    judge drift of the model's output against training.
    """

    def __init__(self, pipeline: Any, cleaning: dict[str, Any], features: dict[str, Any],
                 numeric: list[str], categorical: list[str], threshold: float,
                 prediction_reference: dict[str, Any] | None = None) -> None:
        self.pipeline = pipeline
        self.cleaning = cleaning
        self.features = features
        self.numeric = numeric
        self.categorical = categorical
        self.threshold = threshold
        self.prediction_reference = prediction_reference

    def model_input(self, features: pl.DataFrame) -> pd.DataFrame:
        """Feature rows as `feature_frame` makes them -> what the scikit-learn pipeline reads."""
        return to_pandas_features(features, self.numeric, self.categorical)

    def probabilities(self, features: pl.DataFrame) -> np.ndarray:
        """Probabilities of feature rows as `feature_frame` makes them."""
        return self.pipeline.predict_proba(self.model_input(features))[:, 1]

    def predict_proba(self, raw: pd.DataFrame) -> np.ndarray:
        if len(raw) == 0:  # scikit-learn refuses an empty table; an empty batch has empty answers
            return np.empty(0, dtype="float64")
        X = raw_to_features(raw, self.cleaning, self.features, self.numeric, self.categorical)
        return self.pipeline.predict_proba(X)[:, 1]

    def get_raw_model(self) -> RawRecordClassifier:
        """What `PyFuncModel.get_raw_model()` returns: this object, for the pipeline's own scoring."""
        return self

    def predict(self, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """A probability and a prediction per record; a record `pipeline-cli predict` would quarantine gets neither
        (NaN and null), and its reason in ``quarantine_reason``."""
        threshold = float((params or {}).get("threshold", self.threshold))
        proba = self.predict_proba(model_input)
        reasons = rule_failures(model_input, self.cleaning) if len(model_input) else pd.Series([], dtype="object")
        refused = reasons.notna().to_numpy()
        prediction = pd.array((proba >= threshold).astype("int64"), dtype="Int64")
        prediction[refused] = pd.NA
        return pd.DataFrame({"probability": np.where(refused, np.nan, proba), "prediction": prediction,
                             "quarantine_reason": reasons.to_numpy()})
