"""Layers read back for a consumer: a gold version and its metadata as one training run's data."""

from __future__ import annotations

from pipeline_core.config import PipelineConfig
from pipeline_core.modeling.holdout import TrainingData
from pipeline_core.modeling.training import split_data, to_pandas_features
from pipeline_io import delta, layout
from pipeline_io.layer_records import gold_metadata
from pipeline_io.store import Store


def load_training_data(config: PipelineConfig, store: Store, as_of: str | None = None) -> TrainingData:
    meta = gold_metadata(store, config.dataset.name, as_of)
    prep = meta["preprocessing"]
    uri = layout.gold_paths(store, config.dataset.name)["features"]
    with delta.reading(store, {uri: meta["version"]}):
        gold = delta.scan(store, uri, meta["version"]).collect()
    # tables keep no row order and the split depends on it: one order per version, whatever the files' order
    gold = gold.sort(prep["id_column"] or gold.columns, maintain_order=True)
    X = to_pandas_features(gold, prep["numeric_columns"], prep["categorical_columns"])
    y = gold[prep["target"]].to_numpy()
    keys = gold[prep["id_column"]].to_numpy() if prep["id_column"] else None  # a row keeps its side of the split as gold grows
    return TrainingData(gold, meta, prep, split_data(X, y, config.training, keys))
