"""The promotion gate: when a newly trained model may become the champion."""

from __future__ import annotations


def gate_decision(candidate: dict[str, float], champion: dict[str, float] | None, primary: str,
                  minimums: dict[str, float]) -> tuple[bool, str]:
    """Promote only a model that meets every minimum and beats the champion on the primary metric."""
    missed = [f"{k}={candidate.get(k, float('nan')):.4f} < {v}" for k, v in minimums.items() if not candidate.get(k, float("-inf")) >= v]
    if missed:
        return False, "below the configured minimum: " + ", ".join(missed)
    if champion is None:
        return True, "no champion yet and every minimum met"
    if candidate[primary] > champion[primary]:
        return True, f"{primary} {candidate[primary]:.4f} beats the champion's {champion[primary]:.4f} on this holdout"
    return False, f"{primary} {candidate[primary]:.4f} does not beat the champion's {champion[primary]:.4f} on this holdout"
