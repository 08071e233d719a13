"""One wall-time budget for all the models of a training run, spent where it pays.

Successive halving across models, with a model's strong defaults as the low-fidelity look:

1. **Rung 0**: every enabled model is cross-validated once with its defaults, all under the one
   deadline (a fold starts only while one more fold and the final fit still fit; at least one fold
   always runs).
2. **Rung 1**: the models whose defaults scored best, as many as train at once and at most half of
   them (rounded up), are tuned with Optuna; inside each study, Hyperband over CV folds stops poor
   trials after a fold or a few. A study also ends once it stalls (its best score has not risen by
   ``STALL_TOLERANCE`` over its last ``stall_patience`` completed trials), and the slot it frees
   tunes the next model by default score, each until it stalls or the budget ends. The final fits
   of the models still waiting are reserved from the first models' share, so the queue never pushes
   the run past the deadline.
3. Every model keeps whichever of its defaults and its best trial cross-validated better, and is
   refitted once on all training rows; the time for that fit is reserved from the first fold on.
4. With ``training.refit_full`` (the default), the chosen model is fitted once more on training and
   holdout rows; rung 1 ends early enough for that fit of every model (the ensemble may hold all).

Pure functions: the training stage applies them, Prefect runs the models.
"""

from __future__ import annotations

import math
import time

from pipeline_core.modeling.training import lower_is_better


def deadline(seconds: float | None, now: float | None = None) -> float | None:
    """Epoch seconds at which the budget ends (None: no budget)."""
    return None if seconds is None else (time.time() if now is None else now) + seconds


# A gain smaller than this is noise next to cross-validation's own spread (its standard error on
# a few thousand rows is about 0.005 ROC-AUC).
STALL_TOLERANCE = 1e-3
MIN_STALL_PATIENCE = 10  # completed trials; trial caps up to this never meet the stall rule


def refit_reserve(fit_seconds: dict[str, float], test_size: float, ensemble: bool = True) -> float:
    """Seconds held back for refitting the chosen model on training + holdout rows: its final fit again, on
    1 / (1 - test_size) times its rows. With an ensemble that may be every model's, one after another
    (it refits its members); without, the slowest model's."""
    seconds = sum(fit_seconds.values()) if ensemble else max(fit_seconds.values(), default=0.0)
    return seconds / (1 - test_size)


def stall_patience(n_params: int) -> int:
    """Completed trials without a real gain before a study counts as stalled: more for larger search spaces."""
    return max(MIN_STALL_PATIENCE, 5 * n_params)


def stalled(values: list[float], patience: int, minimize: bool, tolerance: float = STALL_TOLERANCE) -> bool:
    """Whether the best of the last ``patience`` completed trials beats the best before them by at most ``tolerance``."""
    if len(values) <= patience:
        return False
    sign = -1 if minimize else 1
    before, recent = max(sign * v for v in values[:-patience]), max(sign * v for v in values[-patience:])
    return recent - before <= tolerance


def tuning_schedule(cv_scores: dict[str, float], fit_seconds: dict[str, float], slots: int, metric: str,
                    ends: float | None, queue_tunes: bool) -> list[tuple[str, bool, float | None]]:
    """(model, tune, deadline) in the order the models are handed to ``slots`` runners that start them first come, first served.

    The most promising models (see `promising`) come first. With ``queue_tunes`` the others follow
    best first, tuned too when a slot frees in time; each model's deadline leaves room for the final
    fits (``fit_seconds``) of the models behind it, shared over the slots. Without it they keep their
    defaults and come first, as their final fits are quick.
    """
    first = promising(cv_scores, slots, metric)
    sign = 1 if lower_is_better(metric) else -1
    queue = sorted((m for m in cv_scores if m not in first),
                   key=lambda m: (math.inf if math.isnan(cv_scores[m]) else sign * cv_scores[m], m))
    if not queue_tunes or ends is None:
        return [(m, False, ends) for m in queue] + [(m, True, ends) for m in first]

    def after(i: int) -> float:
        return ends - sum(fit_seconds[m] for m in queue[i:]) / max(slots, 1)

    return [(m, True, after(0)) for m in first] + [(m, True, after(i + 1)) for i, m in enumerate(queue)]


def promising(cv_scores: dict[str, float], slots: int, metric: str) -> list[str]:
    """The models rung 1 tunes first: best default CV score first, as many as ``slots`` and at most half (rounded up).

    The rung's tuning runs them side by side, so each may use the whole time left; ties go to the
    model named first alphabetically, so the same scores always pick the same models.
    """
    if not cv_scores:
        return []
    sign = 1 if lower_is_better(metric) else -1
    keep = max(1, min(slots, math.ceil(len(cv_scores) / 2)))
    ranked = sorted(cv_scores, key=lambda m: (math.inf if math.isnan(cv_scores[m]) else sign * cv_scores[m], m))
    return ranked[:keep]
