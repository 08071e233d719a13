"""One wall-time budget for all the models of a training run, spent where it pays.

Successive halving across models, with a model's strong defaults as the low-fidelity look:

1. **Rung 0**: every enabled model is cross-validated once with its defaults, all under the one
   deadline (a fold starts only while one more fold and the final fit still fit; at least one fold
   always runs).
2. **Rung 1**: the models whose defaults scored best, as many as train at once and at most half of
   them (rounded up), are tuned with Optuna until the deadline; inside each study, Hyperband over
   CV folds stops poor trials after a fold or a few.
3. Every model keeps whichever of its defaults and its best trial cross-validated better, and is
   refitted once on all training rows; the time for that fit is reserved from the first fold on.

Pure functions: the training stage applies them, Prefect runs the models.
"""

from __future__ import annotations

import math
import time

from pipeline_core.modeling.training import lower_is_better


def deadline(seconds: float | None, now: float | None = None) -> float | None:
    """Epoch seconds at which the budget ends (None: no budget)."""
    return None if seconds is None else (time.time() if now is None else now) + seconds


def promising(cv_scores: dict[str, float], slots: int, metric: str) -> list[str]:
    """The models rung 1 tunes: best default CV score first, as many as ``slots`` and at most half (rounded up).

    The rung's tuning runs them side by side, so each gets the whole time left; ties go to the
    model named first alphabetically, so the same scores always pick the same models.
    """
    if not cv_scores:
        return []
    sign = 1 if lower_is_better(metric) else -1
    keep = max(1, min(slots, math.ceil(len(cv_scores) / 2)))
    ranked = sorted(cv_scores, key=lambda m: (math.inf if math.isnan(cv_scores[m]) else sign * cv_scores[m], m))
    return ranked[:keep]
