"""Where a prediction came from: prediction -> model version -> MLflow run -> gold -> silver -> bronze batches.

Every link is read from what the pipeline recorded: the predictions' model columns, the model
version's tags, the gold metadata of that version, the silver report of the version gold read,
and the bronze table at the version silver read.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from pipeline_core.config import PipelineConfig
from pipeline_core.errors import ConfigError, DataError, ModelError, first_line
from pipeline_io import delta, layout, registry
from pipeline_io.store import Store, open_store


def model_from_predictions(path: str, storage_options: dict[str, str] | None) -> tuple[str, str]:
    """(registered name, version) written beside every prediction of a predictions file."""
    try:
        models = pl.scan_parquet(path, storage_options=storage_options).select("model_name", "model_version").unique().collect()
    except FileNotFoundError:
        raise DataError(f"{path}: no such predictions file") from None
    except (pl.exceptions.ColumnNotFoundError, pl.exceptions.SchemaError):
        raise DataError(f"{path}: not a predictions file of this pipeline (no model_name/model_version columns)") from None
    except pl.exceptions.PolarsError as exc:
        raise DataError(f"{path}: cannot be read as Parquet ({first_line(exc, 160)})") from None
    models = models.filter(pl.col("model_version") != "")
    if models.height != 1:
        raise DataError(f"{path}: expected the predictions of one registered model version, found {models.rows()}")
    name, version = models.row(0)
    return name, version


def model_version(client: Any, ref: str) -> Any:
    """The registry entry behind models:/NAME/VERSION or models:/NAME@ALIAS."""
    if not ref.startswith("models:/"):
        raise ModelError(f"{ref!r}: give a predictions file or a registered model as models:/NAME/VERSION or models:/NAME@ALIAS")
    name, version = registry.registered_version(client, ref, "TARGET")
    if version is None:  # a logged model's own URI (models:/m-...): it has no registry entry to follow
        raise ConfigError(f"TARGET {ref!r}: a logged model, not a registered version; give models:/NAME/VERSION or models:/NAME@ALIAS")
    try:
        return client.get_model_version(name, version)
    except Exception:
        registry.registered_model(client, name)  # an unknown name: point at the names, not at its versions
        raise ModelError(f"{ref}: model '{name}' has no version {version}; `pipeline-cli models describe {name}` lists them") from None


def chain(config: PipelineConfig, target: str) -> dict[str, Any]:
    """The lineage of a predictions file or a registered model version, as one record per link."""
    client, _ = registry.connect(config, existing=True)
    store = open_store(config)
    links: dict[str, Any] = {}
    if target.startswith("models:/"):
        entry = model_version(client, target)
    else:
        name, version = model_from_predictions(target, store.polars_options if target.startswith("s3://") else None)
        links["predictions"] = {"path": target, "model": f"models:/{name}/{version}"}
        entry = model_version(client, f"models:/{name}/{version}")
    tags = entry.tags or {}
    links["model"] = {"name": entry.name, "version": str(entry.version), "aliases": list(entry.aliases or []),
                      "run_id": tags.get("run_id") or entry.run_id}
    run = client.get_run(links["model"]["run_id"])
    links["run"] = {"run_id": run.info.run_id, "experiment_id": run.info.experiment_id, "model": run.data.tags.get("model"),
                    "parent_run_id": run.data.tags.get("mlflow.parentRunId")}
    if "gold_version" not in tags:
        raise ModelError(f"models:/{entry.name}/{entry.version} records no gold version (registered before lineage was kept)")
    links["gold"] = gold_link(store, config.dataset.name, int(tags["gold_version"]), tags.get("gold_table"))
    links["silver"] = silver_link(store, config.dataset.name, links["gold"]["silver_version"])
    links["bronze"] = bronze_link(store, config.dataset.name, links["silver"]["bronze_version"], links["silver"]["bronze_batches"])
    return links


def gold_link(store: Store, dataset: str, version: int, table: str | None) -> dict[str, Any]:
    from pipeline_io.layer_records import gold_metadata

    meta = gold_metadata(store, dataset, str(version))
    return {"table": table or meta["tables"]["features"], "version": version, "feature_version": meta["feature_version"],
            "rows": meta["row_count"], "silver_version": meta["silver_version"], "created_at": meta.get("created_at")}


def silver_link(store: Store, dataset: str, version: int) -> dict[str, Any]:
    from pipeline_io.layer_records import silver_report

    report = silver_report(store, dataset, version)
    return {"table": report["tables"]["data"], "version": version, "quarantine_version": report["versions"]["quarantine"],
            "rows": report["table_rows"], "bronze_version": report["versions"]["bronze"], "bronze_batches": report["bronze_batches"],
            "created_at": report.get("created_at")}


def bronze_link(store: Store, dataset: str, version: int, batches: list[str]) -> dict[str, Any]:
    from pipeline_io.bronze_batches import list_batches

    uri = layout.bronze_table(store, dataset)
    with delta.reading(store, {uri: version}):
        found = list_batches(store, dataset, version, only=batches)
    return {"table": store.relative(uri), "version": version, "batches": found}
