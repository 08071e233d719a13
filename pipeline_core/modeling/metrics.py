"""Binary classification metrics and decision-threshold choice, defined for every input.

Degenerate inputs (one predicted class, one true class) give documented numbers, never NaN or
warnings, so a leaderboard can always rank and compare models.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    matthews_corrcoef,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)

log = logging.getLogger(__name__)

THRESHOLDED = ("f1", "accuracy", "balanced_accuracy", "mcc")  # metrics a threshold can be chosen for
OBJECTIVES = (*THRESHOLDED, "cost", "fixed")


def _ratio(num: float, den: float) -> float:
    """num / den, with 0.0 for an empty denominator."""
    return float(num / den) if den else 0.0


def _as_arrays(y_true: ArrayLike, y_prob: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """0/1 labels and float scores, checked to be non-empty and of equal length."""
    labels, scores = np.asarray(y_true).astype(int), np.asarray(y_prob, dtype=float)
    if labels.size == 0 or labels.shape != scores.shape:
        raise ValueError(f"need equal, non-empty label and score arrays, got {labels.shape} and {scores.shape}")
    return labels, scores


def confusion(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, int]:
    """Counts of the 2x2 confusion matrix, both classes always present."""
    tn, fp, fn, tp = confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    return {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)}


CALIBRATION_BINS = 10


def expected_calibration_error(y_true: np.ndarray, y_prob: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Σ over equal-width probability bins of (rows in bin / rows) x |mean probability - positive rate|."""
    index = np.minimum((y_prob * bins).astype(int), bins - 1)
    gap = np.bincount(index, weights=y_prob, minlength=bins) - np.bincount(index, weights=y_true, minlength=bins)
    return float(np.abs(gap).sum() / y_true.size)


def classification_metrics(y_true: ArrayLike, y_prob: ArrayLike, threshold: float = 0.5) -> dict[str, float]:
    """The 11 headline metrics of scores `y_prob` cut at `threshold` (positive when >= threshold), and
    two of the probabilities themselves: the Brier score and the expected calibration error (10 bins).

    With a single class in `y_true` ranking is undefined, so roc_auc and pr_auc report what a
    no-skill model scores (0.5 and the positive rate) instead of NaN, and balanced accuracy is the
    recall of the one class present (which equals accuracy). When labels and predictions are all one
    class MCC is 0, as scikit-learn defines it.
    """
    y_true, y_prob = _as_arrays(y_true, y_prob)
    y_pred = (y_prob >= threshold).astype(int)
    c = confusion(y_true, y_pred)
    both_classes = np.unique(y_true).size == 2
    single_label = np.unique(np.r_[y_true, y_pred]).size == 1  # sklearn's MCC warns, then gives 0
    accuracy = float(accuracy_score(y_true, y_pred))
    return {
        "accuracy": accuracy,
        "precision": float(precision_score(y_true, y_pred, zero_division=0)),
        "recall": float(recall_score(y_true, y_pred, zero_division=0)),
        "f1": float(f1_score(y_true, y_pred, zero_division=0)),
        "specificity": _ratio(c["tn"], c["tn"] + c["fp"]),
        "fpr": _ratio(c["fp"], c["fp"] + c["tn"]),
        "fnr": _ratio(c["fn"], c["fn"] + c["tp"]),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)) if both_classes else accuracy,
        "mcc": float(matthews_corrcoef(y_true, y_pred)) if not single_label else 0.0,
        "roc_auc": float(roc_auc_score(y_true, y_prob)) if both_classes else 0.5,
        "pr_auc": float(average_precision_score(y_true, y_prob)) if both_classes else float(y_true.mean()),
        "brier": float(brier_score_loss(y_true, y_prob, labels=[0, 1])),
        "ece": expected_calibration_error(y_true, y_prob),
    }


def threshold_objective(configured: str, primary_metric: str) -> str:
    """``auto``: the primary metric when a threshold decides it (so ranking by accuracy compares models
    at their best-accuracy thresholds), else F1."""
    if configured != "auto":
        return configured
    return primary_metric if primary_metric in THRESHOLDED else "f1"


def _best_threshold(thresholds: np.ndarray, score: np.ndarray) -> float:
    """The threshold with the highest score; ties go to the one closest to 0.5 (then the lower)."""
    tied = np.sort(thresholds[np.isclose(score, score.max())])
    return float(tied[np.argmin(np.abs(tied - 0.5))])


def _f1_threshold(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """Threshold maximising F1 among the distinct scores."""
    if not y_true.any():
        return 0.5  # no positives: F1 is 0 at every threshold, so none beats the neutral one
    precision, recall, thresholds = precision_recall_curve(y_true, y_prob)
    p, r = precision[:-1], recall[:-1]  # the last point (recall 0) has no threshold
    denom = p + r
    f1 = np.divide(2 * p * r, denom, out=np.zeros_like(denom), where=denom > 0)
    return _best_threshold(thresholds, f1)


def _counts_per_threshold(y_true: np.ndarray, y_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, tp, fp): each distinct score as a threshold, with 1.0 (no positive) in front when no
    score reaches it, and the true and false positives of predicting positive at score >= threshold."""
    order = np.argsort(-y_prob, kind="stable")
    scores, labels = y_prob[order], y_true[order]
    last_of_value = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]  # end of each tie group
    tp, fp = np.cumsum(labels)[last_of_value], np.cumsum(1 - labels)[last_of_value]
    thresholds = scores[last_of_value]
    if scores[0] < 1.0:
        thresholds, tp, fp = np.r_[1.0, thresholds], np.r_[0, tp], np.r_[0, fp]
    return thresholds, tp.astype(float), fp.astype(float)


def _metric_threshold(y_true: np.ndarray, y_prob: np.ndarray, metric: str) -> float:
    """Threshold maximising accuracy, balanced accuracy or MCC, from the confusion counts at every threshold."""
    thresholds, tp, fp = _counts_per_threshold(y_true, y_prob)
    pos = float(y_true.sum())
    neg = y_true.size - pos
    fn, tn = pos - tp, neg - fp
    if metric == "accuracy":
        score = (tp + tn) / y_true.size
    elif metric == "balanced_accuracy":
        score = 0.5 * (tp / pos if pos else 0.0) + 0.5 * (tn / neg if neg else 0.0)
    else:
        denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        score = np.divide(tp * tn - fp * fn, denom, out=np.zeros_like(denom), where=denom > 0)
    return _best_threshold(thresholds, score)


def _cost_threshold(y_true: np.ndarray, y_prob: np.ndarray, fp_cost: float, fn_cost: float) -> float:
    """Threshold minimising fp_cost*FP + fn_cost*FN, predicting positive when score >= threshold."""
    thresholds, tp, fp = _counts_per_threshold(y_true, y_prob)
    return _best_threshold(thresholds, -(fp_cost * fp + fn_cost * (y_true.sum() - tp)))


def choose_threshold(
    y_true: ArrayLike,
    y_prob: ArrayLike,
    objective: str,
    fp_cost: float = 1.0,
    fn_cost: float = 1.0,
    fixed: float = 0.5,
) -> float:
    """Decision threshold in [0, 1] for `objective`: best F1, accuracy, balanced accuracy or MCC, least
    misclassification cost, or `fixed`."""
    if objective not in OBJECTIVES:
        raise ValueError(f"threshold objective {objective!r} is not one of {list(OBJECTIVES)}")
    if objective == "fixed":
        if not 0.0 <= fixed <= 1.0:
            raise ValueError(f"fixed threshold {fixed} is outside [0, 1]")
        return float(fixed)
    y_true, y_prob = _as_arrays(y_true, y_prob)
    if objective == "f1":
        chosen = _f1_threshold(y_true, y_prob)
    elif objective in THRESHOLDED:
        chosen = _metric_threshold(y_true, y_prob, objective)
    else:
        if fp_cost < 0 or fn_cost < 0:
            raise ValueError(f"costs must be non-negative, got fp_cost={fp_cost}, fn_cost={fn_cost}")
        chosen = _cost_threshold(y_true, y_prob, fp_cost, fn_cost)
    log.debug("threshold %.4f chosen by objective %s", chosen, objective)
    return chosen


def metric_function(name: str) -> Callable[[np.ndarray, np.ndarray, float], float]:
    """One metric as ``f(y_true, y_prob, threshold)``, for the many evaluations of a bootstrap
    (`classification_metrics` computes all of them)."""
    scores: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
        "roc_auc": lambda y, p: float(roc_auc_score(y, p)),
        "pr_auc": lambda y, p: float(average_precision_score(y, p)),
        "brier": lambda y, p: float(brier_score_loss(y, p, labels=[0, 1])),
        "ece": expected_calibration_error,
    }
    if name in scores:
        return lambda y, p, threshold: scores[name](y, p)
    return lambda y, p, threshold: classification_metrics(y, p, threshold)[name]
