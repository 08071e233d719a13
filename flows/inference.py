"""Batch inference: raw records -> the registered model -> predictions, with a drift report."""

from __future__ import annotations

from typing import Any

from prefect import flow


@flow(name="batch-inference")
def inference_flow(config_path: str, input_uri: str, output_uri: str, model_uri: str | None = None,
                   overrides: list[str] | None = None, threshold: float | None = None) -> dict[str, Any]:
    """Score INPUT with the configured champion (or ``model_uri``) and write OUTPUT plus a drift report."""
    raise NotImplementedError("batch inference is being built")
