"""Model selection: rank evaluated models by a primary metric and tie-breakers, and tabulate them.

A result is ``{"name": str, "metrics": {metric: float}}``. The order is total and deterministic
(the model name breaks the last tie), so the same results always pick the same champion.
"""

from __future__ import annotations

import logging
import math
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_TIE_BREAKERS = ["accuracy", "f1", "balanced_accuracy", "mcc"]
LOWER_IS_BETTER = frozenset({"fpr", "fnr", "brier", "ece"})
THRESHOLD_FREE = frozenset({"roc_auc", "pr_auc", "brier", "ece"})


def _metric_key(value: Any, metric: str) -> tuple[int, float]:
    """Sort key for one metric: best first, missing or NaN last."""
    if value is None or math.isnan(float(value)):
        return (1, 0.0)
    return (0, float(value) if metric in LOWER_IS_BETTER else -float(value))


def ranking_basis(rank_by: str, primary: str) -> str:
    """``training.rank_by`` resolved: ``auto`` ranks a threshold-free metric by its cross-validated
    mean and a thresholded one by the holdout (CV scores such a metric at 0.5, not at each model's
    own threshold)."""
    if rank_by != "auto":
        return rank_by
    return "cv" if primary in THRESHOLD_FREE else "holdout"


def rank_models(results: list[dict[str, Any]], primary: str, tie_breakers: list[str], by: str = "holdout") -> list[dict[str, Any]]:
    """Copies of `results`, best first, each with a 1-based "rank"; fpr, fnr, brier and ece rank lower-is-better.

    ``by="cv"`` puts the cross-validated mean of the primary metric (``cv_mean``) first; the holdout
    primary metric and the tie-breakers then break its ties.
    """
    order = [primary, *tie_breakers]
    available = sorted({m for r in results for m in r["metrics"]})
    unknown = [m for m in order if m not in available]
    if results and unknown:
        raise ValueError(f"unknown ranking metric(s) {unknown}; available metrics are {available}")
    if by not in ("cv", "holdout"):
        raise ValueError(f"rank by {by!r}: choose cv or holdout")

    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        cv = (_metric_key(r.get("cv_mean"), primary),) if by == "cv" else ()
        return (*cv, *(_metric_key(r["metrics"].get(m), m) for m in order), str(r["name"]))

    ranked = sorted(results, key=key)
    log.debug("ranked %d models by %s%s", len(ranked), "cv, " if by == "cv" else "", order)
    return [{**r, "metrics": dict(r["metrics"]), "rank": i} for i, r in enumerate(ranked, start=1)]


def leaderboard_rows(ranked: list[dict[str, Any]], columns: list[str]) -> list[dict[str, Any]]:
    """Flat rows (rank, model, one value per metric column) ready for a CSV writer."""
    return [
        {"rank": r["rank"], "model": r["name"], **{c: r["metrics"].get(c, math.nan) for c in columns}}
        for r in ranked
    ]


def leaderboard_markdown(ranked: list[dict[str, Any]], columns: list[str]) -> str:
    """A Markdown table of the ranked models, metrics to 4 decimals, for reports and run notes."""
    header = ["rank", "model", *columns]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---:", ":---", *["---:"] * len(columns)]) + "|",
    ]
    for row in leaderboard_rows(ranked, columns):
        cells = [str(row["rank"]), str(row["model"]), *(f"{float(row[c]):.4f}" for c in columns)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
