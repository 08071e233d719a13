"""A weighted ensemble of the trained models, chosen on their out-of-fold predictions.

Greedy ensemble selection with replacement (Caruana et al., 2004, as AutoGluon's
`WeightedEnsemble` does it): start from nothing, and in each of ``rounds`` steps add the model
(again, if it helps most) whose addition makes the average of the chosen models' out-of-fold
probabilities score best. A model's weight is the share of steps that chose it.

Every model is refitted on the same training rows with the same preprocessing, so the fitted
preprocessors are equal and the ensemble is one scikit-learn pipeline: that preprocessing, then
`WeightedAverage` over the models' estimators. It is registered like any other model.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from pipeline_core.config import TrainingConfig
from pipeline_core.modeling.metrics import choose_threshold, classification_metrics, threshold_objective
from pipeline_core.modeling.prefitted import PrefittedBinaryClassifier
from pipeline_core.modeling.training import ModelResult, Split

ROUNDS = 25
RANKING_METRICS = ("roc_auc", "pr_auc")
ENSEMBLE = "weighted_ensemble"


def _objective(metric: str) -> Any:
    """score(y, p), higher is better: the primary metric when it ranks probabilities, else minus log loss."""
    from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

    if metric == "roc_auc":
        return roc_auc_score
    if metric == "pr_auc":
        return average_precision_score
    return lambda y, p: -log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1])


def greedy_weights(oof: dict[str, np.ndarray], y: np.ndarray, metric: str, rounds: int = ROUNDS) -> dict[str, float]:
    """{model: weight} (weights sum to 1, unused models left out) from out-of-fold probabilities of equal rows."""
    score = _objective(metric)
    names = sorted(oof)  # ties go to the first name: the same inputs always give the same ensemble
    total = np.zeros_like(y, dtype=float)
    counts = dict.fromkeys(names, 0)
    for step in range(1, rounds + 1):
        best = max(names, key=lambda n: (score(y, (total + oof[n]) / step), -names.index(n)))
        total += oof[best]
        counts[best] += 1
    return {n: c / rounds for n, c in counts.items() if c}


class WeightedAverage(PrefittedBinaryClassifier):
    """predict_proba = the weighted average of fitted classifiers' predict_proba (a scikit-learn classifier)."""

    def __init__(self, estimators: list[tuple[str, Any]], weights: list[float]) -> None:
        self.estimators = estimators
        self.weights = weights

    def fit(self, X: Any, y: Any) -> WeightedAverage:
        """Refit every member on (X, y); the weights stay (the pipeline fits the members once, before weighting)."""
        for _, est in self.estimators:
            est.fit(X, y)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        total = np.zeros((X.shape[0], 2))
        for (_, est), w in zip(self.estimators, self.weights):
            total += w * est.predict_proba(X)
        return total


def ensemble_pipeline(pipelines: dict[str, Any], weights: dict[str, float]) -> Any:
    """One pipeline: the shared fitted preprocessing, then the weighted average of the models' estimators."""
    from sklearn.pipeline import Pipeline

    names = list(weights)
    pre = pipelines[names[0]].named_steps["pre"]
    model = WeightedAverage([(n, pipelines[n].named_steps["model"]) for n in names], [weights[n] for n in names])
    return Pipeline([("pre", pre), ("model", model)])


def build_ensemble(pipelines: dict[str, Any], oof: dict[str, np.ndarray], data: Split, cfg: TrainingConfig) -> ModelResult | None:
    """Weights by greedy selection on the rows every model has out-of-fold probabilities for; the
    threshold on the ensemble's out-of-fold probabilities; the holdout scored through the ensemble
    pipeline itself. None when the selection keeps one model (the ensemble would be that model)."""
    from sklearn.model_selection import StratifiedKFold

    started = time.perf_counter()
    seen = np.logical_and.reduce([~np.isnan(p) for p in oof.values()])
    weights = greedy_weights({n: p[seen] for n, p in oof.items()}, data.y_train[seen], cfg.primary_metric)
    if len(weights) < 2:
        return None
    blended = np.full(len(data.y_train), np.nan)
    blended[seen] = sum(w * oof[n][seen] for n, w in weights.items())
    th = cfg.threshold
    threshold = choose_threshold(data.y_train[seen], blended[seen], threshold_objective(th.objective, cfg.primary_metric),
                                 fp_cost=th.fp_cost, fn_cost=th.fn_cost, fixed=th.fixed)
    folds = StratifiedKFold(n_splits=cfg.tuning.cv_folds, shuffle=True, random_state=cfg.seed)
    scores = [classification_metrics(data.y_train[va], blended[va])[cfg.primary_metric]
              for _, va in folds.split(data.X_train, data.y_train) if seen[va].all()]
    pipeline = ensemble_pipeline(pipelines, weights)
    proba = pipeline.predict_proba(data.X_test)[:, 1]
    return ModelResult(
        name=ENSEMBLE, params=weights, pipeline=pipeline, threshold=threshold,
        metrics=classification_metrics(data.y_test, proba, threshold), metrics_at_05=classification_metrics(data.y_test, proba, 0.5),
        cv_mean=float(np.mean(scores)), cv_std=float(np.std(scores)), test_probabilities=proba, oof=blended,
        seconds=time.perf_counter() - started, tuned=False, note="weights chosen on out-of-fold predictions", params_from="ensemble",
        folds_run=len(scores))
