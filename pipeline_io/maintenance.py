"""Looking after a store's tables: their commit history, bronze's batches, and deleting files no retained version reads."""

from __future__ import annotations

from typing import Any

from pipeline_core.config import PipelineConfig
from pipeline_io import bronze_batches, delta, layout
from pipeline_io.store import Store, open_existing_store

TABLES = ("bronze", "silver", "quarantine", "gold", "monitoring", "performance")


def dataset_tables(store: Store, dataset: str) -> dict[str, str]:
    """Every Delta table of a dataset, by name (`TABLES`)."""
    silver = layout.silver_paths(store, dataset)
    return {"bronze": layout.bronze_table(store, dataset), "silver": silver["data"], "quarantine": silver["quarantine"],
            "gold": layout.gold_paths(store, dataset)["features"], "monitoring": layout.monitoring_table(store, dataset),
            "performance": layout.performance_table(store, dataset)}


def history(config: PipelineConfig, table: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The newest ``limit`` commits of each table (or of one), newest first."""
    store = open_existing_store(config)
    tables = dataset_tables(store, config.dataset.name)
    chosen = {table: tables[table]} if table else tables
    return [{"name": name, **entry} for name, uri in chosen.items() for entry in delta.history(store, uri, limit)]


def vacuum(config: PipelineConfig, dry_run: bool = False) -> dict[str, Any]:
    """Delete the files of versions older than ``store.retention.days`` from every table of the dataset."""
    store = open_existing_store(config)
    hours = config.store.retention.days * 24
    removed = {name: delta.vacuum(store, uri, hours, dry_run) for name, uri in dataset_tables(store, config.dataset.name).items()}
    return {"retention_days": config.store.retention.days, "dry_run": dry_run,
            "files": {name: len(files) for name, files in removed.items()}, "total": sum(len(f) for f in removed.values())}


def batches(config: PipelineConfig) -> list[dict[str, Any]]:
    """The dataset's bronze batches, oldest first: id, source, ingestion time, rows."""
    return bronze_batches.list_batches(open_existing_store(config), config.dataset.name)


def drop_batch(config: PipelineConfig, batch_id: str, dry_run: bool = False) -> dict[str, Any]:
    """Drop one bronze batch (an id or a unique prefix of one) in one commit; see `bronze_batches.drop_batch`."""
    return bronze_batches.drop_batch(open_existing_store(config), config.dataset.name, batch_id, dry_run)
