"""The record of scored batches: one JSON per batch under the store, read back by `monitor`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pipeline_core.drift import DRIFT
from pipeline_core.storage import Store


def batches_uri(store: Store, dataset: str) -> str:
    return store.uri("monitoring", dataset, "batches")


def record_batch(store: Store, dataset: str, summary: dict[str, Any]) -> str:
    """Keep a scored batch's summary and drift report; names sort by time, never collide."""
    stamp = datetime.fromisoformat(summary["inference_timestamp"]).strftime("%Y%m%dT%H%M%S%fZ")
    uri = f"{batches_uri(store, dataset)}/{stamp}.json"
    store.write_json(uri, summary)
    return uri


def recent_batches(store: Store, dataset: str, last: int) -> list[dict[str, Any]]:
    """The ``last`` most recent batch records, newest first."""
    folder = batches_uri(store, dataset)
    if not store.exists(folder):
        return []
    names = sorted(p.rsplit("/", 1)[-1] for p in store.fs.ls(folder, detail=False) if p.endswith(".json"))
    return [store.read_json(f"{folder}/{n}") for n in reversed(names[-last:])] if last > 0 else []


def batch_row(record: dict[str, Any]) -> dict[str, Any]:
    """One line of the `monitor` table."""
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
    }


def drifted(rows: list[dict[str, Any]]) -> bool:
    return any(r["status"] == DRIFT for r in rows)
