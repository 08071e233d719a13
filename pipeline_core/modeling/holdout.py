"""The data one training run works on, and what it keeps of its holdout for the registry and drift."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from pipeline_core.config import PipelineConfig
from pipeline_core.fingerprint import digest
from pipeline_core.modeling.training import Split


@dataclass
class TrainingData:
    gold: pl.DataFrame
    metadata: dict[str, Any]
    preprocessing: dict[str, Any]
    split: Split


def raw_holdout(data: TrainingData) -> pd.DataFrame:
    """Holdout rows under their raw source names (what the registered model accepts), without the target."""
    renames = data.metadata["cleaning_spec"]["renames"]  # raw name -> silver name
    target = data.preprocessing["target"]
    rows = data.gold[data.split.test_index.tolist()].select([pl.col(new).alias(raw) for raw, new in renames.items() if new != target])
    return rows.to_pandas()


def optional_raw_columns(data: TrainingData) -> set[str]:
    """Raw columns a record may leave out when it is scored: the id, which no feature uses."""
    renames = data.metadata["cleaning_spec"]["renames"]
    id_column = data.preprocessing.get("id_column")
    return {raw for raw, new in renames.items() if id_column and new == id_column}


def prediction_reference(probabilities: np.ndarray, threshold: float) -> dict[str, Any]:
    """The holdout's probability distribution, kept with the model as the reference for output drift."""
    from pipeline_core.drift import histogram_reference

    return {**histogram_reference(probabilities), "positive_rate": float(np.mean(probabilities >= threshold))}


def holdout_predictions(data: TrainingData, probabilities: np.ndarray) -> pd.DataFrame:
    """Holdout row ids and probabilities: lets anyone check that serving reproduces training's scores."""
    id_col = data.preprocessing.get("id_column")
    ids = data.gold[id_col].gather(data.split.test_index).to_list() if id_col else data.split.test_index.tolist()
    return pd.DataFrame({"id": ids, "label": data.split.y_test, "probability": probabilities})


def study_name(config: PipelineConfig, data: TrainingData, model: str) -> str:
    """Same data and same tuning setup -> same study, so a rerun on a persistent storage resumes it."""
    cfg = config.training
    setup = {"model": config.training.models[model].model_dump(mode="json"), "seed": cfg.seed, "test_size": cfg.test_size,
             "cv_folds": cfg.tuning.cv_folds, "primary_metric": cfg.primary_metric}
    return f"{config.dataset.name}-{model}-{data.metadata['fingerprint'][:12]}-{digest(setup)[:8]}"
