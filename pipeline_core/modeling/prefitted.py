"""The base of classifiers the pipeline assembles from parts that are already fitted (an ensemble, a
calibrated model): scikit-learn sees a fitted binary classifier, so a Pipeline serves it as-is."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin


class PrefittedBinaryClassifier(ClassifierMixin, BaseEstimator):
    """Subclasses implement predict_proba (and fit, which refits their parts)."""

    @property
    def classes_(self) -> np.ndarray:
        return np.array([0, 1])

    def __sklearn_is_fitted__(self) -> bool:
        return True  # built from fitted parts

    def predict(self, X: Any) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)
