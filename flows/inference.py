"""Batch inference: raw records -> the registered model -> predictions, with a drift report."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.layers import resolved_config
from pipeline_core.config import PipelineConfig
from pipeline_core.drift import DRIFT
from pipeline_io import events
from tasks import reporting, scoring


@flow(name="batch-inference")
def inference_flow(config_path: str, input_uri: str, output_uri: str, model_uri: str | None = None,
                   overrides: list[str] | None = None, threshold: float | None = None, allow_empty: bool = False,
                   config: PipelineConfig | None = None, shadow: bool = False) -> dict[str, Any]:
    """Score INPUT with the configured champion (or ``model_uri``) and write OUTPUT plus a drift report.

    ``output_uri`` may contain ``{timestamp}`` or ``{date}`` so that a scheduled run writes a new file each time.
    ``shadow``: the challenger scores the same rows too, its probability stored beside the champion's.
    """
    config = resolved_config(config_path, overrides, config)
    summary = scoring.score_batch(config, input_uri, output_uri, model_uri, threshold, allow_empty, shadow)
    summary["mlflow_run_id"] = scoring.publish_drift(config, summary)
    summary["report"] = reporting.write_scoring_report(config, summary, [], summary["mlflow_run_id"])
    if summary["drift_status"] == DRIFT:
        model = summary["model"]
        events.emit(events.DRIFT_DETECTED, config.dataset.name,
                    {"output": summary["output"], "alerts": summary["drift"].get("alerts", [])[:20], "rows": summary["rows_scored"]},
                    model.get("name"), model.get("version"))
    return {"layer": "inference", "status": "ran", **summary}
