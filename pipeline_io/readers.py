"""Layers read back for a consumer: the gold table and its metadata as one training run's data."""

from __future__ import annotations

from pipeline_core.config import PipelineConfig
from pipeline_core.errors import DataError
from pipeline_core.modeling.holdout import TrainingData
from pipeline_core.modeling.training import split_data, to_pandas_features
from pipeline_io import layout
from pipeline_io.store import Store


def load_training_data(config: PipelineConfig, store: Store) -> TrainingData:
    paths = layout.gold_paths(store, config.dataset.name)
    if not store.exists(paths["metadata"]):
        raise DataError(f"no gold layer for dataset '{config.dataset.name}' in {store.root}; run `pipeline-cli features` first")
    meta = store.read_json(paths["metadata"])
    prep = store.read_json(paths["preprocessing"])
    gold = store.scan_parquet(paths["features"]).collect()
    X = to_pandas_features(gold, prep["numeric_columns"], prep["categorical_columns"])
    y = gold[prep["target"]].to_numpy()
    return TrainingData(gold, meta, prep, split_data(X, y, config.training))
