"""The promotion gate: when a newly trained model may become the champion."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from pipeline_core.modeling.metrics import metric_function
from pipeline_core.modeling.selection import LOWER_IS_BETTER


@dataclass(frozen=True)
class Evidence:
    """How much better the candidate scores than the champion on the same holdout rows, with a
    paired bootstrap interval: positive is better, whichever way the metric points."""

    metric: str
    delta: float
    low: float
    high: float
    confidence: float
    resamples: int

    def describe(self) -> str:
        # for a lower-is-better metric the improvement is the champion's score minus the candidate's: say so
        what = f"{self.metric} improvement" if self.metric in LOWER_IS_BETTER else self.metric
        return (f"{what} {self.delta:+.4f} against the champion "
                f"({self.confidence:.0%} interval {self.low:+.4f} to {self.high:+.4f}, paired bootstrap of {self.resamples})")


def paired_bootstrap(y_true: Any, candidate: Any, champion: Any, metric: str, thresholds: tuple[float, float],
                     confidence: float = 0.95, resamples: int = 1000, seed: int = 0) -> Evidence:
    """The candidate's improvement over the champion on one holdout, resampling rows for both at once
    (each resample scores the same rows with both models, so their shared noise cancels)."""
    from scipy.stats import bootstrap

    score: Callable[[np.ndarray, np.ndarray, float], float] = metric_function(metric)
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    y, new, old = (np.asarray(a, dtype=float) for a in (y_true, candidate, champion))

    def improvement(y_: np.ndarray, new_: np.ndarray, old_: np.ndarray) -> float:
        return sign * (score(y_, new_, thresholds[0]) - score(y_, old_, thresholds[1]))

    observed = improvement(y, new, old)
    result = bootstrap((y, new, old), improvement, paired=True, vectorized=False, n_resamples=resamples,
                       confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed))
    low, high = result.confidence_interval
    return Evidence(metric, float(observed), float(low), float(high), confidence, resamples)


def _meets(value: float | None, bound: float, metric: str) -> bool:
    """A bound is a minimum, or a maximum for the metrics where lower is better (fpr, fnr, brier, ece)."""
    if value is None or math.isnan(value):
        return False
    return value <= bound if metric in LOWER_IS_BETTER else value >= bound


def predicted_class(meta: dict[str, Any]) -> dict[str, str]:
    """What a model's probability is the probability of: the target column and its positive label."""
    target, label = meta.get("preprocessing", {}).get("target"), meta.get("positive_label")
    return {} if target is None or label is None else {"target": str(target), "positive_label": str(label)}


def incomparable(name: str, version: str, champion: dict[str, str], candidate: dict[str, str]) -> str | None:
    """Why the gate cannot compare a candidate with a champion that predicts another class, or None when they agree."""
    if champion == candidate:
        return None
    return (f"the champion ({name} v{version}) predicts {champion['target']} = {champion['positive_label']}, this model "
            f"{candidate['target']} = {candidate['positive_label']}: their scores cannot be compared; give this model its own "
            f"name (mlflow.registered_model) or promote it by hand (`pipeline-cli models promote {name} VERSION`)")


def gate_decision(candidate: dict[str, float], champion: dict[str, float] | None, primary: str,
                  minimums: dict[str, float], evidence: Evidence | None = None, min_improvement: float = 0.0) -> tuple[bool, str]:
    """Promote only a model that meets every bound and beats the champion on the primary metric.

    With ``evidence`` (a paired bootstrap on the same holdout) it must beat it by more than
    ``min_improvement`` at the evidence's confidence: the interval's lower end is above it. Without
    (the champion's holdout scores are all there is), a plain comparison of the two scores decides.
    """
    missed = [f"{k}={candidate.get(k, float('nan')):.4f} {'>' if k in LOWER_IS_BETTER else '<'} {v}"
              for k, v in minimums.items() if not _meets(candidate.get(k), v, k)]
    if missed:
        return False, "below the configured minimum: " + ", ".join(missed)
    if champion is None:
        return True, "no champion yet and every minimum met"
    if evidence is not None:
        if evidence.low > min_improvement:
            return True, f"{evidence.describe()}: better by more than {min_improvement:g}"
        return False, f"{evidence.describe()}: not better by more than {min_improvement:g} at that confidence"
    better = candidate[primary] < champion[primary] if primary in LOWER_IS_BETTER else candidate[primary] > champion[primary]
    if better:
        return True, f"{primary} {candidate[primary]:.4f} beats the champion's {champion[primary]:.4f} on this holdout"
    return False, f"{primary} {candidate[primary]:.4f} does not beat the champion's {champion[primary]:.4f} on this holdout"


MIN_SHARED_ROWS = 50  # fewer holdout rows unseen by both models compare nothing


def split_tags(seed: int, test_size: float, keyed: bool) -> dict[str, str]:
    """How a version's holdout was drawn, kept with it so that a later gate can redraw it."""
    return {"split_seed": str(seed), "test_size": repr(float(test_size)), "split": "keyed" if keyed else "random"}


def unseen_by_both(keys: Any, y: Any, test_index: Any, champion_tags: dict[str, str], seed: int, test_size: float) -> Any:
    """Positions in this run's holdout that the champion's own holdout holds too, when the champion was split with
    another seed or test size (else it trained on most of this holdout); None when it was split as this run is,
    or cannot be redrawn (no id column: a random split; a version from before splits were recorded)."""
    from pipeline_core.modeling.training import keyed_split

    if keys is None or champion_tags.get("split") != "keyed":
        return None
    theirs = int(champion_tags["split_seed"]), float(champion_tags["test_size"])
    if theirs == (seed, float(test_size)):
        return None
    champion_test = keyed_split(keys, y, theirs[1], theirs[0])[1]
    return np.flatnonzero(np.isin(test_index, champion_test))
