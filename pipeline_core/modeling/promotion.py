"""The promotion gate: when a newly trained model may become the champion."""

from __future__ import annotations

import math

from pipeline_core.modeling.selection import LOWER_IS_BETTER


def _meets(value: float | None, bound: float, metric: str) -> bool:
    """A bound is a minimum, or a maximum for the metrics where lower is better (fpr, fnr, brier, ece)."""
    if value is None or math.isnan(value):
        return False
    return value <= bound if metric in LOWER_IS_BETTER else value >= bound


def gate_decision(candidate: dict[str, float], champion: dict[str, float] | None, primary: str,
                  minimums: dict[str, float]) -> tuple[bool, str]:
    """Promote only a model that meets every bound and beats the champion on the primary metric."""
    missed = [f"{k}={candidate.get(k, float('nan')):.4f} {'>' if k in LOWER_IS_BETTER else '<'} {v}"
              for k, v in minimums.items() if not _meets(candidate.get(k), v, k)]
    if missed:
        return False, "below the configured minimum: " + ", ".join(missed)
    if champion is None:
        return True, "no champion yet and every minimum met"
    better = candidate[primary] < champion[primary] if primary in LOWER_IS_BETTER else candidate[primary] > champion[primary]
    if better:
        return True, f"{primary} {candidate[primary]:.4f} beats the champion's {champion[primary]:.4f} on this holdout"
    return False, f"{primary} {candidate[primary]:.4f} does not beat the champion's {champion[primary]:.4f} on this holdout"
