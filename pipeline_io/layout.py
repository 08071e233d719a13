"""Every path of the store, built in one place.

```
<root>/bronze/<dataset>/                          Delta table, one append commit per batch (_batch_id)
<root>/silver/<dataset>/data/                     Delta table (change data feed on)
<root>/silver/<dataset>/quarantine/               Delta table: failed rows, raw, with _reason
<root>/silver/<dataset>/validation_report.json    the current report: names the versions above
<root>/silver/<dataset>/reports/v<N>.json         the report of silver data version N
<root>/gold/<dataset>/features/                   Delta table
<root>/gold/<dataset>/features_metadata.json      the current metadata: names the gold version
<root>/gold/<dataset>/metadata/v<N>.json          the metadata of gold version N (with its preprocessing config)
<root>/gold/<dataset>/preprocessing_config.json   the current preprocessing config, for people
<root>/monitoring/<dataset>/batches/              Delta table: one row per scored batch
<local root or ./results>/{mlflow.db,mlartifacts/,optuna/<dataset>.journal,reports/<dataset>/*.html}
```
Every record in the store names tables by paths relative to the root, so a store can be copied,
moved or synced to another bucket.
"""

from __future__ import annotations

from pathlib import Path

from pipeline_io.store import Store


def bronze_table(store: Store, dataset: str) -> str:
    return store.uri("bronze", dataset)


def silver_paths(store: Store, dataset: str) -> dict[str, str]:
    root = store.uri("silver", dataset)
    return {"data": f"{root}/data", "quarantine": f"{root}/quarantine", "report": f"{root}/validation_report.json",
            "reports": f"{root}/reports"}


def gold_paths(store: Store, dataset: str) -> dict[str, str]:
    root = store.uri("gold", dataset)
    return {"features": f"{root}/features", "metadata": f"{root}/features_metadata.json",
            "preprocessing": f"{root}/preprocessing_config.json", "versions": f"{root}/metadata"}


def version_record(folder: str, version: int) -> str:
    """The record of one table version: fixed-width so that names sort by version."""
    return f"{folder}/v{version:08d}.json"


def monitoring_table(store: Store, dataset: str) -> str:
    return store.uri("monitoring", dataset, "batches")


def performance_table(store: Store, dataset: str) -> str:
    """Realized performance of scored batches, appended by `feedback`."""
    return store.uri("monitoring", dataset, "performance")


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


def reports_dir(store_root: str, dataset: str) -> Path:
    """The HTML reports of a dataset: one per training run, one per scored batch."""
    return local_state_dir(store_root) / "reports" / dataset
