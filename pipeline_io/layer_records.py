"""The layers' own records read back: silver reports and gold metadata, current or of one table version."""

from __future__ import annotations

from typing import Any

from pipeline_core.errors import DataError, StorageError
from pipeline_io import delta, layout
from pipeline_io.store import Store


def _record(store: Store, current: str, folder: str, version: int | None, what: str) -> dict[str, Any] | None:
    """The current record of a layer (None when there is none yet), or that of one table version."""
    if version is None:
        return store.read_json(current) if store.exists(current) else None
    uri = layout.version_record(folder, version)
    if not store.exists(uri):
        raise StorageError(f"{store.relative(folder)}: version {version} has no {what} (a run that did not finish made it); "
                           "pick another version from `pipeline-cli store history`")
    return store.read_json(uri)


def silver_report(store: Store, dataset: str, version: int | None = None) -> dict[str, Any] | None:
    """The current silver report, or the report of silver data version ``version``."""
    paths = layout.silver_paths(store, dataset)
    return _record(store, paths["report"], paths["reports"], version, "report")


def gold_metadata(store: Store, dataset: str, as_of: str | None = None) -> dict[str, Any]:
    """The current gold metadata, or that of the gold version current ``as_of`` (a version or an ISO time)."""
    paths = layout.gold_paths(store, dataset)
    if not store.exists(paths["metadata"]):
        raise DataError(f"no gold layer for dataset '{dataset}' in {store.root}; run `pipeline-cli features` first")
    version = None if as_of is None else delta.resolve_version(store, paths["features"], as_of)
    return _record(store, paths["metadata"], paths["versions"], version, "metadata")


def current_gold_metadata(store: Store, dataset: str) -> dict[str, Any] | None:
    paths = layout.gold_paths(store, dataset)
    return _record(store, paths["metadata"], paths["versions"], None, "metadata")
