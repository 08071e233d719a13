"""Prefect events the pipeline emits, for automations to act on (see prefect.yaml)."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

DRIFT_DETECTED = "pipeline.drift.detected"
PERFORMANCE_DEGRADED = "pipeline.performance.degraded"
MODEL_PROMOTED = "pipeline.model.promoted"
MODEL_ROLLED_BACK = "pipeline.model.rolled-back"


def emit(event: str, dataset: str, payload: dict[str, Any], model: str | None = None, version: str | None = None) -> Any:
    """Emit one event about a dataset (and a model version); the resource id is `pipeline.dataset.<name>`."""
    from prefect.events import emit_event

    related = [{"prefect.resource.id": f"pipeline.model.{model}", "prefect.resource.role": "model",
                "pipeline.model.version": str(version)}] if model else []
    emitted = emit_event(event=event, resource={"prefect.resource.id": f"pipeline.dataset.{dataset}", "pipeline.dataset": dataset},
                         related=related, payload=payload)
    log.info("event %s for %s%s", event, dataset, f" ({model} v{version})" if model else "")
    return emitted
