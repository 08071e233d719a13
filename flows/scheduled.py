"""Flows shaped for schedules: what a deployment runs when nobody passes run-specific values."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import flow_run

from flows.inference import inference_flow
from pipeline_core.outputs import run_output_uri


@flow(name="scheduled-batch-inference")
def scheduled_inference_flow(config_path: str, input_uri: str, output_uri: str, model_uri: str | None = None,
                             overrides: list[str] | None = None, threshold: float | None = None,
                             shadow: bool = False) -> dict[str, Any]:
    """Batch inference whose OUTPUT is a template filled with the run's scheduled time (UTC).

    ``data/predictions/{scheduled_start:%Y%m%dT%H%M%SZ}.parquet`` gives every hourly run its own
    file; a retry of the same run rewrites the same file instead of adding another. ``shadow``: the
    challenger scores every batch too (see `inference_flow`).
    """
    target = run_output_uri(output_uri, flow_run.scheduled_start_time)
    return inference_flow(config_path, input_uri, target, model_uri=model_uri, overrides=overrides, threshold=threshold,
                          shadow=shadow)
