"""Every path of the store, built in one place.

```
<root>/bronze/<dataset>/batch=<id>/{data.parquet,_batch.json}
<root>/silver/<dataset>/{data.parquet,validation_report.json,quarantine/quarantine.parquet}
<root>/gold/<dataset>/{features.parquet,features_metadata.json,preprocessing_config.json}
<root>/monitoring/<dataset>/batches/<time>.json
<local root or ./results>/{mlflow.db,mlartifacts/,optuna/<dataset>.journal}
```
"""

from __future__ import annotations

from pathlib import Path

from pipeline_io.store import Store

BATCH_MARKER = "_batch.json"


def bronze_root(store: Store, dataset: str) -> str:
    return store.uri("bronze", dataset)


def bronze_batch(store: Store, dataset: str, batch_id: str) -> dict[str, str]:
    folder = f"{bronze_root(store, dataset)}/batch={batch_id}"
    return {"folder": folder, "data": f"{folder}/data.parquet", "marker": f"{folder}/{BATCH_MARKER}"}


def silver_paths(store: Store, dataset: str) -> dict[str, str]:
    root = store.uri("silver", dataset)
    return {
        "data": f"{root}/data.parquet",
        "quarantine": f"{root}/quarantine/quarantine.parquet",
        "report": f"{root}/validation_report.json",
    }


def gold_paths(store: Store, dataset: str) -> dict[str, str]:
    root = store.uri("gold", dataset)
    return {
        "features": f"{root}/features.parquet",
        "metadata": f"{root}/features_metadata.json",
        "preprocessing": f"{root}/preprocessing_config.json",
    }


def monitoring_batches(store: Store, dataset: str) -> str:
    return store.uri("monitoring", dataset, "batches")


def local_state_dir(store_root: str) -> Path:
    """Where the store's local companions live (MLflow database, artifacts, Optuna journals):
    the store root itself, or ./results for an object-storage store."""
    folder = Path("results") if store_root.startswith("s3://") else Path(store_root)
    return folder.expanduser().resolve()


def tracking_db(store_root: str) -> Path:
    return local_state_dir(store_root) / "mlflow.db"


def artifact_dir(store_root: str) -> Path:
    """MLflow's artifacts of a local store (an s3:// store keeps them under its own prefix)."""
    return local_state_dir(store_root) / "mlartifacts"


def optuna_journal(store_root: str, dataset: str) -> Path:
    return local_state_dir(store_root) / "optuna" / f"{dataset}.journal"
