"""Gold: engineered features plus the metadata that training, inference and drift checks read.

Features are row-level, so gold follows silver incrementally: the rows silver inserted or
updated since the version gold was built from (Delta's change data feed) are engineered and
MERGEd in by id (appended without one). A full rebuild happens on ``--full-refresh``, with
``--as-of``, on the first run, when the feature definition changed, or when silver was rebuilt.

Counts in the metadata (rows, classes, nulls) are exact for every version; the distribution
statistics and roles are computed again once the rows changed since they were computed exceed
``PROFILE_REFRESH`` of the table (``profile_version`` names the version they describe), so a
day's run costs a day's work.

The run commits the features table, then writes ``metadata/v<N>.json`` and, last,
``features_metadata.json``, which names the gold version and the silver version it was built
from; readers read exactly that version.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import polars as pl
from prefect import task
from prefect.logging import get_run_logger

from pipeline_core.cleaning import LINEAGE_COLUMNS
from pipeline_core.config import PipelineConfig
from pipeline_core.errors import ConfigError, DataError
from pipeline_core.features import FeatureSpec, engineer_features, resolve_feature_spec, resolve_preprocessing_refs
from pipeline_core.fingerprint import digest
from pipeline_core.gold_metadata import describe_gold, with_current_counts
from pipeline_core.profiling import basic_profile, categorical_profile, infer_roles, numeric_profile
from pipeline_io import delta, layout
from pipeline_io.layer_records import current_gold_metadata, silver_report
from pipeline_io.locks import layer_writer
from pipeline_io.store import Store, open_store
from pipeline_io.streaming import small_morsels
from tasks.caching import persisted_as_plain_json, stage_cache_key
from tasks.code_version import code_version

# Rows changed since the distribution statistics were computed, as a share of the table, before they are computed again.
PROFILE_REFRESH = 0.1


def gold_code_version() -> str:
    return code_version(__name__)


def plan(previous: dict[str, Any] | None, silver_report: dict[str, Any], feature_version: str, store: Store, silver_uri: str,
         full_refresh: bool, as_of: str | None) -> tuple[str, str]:
    """("full" | "incremental" | "unchanged", why) for this run."""
    if full_refresh:
        return "full", "--full-refresh"
    if as_of is not None:
        return "full", f"as of silver version {silver_report['versions']['data']}"
    if previous is None:
        return "full", "first run"
    if previous["feature_version"] != feature_version:
        return "full", "feature definition changed"
    before, now = previous["silver_version"], silver_report["versions"]["data"]
    if previous["sources"]["silver"] == silver_report["fingerprint"]:
        return "unchanged", f"silver still at version {now}"
    if previous["sources"]["silver"].split("@")[0] != silver_report["fingerprint"].split("@")[0] or before > now:
        return "full", "silver is a different table"
    if not delta.has_change_feed(store, silver_uri, before, now):
        return "full", f"silver was rebuilt or restored after version {before}"
    return "incremental", f"silver versions {before + 1}..{now}"


def _commit_features(store: Store, uri: str, mode: str, silver: pl.LazyFrame, changed: pl.DataFrame | None, spec: FeatureSpec,
                     run_id: str, facts: dict[str, Any]) -> int:
    if mode == "full":
        return delta.write(store, uri, engineer_features(silver, spec), mode="overwrite", run_id=run_id, facts=facts)
    rows = engineer_features(changed.lazy(), spec).collect()
    if spec.id_column:
        return delta.merge(store, uri, rows, keys=[spec.id_column], update=True, run_id=run_id, facts=facts)[0]
    return delta.write(store, uri, rows, mode="append", run_id=run_id, facts=facts)


@small_morsels
def build_gold(config: PipelineConfig, store: Store, full_refresh: bool = False, as_of: str | None = None) -> dict[str, Any]:
    tables = {layout.silver_paths(store, config.dataset.name)["data"]: None, layout.gold_paths(store, config.dataset.name)["features"]: None}
    with layer_writer(store, "gold", config.dataset.name), delta.reading(store, tables):
        return _build(config, store, full_refresh, as_of)


def _build(config: PipelineConfig, store: Store, full_refresh: bool, as_of: str | None) -> dict[str, Any]:
    ds = config.dataset
    s_paths = layout.silver_paths(store, ds.name)
    report = silver_report(store, ds.name)
    if report is None:
        raise DataError(f"no silver layer for dataset '{ds.name}' in {store.root}; run `pipeline-cli silver` first")
    if as_of is not None:
        report = silver_report(store, ds.name, delta.resolve_version(store, s_paths["data"], as_of))
    silver_version = report["versions"]["data"]
    if as_of is not None:  # an old version's files may have been vacuumed: one line naming the first gone, not the reader's error
        delta.refuse_damaged(store, {s_paths["data"]: silver_version})
    silver = delta.scan(store, s_paths["data"], silver_version).drop(LINEAGE_COLUMNS, strict=False)
    target = report["cleaning_spec"]["target"]
    target_values = silver.select(pl.col(target).unique()).collect().to_series().to_list()
    spec = resolve_feature_spec(config, report, target_values)
    code = gold_code_version()
    feature_version = digest(code, spec.to_dict(), config.section_json("features", "preprocessing"))[:12]

    paths = layout.gold_paths(store, ds.name)
    run_id = delta.new_run_id()
    previous = current_gold_metadata(store, ds.name)
    undone = delta.undo_unrecorded(store, {"features": paths["features"]}, {"features": previous["version"] if previous else None}, run_id)
    mode, why = plan(previous, report, feature_version, store, s_paths["data"], full_refresh, as_of)
    if mode == "unchanged" and previous is not None:
        return {**previous, "mode": "unchanged", "why": why, "undone": undone}
    changed = None
    if mode == "incremental":
        keys = [spec.id_column] if spec.id_column else None
        changed = delta.changes(store, s_paths["data"], previous["silver_version"], silver_version, keys).drop(LINEAGE_COLUMNS, strict=False)
    facts = {"layer": "gold", "mode": mode, "silver_version": silver_version, "feature_version": feature_version}
    gold_version = _commit_features(store, paths["features"], mode, silver, changed, spec, run_id, facts)
    delta.fault_point("gold:after-data")

    gold = delta.scan(store, paths["features"], gold_version)
    since = (previous or {}).get("rows_changed_since_profile", 0) + (changed.height if changed is not None else 0)
    if mode == "incremental" and since <= PROFILE_REFRESH * previous["row_count"]:
        # a day's rows barely move the distributions: keep the profiled statistics, count exactly
        rows, nulls = delta.row_and_null_counts(store, paths["features"], gold_version, list(gold.collect_schema()))
        positives = gold.select(pl.col(spec.target).sum()).collect().item()
        metadata = with_current_counts(previous, rows, positives, nulls)
        metadata["rows_changed_since_profile"] = since
        return _publish(store, paths, s_paths, metadata, gold_version, silver_version, mode, why, undone, changed)
    profile = basic_profile(gold)
    roles = infer_roles(profile, resolve_preprocessing_refs(config), spec.target, spec.id_column)
    numeric = [c for c, r in roles.items() if r == "numeric"]
    categorical = [c for c, r in roles.items() if r == "categorical"]
    if not numeric and not categorical:
        raise ConfigError(f"gold/{ds.name}: no usable feature columns (roles: {roles}); set preprocessing.numeric/categorical")
    stats = {c: profile[c]["numeric"] for c in numeric if "numeric" in profile[c]}
    stats.update(numeric_profile(gold, [c for c in numeric if c not in stats]))
    levels = categorical_profile(gold, categorical, top=config.preprocessing.max_categories)
    positives = gold.select(pl.col(spec.target).sum()).collect().item()
    preprocessing, metadata = describe_gold(config, spec, report, profile, roles, stats, levels, positives, code)
    metadata = {**metadata, "preprocessing": preprocessing, "profile_version": gold_version, "rows_changed_since_profile": 0}
    return _publish(store, paths, s_paths, metadata, gold_version, silver_version, mode, why, undone, changed)


def _publish(store: Store, paths: dict[str, str], s_paths: dict[str, str], metadata: dict[str, Any], gold_version: int,
             silver_version: int, mode: str, why: str, undone: list[str], changed: pl.DataFrame | None) -> dict[str, Any]:
    """Write the metadata of ``gold_version``: its own record, then the current one, which commits the run."""
    metadata = {
        **metadata,
        "fingerprint": delta.table_key(store, paths["features"], gold_version),
        "version": gold_version, "silver_version": silver_version, "mode": mode, "why": why, "undone": undone,
        "changed_rows": changed.height if changed is not None else metadata["row_count"],
        "tables": {"features": store.relative(paths["features"]), "silver": store.relative(s_paths["data"])},
        "created_at": datetime.now(timezone.utc).isoformat(),
    }
    preprocessing = metadata["preprocessing"]
    store.write_json(layout.version_record(paths["versions"], gold_version), metadata)
    delta.fault_point("gold:after-version-record")
    store.write_json(paths["preprocessing"], preprocessing)  # a copy for people; readers take it from the metadata
    store.write_json(paths["metadata"], metadata)
    return metadata


@task(
    name="build-gold",
    cache_key_fn=stage_cache_key("gold", "dataset", "features", "preprocessing", code_version=gold_code_version),
    **persisted_as_plain_json(),
)
def build_gold_task(config: PipelineConfig, input_fingerprint: str, full_refresh: bool = False, as_of: str | None = None) -> dict[str, Any]:
    start = time.perf_counter()
    store = open_store(config)
    meta = build_gold(config, store, full_refresh, as_of)
    logger = get_run_logger()
    if meta.get("undone"):
        logger.warning("gold: undid commits of an interrupted run that no metadata named: %s", meta["undone"])
    if meta["mode"] == "unchanged":
        logger.info("gold: %s; the layer is up to date (version %s)", meta["why"], meta["version"])
    else:
        logger.info("gold (%s: %s): %d rows, %d engineered now, feature version %s, roles %s", meta["mode"], meta["why"], meta["row_count"],
                    meta["changed_rows"], meta["feature_version"], {k: len(v) for k, v in meta["roles"].items()})
    unchanged = meta["mode"] == "unchanged"
    return {
        "layer": "gold", "status": "unchanged" if unchanged else "ran", "mode": meta["mode"],
        "rows_in": 0 if unchanged else meta["changed_rows"], "rows_out": meta["row_count"], "quarantined": 0,
        "feature_version": meta["feature_version"], "fingerprint": meta["fingerprint"], "version": meta["version"],
        "silver_version": meta["silver_version"],
        "numeric": len(meta["roles"].get("numeric", [])), "categorical": len(meta["roles"].get("categorical", [])),
        "missing_values": meta["missing_values"], "metadata": layout.gold_paths(store, config.dataset.name)["metadata"],
        "set_aside": {c: role for role, cols in meta["roles"].items() if role not in ("numeric", "categorical", "target") for c in cols},
        "seconds": round(time.perf_counter() - start, 3),
    }
