"""The store's Delta Lake tables: deltalake's API, its errors and the layers' commit points, in one place.

A layer run makes one commit per table and records the versions it made in its report, which
is written last; readers read exactly those versions. Each commit carries the run's id and a few
facts (batch, mode, rows) as ``pipeline.*`` commit metadata, shown by `store history`.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import polars as pl

from pipeline_core.errors import ConfigError, DataError, StorageError, first_line
from pipeline_io.store import Store

FAULT_ENV = "PIPELINE_FAULT_AT"  # tests: the commit point at which the process kills itself
CHANGE_FEED = {"delta.enableChangeDataFeed": "true"}  # lets gold read only what silver changed
TABLE_PROPERTIES = {
    # Opening a table replays every commit since its last checkpoint: bronze gains one a day, and
    # delta-rs checkpoints every 100 commits by default; 10 is the Delta protocol's usual interval.
    "delta.checkpointInterval": "10",
    # With checkpoints, delta-rs would delete commits older than 30 days after each write; which old
    # versions stay readable is store.retention's and `store vacuum`'s decision, not a default's.
    "delta.enableExpiredLogCleanup": "false",
}
# Files of this size keep a MERGE's rewrite (copy-on-write of every file holding a matched row) near the new data.
TARGET_FILE_BYTES = 8 * 2**20


def fault_point(name: str) -> None:
    """Die here, as a power cut would, when the fault-injection variable names this commit point."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def new_run_id() -> str:
    return uuid.uuid4().hex


def _options(store: Store) -> dict[str, str] | None:
    return store.polars_options


def table(store: Store, uri: str, version: int | None = None) -> Any:
    """The ``DeltaTable`` at ``uri`` (at ``version``), or None when no table is there."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return DeltaTable(uri, version=version, storage_options=_options(store))
    except TableNotFoundError:
        return None
    except Exception as exc:  # deltalake reports a vacuumed or missing version as a generic DeltaError
        if version is not None and DeltaTable.is_deltatable(uri, storage_options=_options(store)):
            raise StorageError(f"{store.relative(uri)}: version {version} cannot be read ({first_line(exc)}); "
                               "it may be older than store.retention and vacuumed") from None
        raise StorageError(f"{store.relative(uri)}: not a readable Delta table ({first_line(exc)})") from None


def version(store: Store, uri: str) -> int | None:
    dt = table(store, uri)
    return None if dt is None else dt.version()


def table_key(store: Store, uri: str, at: int | None = None) -> str | None:
    """``<table id>@v<version>``: what caches compare; survives a move of the store, changes when the table is recreated."""
    dt = table(store, uri, at)
    if dt is None:
        return None
    return f"{dt.metadata().id[:8]}@v{dt.version()}"


def scan(store: Store, uri: str, at: int | None = None) -> pl.LazyFrame:
    """The table as of version ``at`` (latest when None)."""
    dt = table(store, uri, at)
    if dt is None:
        raise StorageError(f"{store.relative(uri)}: no such table; run the stage that writes it first")
    return pl.scan_delta(dt)


def resolve_version(store: Store, uri: str, as_of: str) -> int:
    """A version number from ``--as-of``: a version, or an ISO time (the version current then)."""
    dt = table(store, uri)
    if dt is None:
        raise StorageError(f"{store.relative(uri)}: no such table; nothing to read as of {as_of}")
    if as_of.strip().isdigit():
        wanted = int(as_of)
        if wanted > dt.version():
            raise DataError(f"--as-of {as_of}: {store.relative(uri)} is only at version {dt.version()}")
        return wanted
    try:
        moment = datetime.fromisoformat(as_of)
    except ValueError:
        raise ConfigError(f"--as-of {as_of!r}: give a table version (e.g. 3) or an ISO time (e.g. 2026-11-28T09:00:00Z)") from None
    stamp_ms = moment.timestamp() * 1000 if moment.tzinfo else moment.replace(tzinfo=None).astimezone().timestamp() * 1000
    earlier = [h["version"] for h in dt.history() if h["timestamp"] <= stamp_ms]
    if not earlier:
        raise DataError(f"--as-of {as_of}: {store.relative(uri)} did not exist yet then")
    return max(earlier)


def _commit_properties(run_id: str, facts: dict[str, Any]) -> Any:
    from deltalake import CommitProperties

    metadata = {"pipeline.run_id": run_id, **{f"pipeline.{k}": str(v) for k, v in facts.items()}}
    return CommitProperties(custom_metadata=metadata)


def _writer_properties() -> Any:
    """zstd without dictionary pages: the Parquet writer's dictionary attempt on every column cost half
    of bronze's write time and gave larger files (benchmarks/RESULTS.md)."""
    from deltalake import ColumnProperties, WriterProperties

    return WriterProperties(compression="ZSTD", default_column_properties=ColumnProperties(dictionary_enabled=False))


def _with_table_properties(store: Store, uri: str, dt: Any) -> Any:
    """``dt``, after giving a table made before TABLE_PROPERTIES existed those properties (a commit of its own):
    Delta takes a table's properties when the table is created, and later writes leave them as they were."""
    if dt is None:
        return None
    current = dt.metadata().configuration
    missing = {k: v for k, v in TABLE_PROPERTIES.items() if current.get(k) != v}
    if not missing:
        return dt
    with _conflicts(store, uri):
        dt.alter.set_table_properties(missing, commit_properties=_commit_properties(new_run_id(), {"set": ", ".join(missing)}))
    return table(store, uri)


def _committed_version(store: Store, uri: str, run_id: str) -> int:
    return int(committed(store, uri, run_id)["version"])


def committed(store: Store, uri: str, run_id: str) -> dict[str, Any]:
    """The log entry of this run's commit: found by its id, since another writer may have committed since."""
    dt = table(store, uri)
    for entry in dt.history(20):
        if entry.get("pipeline.run_id") == run_id:
            return entry
    raise StorageError(f"{store.relative(uri)}: the commit of run {run_id} is not in the table's history")


@contextmanager
def _conflicts(store: Store, uri: str) -> Iterator[None]:
    from deltalake.exceptions import CommitFailedError

    try:
        yield
    except CommitFailedError:
        raise StorageError(f"{store.relative(uri)}: another run committed to this table at the same time; "
                           "nothing of this run was kept, run it again") from None


def write(store: Store, uri: str, frame: pl.LazyFrame | pl.DataFrame, *, mode: str, run_id: str, facts: dict[str, Any],
          change_feed: bool = False) -> int:
    """Append to, or overwrite, the table in one commit, streaming the frame; returns the new version."""
    options: dict[str, Any] = {"commit_properties": _commit_properties(run_id, facts), "writer_properties": _writer_properties(),
                               "target_file_size": TARGET_FILE_BYTES}
    if mode == "append":
        options["schema_mode"] = "merge"  # a batch may bring new columns; older rows read them as null
    else:
        options["schema_mode"] = "overwrite"
    options["configuration"] = {**TABLE_PROPERTIES, **(CHANGE_FEED if change_feed else {})}  # taken when the write creates the table
    _with_table_properties(store, uri, table(store, uri))
    with _conflicts(store, uri):
        frame.lazy().sink_delta(uri, mode=mode, storage_options=_options(store), delta_write_options=options)
    return _committed_version(store, uri, run_id)


def _key_range(frame: pl.DataFrame, key: str) -> str:
    """``t.key`` between the smallest and largest key of the source: the same matches, and the files
    whose statistics lie outside the range are neither read nor rewritten."""
    lo, hi = frame.select(pl.col(key).min().alias("lo"), pl.col(key).max().alias("hi")).row(0)
    if lo is None:
        return ""
    if isinstance(lo, str):
        lo, hi = ("'" + v.replace("'", "''") + "'" for v in (lo, hi))
    elif not isinstance(lo, (int, float)) or isinstance(lo, bool):
        return ""
    return f" AND t.`{key}` >= {lo} AND t.`{key}` <= {hi}"


def merge(store: Store, uri: str, frame: pl.DataFrame, *, keys: list[str], update: bool, run_id: str,
          facts: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """MERGE ``frame`` into the table on ``keys``: matched rows are updated (or left alone), the rest inserted."""
    predicate = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys) + _key_range(frame, keys[0])
    dt = _with_table_properties(store, uri, table(store, uri))
    with _conflicts(store, uri):
        merger = dt.merge(frame.to_arrow(), predicate, source_alias="s", target_alias="t",
                          writer_properties=_writer_properties(), commit_properties=_commit_properties(run_id, facts))
        if update:
            merger = merger.when_matched_update_all()
        metrics = merger.when_not_matched_insert_all().execute()
    return _committed_version(store, uri, run_id), metrics


def delete(store: Store, uri: str, predicate: str, *, run_id: str, facts: dict[str, Any]) -> int:
    """Delete the rows matching ``predicate`` (SQL) in one commit; returns the new version."""
    dt = table(store, uri)
    with _conflicts(store, uri):
        dt.delete(predicate, writer_properties=_writer_properties(), commit_properties=_commit_properties(run_id, facts))
    return _committed_version(store, uri, run_id)


# On object storage nothing serialises two runs of a layer: a commit no report names yet that is younger
# than this may be a live run's, not a killed one's, and is not restored over.
IN_FLIGHT_SECONDS = 900


def undo_unrecorded(store: Store, uris: dict[str, str], pinned: dict[str, int | None], run_id: str) -> list[str]:
    """Restore each table (name -> uri) to the version its layer's report pins when a killed run committed past it;
    returns what was undone (``"<name> a..b"``). All tables are checked before any is restored."""
    past = {name: (pinned[name], latest) for name, uri in uris.items()
            if pinned.get(name) is not None and (latest := version(store, uri)) is not None and latest > pinned[name]}
    if store.remote:
        for name, (_, latest) in past.items():
            age = datetime.now().timestamp() - table(store, uris[name]).history(1)[0]["timestamp"] / 1000
            if age < IN_FLIGHT_SECONDS:
                raise StorageError(f"{store.relative(uris[name])}: version {latest} was committed {age:.0f} s ago by a run that has not "
                                   "recorded it yet, so another run is writing this layer now; run again once it is done (if that run "
                                   f"was killed, run again after {IN_FLIGHT_SECONDS // 60} minutes)")
    for name, (at, latest) in past.items():
        restore(store, uris[name], at, run_id)
    return [f"{name} {at + 1}..{latest}" for name, (at, latest) in past.items()]


def restore(store: Store, uri: str, to_version: int, run_id: str) -> None:
    """Bring the table back to ``to_version`` (commits a run never recorded are undone, kept in history)."""
    dt = table(store, uri)
    with _conflicts(store, uri):
        dt.restore(to_version, commit_properties=_commit_properties(run_id, {"restored_to": to_version}))


def changes(store: Store, uri: str, after: int, through: int, keys: list[str] | None = None) -> pl.DataFrame:
    """The rows inserted or updated in versions ``after``+1 .. ``through`` (Delta's change data feed).

    With ``keys``, only the newest state of each key is kept (a row may change in several versions).
    """
    import pyarrow as pa

    reader = table(store, uri).load_cdf(starting_version=after + 1, ending_version=through)
    frame = pl.DataFrame(pa.RecordBatchReader.from_stream(reader).read_all())
    latest = frame.filter(pl.col("_change_type").is_in(["insert", "update_postimage"]))
    if keys:
        latest = latest.sort("_commit_version", maintain_order=True).unique(keys, keep="last", maintain_order=True)
    return latest.drop("_change_type", "_commit_version", "_commit_timestamp")


def has_change_feed(store: Store, uri: str, after: int, through: int) -> bool:
    """Whether the change feed describes every commit in (after, through]: appends and merges only."""
    for entry in table(store, uri).history():
        if not after < entry["version"] <= through:
            continue
        mode = entry.get("operationParameters", {}).get("mode")
        if not (entry.get("operation") == "MERGE" or (entry.get("operation") == "WRITE" and mode == "Append")):
            return False
    return True


def history(store: Store, uri: str, limit: int | None = None) -> list[dict[str, Any]]:
    """Commits, newest first: version, time, operation, rows and the pipeline's own facts."""
    dt = table(store, uri)
    if dt is None:
        return []
    out = []
    for entry in dt.history(limit):
        metrics = entry.get("operationMetrics", {})
        rows = metrics.get("num_added_rows", metrics.get("num_output_rows"))
        facts = {k[len("pipeline."):]: v for k, v in entry.items() if k.startswith("pipeline.")}
        out.append({"table": store.relative(uri), "version": entry["version"],
                    "time": datetime.fromtimestamp(entry["timestamp"] / 1000).astimezone().isoformat(timespec="seconds"),
                    "operation": entry.get("operation"), "rows": rows, **facts})
    return out


def vacuum(store: Store, uri: str, retention_hours: float, dry_run: bool) -> list[str]:
    """Delete the files no version within ``retention_hours`` reads (``dry_run`` only lists them)."""
    dt = table(store, uri)
    if dt is None:
        return []
    return dt.vacuum(retention_hours=int(retention_hours), dry_run=dry_run, enforce_retention_duration=False, full=True)


def row_and_null_counts(store: Store, uri: str, at: int, columns: list[str]) -> tuple[int, dict[str, int]]:
    """Rows and null counts per column of a version, from the statistics its log keeps for each file
    (no data read); columns without statistics (Delta keeps them for the first 32) are counted by a scan."""
    actions = pl.DataFrame(table(store, uri, at).get_add_actions(flatten=True))
    complete = [c for c in columns if f"null_count.{c}" in actions.columns and actions[f"null_count.{c}"].null_count() == 0]
    rows = int(actions["num_records"].sum()) if "num_records" in actions.columns and actions["num_records"].null_count() == 0 else None
    nulls = {c: int(actions[f"null_count.{c}"].sum()) for c in complete}
    rest = [c for c in columns if c not in nulls]
    if rest or rows is None:
        counted = scan(store, uri, at).select(pl.len().alias("\x00rows"), pl.col(rest).null_count()).collect(engine="streaming")
        counts = counted.row(0, named=True)
        rows = counts.pop("\x00rows")
        nulls.update(counts)
    return rows, {c: nulls[c] for c in columns}


def damaged_files(store: Store, uri: str, at: int | None = None) -> list[tuple[str, str]]:
    """(path, "missing" | "damaged") for the data files of the version that are gone or whose size differs from the log's."""
    dt = table(store, uri, at)
    if dt is None:
        return []
    actions = pl.DataFrame(dt.get_add_actions(flatten=True))
    found = []
    for path, size in zip(actions["path"].to_list(), actions["size_bytes"].to_list()):
        try:
            actual = store.fs.size(f"{uri}/{path}")
        except FileNotFoundError:
            found.append((f"{store.relative(uri)}/{path}", "missing"))
            continue
        if actual != size:
            found.append((f"{store.relative(uri)}/{path}", "damaged"))
    return found


@contextmanager
def reading(store: Store, tables: dict[str, int | None]) -> Iterator[None]:
    """Turn a failed read of these tables (at these versions) into one line naming the file at fault, if one is.

    On a local store the files' sizes are checked first (a stat each): a truncated file would make the
    Rust reader panic, and its panic message goes straight to the terminal. On object storage, where a
    check costs a request per file, the files are checked only once a read failed.
    """
    if not store.remote:
        refuse_damaged(store, tables)
    try:
        yield
    except (StorageError, DataError):
        raise
    except BaseException as exc:  # a truncated Parquet file makes polars panic (a BaseException)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        refuse_damaged(store, tables)
        raise


def refuse_damaged(store: Store, tables: dict[str, int | None]) -> None:
    """One line naming the first data file of these table versions that is missing or damaged, if any."""
    for uri, at in tables.items():
        for path, problem in damaged_files(store, uri, at):
            if problem == "missing":
                raise StorageError(f"{path}: missing; `pipeline-cli store vacuum` deletes the files of versions older than "
                                   "store.retention.days, so read a newer version") from None
            raise StorageError(f"{path}: damaged data file (its size differs from the one the table's log recorded); "
                               "restore it from a backup or rebuild the layer with --full-refresh") from None

