"""Optional probability calibration, fitted on a model's out-of-fold predictions.

The calibrator maps a model's probability to a calibrated one: isotonic regression (monotone,
non-parametric) or sigmoid (Platt scaling: a logistic regression on the log-odds). It learns from
out-of-fold predictions, so it sees how the model scores rows it was not fitted on; the final model
is the refitted estimator with that calibrator on top, one scikit-learn step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline_core.modeling.prefitted import PrefittedBinaryClassifier

METHODS = ("none", "isotonic", "sigmoid")
_EPS = 1e-6


def _log_odds(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), _EPS, 1 - _EPS)
    return np.log(p / (1 - p)).reshape(-1, 1)


class ProbabilityCalibrator:
    """A fitted 1-D map from a model's probability to a calibrated probability."""

    def __init__(self, method: str, model: Any) -> None:
        self.method = method
        self.model = model

    @classmethod
    def fit(cls, method: str, probabilities: np.ndarray, y: np.ndarray) -> ProbabilityCalibrator:
        if method == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            return cls(method, IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(probabilities, y))
        if method == "sigmoid":
            from sklearn.linear_model import LogisticRegression

            return cls(method, LogisticRegression(C=1e6).fit(_log_odds(probabilities), y))
        raise ValueError(f"calibration method {method!r} is not one of {list(METHODS[1:])}")

    def transform(self, probabilities: np.ndarray) -> np.ndarray:
        if self.method == "isotonic":
            return np.asarray(self.model.predict(probabilities), dtype=float)
        return self.model.predict_proba(_log_odds(probabilities))[:, 1]


class Calibrated(PrefittedBinaryClassifier):
    """A fitted classifier whose positive-class probability passes through a fitted calibrator."""

    def __init__(self, classifier: Any, calibrator: ProbabilityCalibrator) -> None:
        self.classifier = classifier
        self.calibrator = calibrator

    def fit(self, X: Any, y: Any) -> Calibrated:
        """Refit the classifier; the calibrator stays (it was fitted on out-of-fold predictions)."""
        self.classifier.fit(X, y)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        q = self.calibrator.transform(self.classifier.predict_proba(X)[:, 1])
        return np.column_stack([1 - q, q])
