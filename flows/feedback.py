"""Outcomes: labels that arrive after scoring, joined to the scored rows, kept as realized performance."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.layers import resolved_config
from pipeline_core.config import PipelineConfig
from tasks import feedback


@flow(name="feedback")
def feedback_flow(config_path: str, labels_uri: str, overrides: list[str] | None = None, label_column: str | None = None,
                  config: PipelineConfig | None = None) -> dict[str, Any]:
    """Record the realized performance of every scored batch the labels cover; act on a degraded champion."""
    config = resolved_config(config_path, overrides, config)
    return feedback.record_outcomes(config, labels_uri, label_column)
