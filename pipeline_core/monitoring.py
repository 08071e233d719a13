"""What `monitor` shows of the scored batches' records (`pipeline_io.records` reads and writes them)."""

from __future__ import annotations

from typing import Any

from pipeline_core.drift import DRIFT


def batch_row(record: dict[str, Any], realized: dict[str, Any] | None = None, metric: str = "roc_auc",
              shadow_realized: dict[str, Any] | None = None) -> dict[str, Any]:
    """One line of the `monitor` table; ``realized``: the batch's newest outcomes, if any arrived
    (``shadow_realized``: the same rows as the shadow model scored them)."""
    drift = record.get("drift", {})
    worst = max(drift.get("features", []), key=lambda f: f["psi"], default=None)
    model = record.get("model", {})
    return {
        "at": record["inference_timestamp"], "input": record["input"], "rows": record["rows_in"],
        "scored": record["rows_scored"], "quarantined": record["rows_quarantined"], "positive_rate": record.get("positive_rate"),
        "model": f"{model.get('name') or model.get('uri')} v{model.get('version') or '-'}",
        "status": record.get("drift_status"), "max_psi": round(worst["psi"], 4) if worst else None,
        "max_psi_feature": worst["name"] if worst else None,
        "prediction_psi": drift.get("prediction", {}).get("psi"), "alerts": drift.get("alerts", []),
        "labelled": realized["labelled_rows"] if realized else 0, "realized_metric": metric,
        "realized": realized["metrics"].get(metric) if realized else None,
        "shadow": f"v{record['shadow'].get('version')}" if record.get("shadow") else None,
        "shadow_realized": shadow_realized["metrics"].get(metric) if shadow_realized else None,
    }


def drifted(rows: list[dict[str, Any]]) -> bool:
    return any(r["status"] == DRIFT for r in rows)
