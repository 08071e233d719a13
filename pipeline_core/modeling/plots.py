"""Evaluation figures of one model, written as PNG files into a folder (the caller logs them)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np


def write_evaluation_plots(folder: str, y_true: np.ndarray, y_prob: np.ndarray, threshold: float,
                           importance: dict[str, float], trials: list[dict[str, Any]]) -> list[str]:
    """Confusion matrix, ROC, PR, calibration, feature importance and Optuna history PNGs."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on servers
    import matplotlib.pyplot as plt
    from sklearn.calibration import CalibrationDisplay
    from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay, RocCurveDisplay

    written = []

    def save(name: str, fig: Any) -> None:
        path = os.path.join(folder, name)
        fig.savefig(path, dpi=90, bbox_inches="tight")
        plt.close(fig)
        written.append(path)

    y_pred = (y_prob >= threshold).astype(int)
    disp = ConfusionMatrixDisplay.from_predictions(y_true, y_pred, labels=[0, 1], colorbar=False)
    disp.ax_.set_title(f"Confusion matrix at threshold {threshold:.3f}")
    save("confusion_matrix.png", disp.figure_)
    save("roc_curve.png", RocCurveDisplay.from_predictions(y_true, y_prob).figure_)
    save("pr_curve.png", PrecisionRecallDisplay.from_predictions(y_true, y_prob).figure_)
    save("calibration_curve.png", CalibrationDisplay.from_predictions(y_true, y_prob, n_bins=10).figure_)
    if importance:
        top = list(importance.items())[:20][::-1]
        fig, ax = plt.subplots(figsize=(6, 0.3 * len(top) + 1))
        ax.barh([k for k, _ in top], [v for _, v in top])
        ax.set_title("Feature importance (top 20)")
        save("feature_importance.png", fig)
    values = [t["value"] for t in trials if t.get("value") is not None]
    if values:
        fig, ax = plt.subplots()
        ax.plot(values, "o", alpha=0.5, label="trial")
        ax.plot(np.maximum.accumulate(values), "-", label="best so far")
        ax.set_xlabel("completed trial")
        ax.set_ylabel("CV score")
        ax.legend()
        save("optuna_history.png", fig)
    return written
