"""Which columns a fitted model leans on, in the columns it reads (gold's), not the encoded ones."""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline_core.modeling.metrics import metric_function
from pipeline_core.modeling.selection import LOWER_IS_BETTER


def permutation_importance_by_column(pipeline: Any, X: Any, y: Any, metric: str, threshold: float, seed: int = 0,
                                     repeats: int = 5, max_rows: int = 5000) -> list[dict[str, Any]]:
    """Permutation importance of each column of ``X`` for the whole preprocessing + model pipeline:
    how much ``metric`` worsens when the column is shuffled (positive = the model uses it), largest first.

    Shuffling a column before the encoder moves all of its one-hot columns together, so a
    categorical column is judged as one column, as a person names it.
    """
    from sklearn.inspection import permutation_importance

    score = metric_function(metric)
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0

    def scorer(estimator: Any, X_: Any, y_: Any) -> float:
        return sign * score(np.asarray(y_), estimator.predict_proba(X_)[:, 1], threshold)

    result = permutation_importance(pipeline, X, y, scoring=scorer, n_repeats=repeats, random_state=seed, n_jobs=1,
                                    max_samples=min(max_rows, len(X)) if len(X) else 1.0)
    rows = [{"name": str(name), "mean": float(m), "std": float(s)}
            for name, m, s in zip(X.columns, result.importances_mean, result.importances_std)]
    return sorted(rows, key=lambda r: -r["mean"])
