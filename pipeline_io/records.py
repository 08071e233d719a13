"""The record of scored batches: one JSON per batch under the store, read back by `monitor`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pipeline_io import layout
from pipeline_io.store import Store


def record_batch(store: Store, dataset: str, summary: dict[str, Any]) -> str:
    """Keep a scored batch's summary and drift report; names sort by time, never collide."""
    stamp = datetime.fromisoformat(summary["inference_timestamp"]).strftime("%Y%m%dT%H%M%S%fZ")
    uri = f"{layout.monitoring_batches(store, dataset)}/{stamp}.json"
    store.write_json(uri, summary)
    return uri


def recent_batches(store: Store, dataset: str, last: int) -> list[dict[str, Any]]:
    """The ``last`` most recent batch records, newest first."""
    folder = layout.monitoring_batches(store, dataset)
    if not store.exists(folder):
        return []
    names = sorted(p.rsplit("/", 1)[-1] for p in store.fs.ls(folder, detail=False) if p.endswith(".json"))
    return [store.read_json(f"{folder}/{n}") for n in reversed(names[-last:])] if last > 0 else []
