"""Every workaround of a Prefect or MLflow behaviour, in one place.

Each entry names what it works around, the upstream issue where there is one, and when it can go.
Standard library at import time: the CLI's `--help` and the server commands import this module.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import time
from collections.abc import Iterator
from importlib import metadata
from typing import Any

# -- Prefect server on SQLite: "database is locked" -------------------------------------------
# A Prefect server on SQLite answers 503 when a client's write meets one of its own background
# writes, and the client waits 2 s before retrying (PrefectHQ/prefect#18934). Batching the
# recorder's writes and a short pause between subflows make that rare (benchmarks/RESULTS.md).
# Remove both when #18934 is fixed in the Prefect release pyproject.toml allows.
SERVER_WRITE_BATCHING = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "500",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "5",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "500",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "5",
}
SUBFLOW_PAUSE_S = 0.2


def let_server_settle(*hook_args: Any) -> None:
    """A flow's completion hook: pause before the parent flow creates its next subflow, so the
    server has recorded this one's task runs (#18934)."""
    time.sleep(SUBFLOW_PAUSE_S)


# -- Prefect's temporary server ----------------------------------------------------------------
# Its 20 s start-up timeout is too tight on a fresh PREFECT_HOME, and its analytics service meets
# "database is locked" at start-up. Remove when Prefect's defaults start reliably on 2 cores.
TEMPORARY_SERVER_SETTINGS = {
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    **SERVER_WRITE_BATCHING,
}


def configure_prefect_environment() -> None:
    """Settings for the servers this process may start; must run before prefect is imported."""
    for key, value in TEMPORARY_SERVER_SETTINGS.items():
        os.environ.setdefault(key, value)


def without_flow_heartbeats() -> Any:
    """A context in which flow runs of this process send no heartbeats.

    Prefect 3.8's heartbeat thread sleeps in 1 s steps and every flow run waits for it on exit, so
    each flow and subflow run costs about a second more. A CLI run has its user watching it.
    Remove when Prefect stops joining the heartbeat thread on flow exit.
    """
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    return temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})


@contextlib.contextmanager
def api_visible_to_workers(uses_dask: bool) -> Iterator[None]:
    """Name this run's temporary server to Dask worker processes when no PREFECT_API_URL is set.

    Without it each worker starts a temporary server of its own and records its task runs there,
    out of sight of this flow run. Remove when prefect-dask forwards the parent's API URL.
    """
    from prefect.context import FlowRunContext
    from prefect.settings import PREFECT_API_URL, temporary_settings

    ctx = FlowRunContext.get()
    if not uses_dask or PREFECT_API_URL.value() or ctx is None:
        yield
        return
    with temporary_settings(updates={PREFECT_API_URL: str(ctx.client.api_url)}):
        yield


# -- Prefect 3.8 against newer FastAPI / SQLAlchemy ----------------------------------------------
# - FastAPI >= 0.151 validates an explicit JSON null against int body fields; Prefect 3.8's client
#   sends "limit": null when `prefect deploy` asks which workers are online, so deploy stops with a
#   422 after the first deployment of --all. `patch_prefect_client` sends integers instead.
# - SQLAlchemy >= 2.1 refuses the bulk insert Prefect 3.8's scheduler uses, so schedules never
#   produce runs. Nothing client-side helps: pyproject.toml pins it below 2.1.
# Remove both when the pinned Prefect release supports these library versions.
def _version(package: str) -> tuple[int, ...] | None:
    try:
        raw = metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
    return tuple(int("".join(ch for ch in piece if ch.isdigit()) or 0) for piece in raw.split(".")[:3])


def environment_warnings() -> list[str]:
    """One line per installed library version known to break part of Prefect 3.8 here."""
    prefect = _version("prefect")
    if prefect is None or prefect[:2] != (3, 8):
        return []
    notes = []
    sqlalchemy = _version("sqlalchemy")
    if sqlalchemy and sqlalchemy[:2] >= (2, 1):
        notes.append(f"SQLAlchemy {'.'.join(map(str, sqlalchemy))} is installed: Prefect 3.8's scheduler cannot create "
                     "scheduled runs with it (triggered runs work); pip install 'sqlalchemy<2.1' where the server runs")
    fastapi = _version("fastapi")
    if fastapi and fastapi[:2] >= (0, 151):
        notes.append(f"FastAPI {'.'.join(map(str, fastapi))} is installed: a Prefect 3.8 server started here rejects "
                     "`prefect deploy` after its first deployment (pipeline-cli deploy works around it); pip install 'fastapi<0.151'")
    return notes


def patch_prefect_client() -> None:
    """Send integers where Prefect 3.8's worker listing sends nulls (accepted by old and new servers alike)."""
    from prefect.client.orchestration import PrefectClient

    original = PrefectClient.read_workers_for_work_pool
    if getattr(original, "_pipeline_patched", False):
        return

    async def read_workers_for_work_pool(self: Any, work_pool_name: str, worker_filter: Any = None,
                                         offset: int | None = None, limit: int | None = None) -> Any:
        return await original(self, work_pool_name, worker_filter=worker_filter, offset=offset or 0,
                              limit=1 if limit is None else limit)

    read_workers_for_work_pool._pipeline_patched = True  # type: ignore[attr-defined]
    PrefectClient.read_workers_for_work_pool = read_workers_for_work_pool  # type: ignore[method-assign]


def prefect_cli_main() -> None:
    """`python -m pipeline_io.workarounds ARGS`: the Prefect CLI with `patch_prefect_client` applied."""
    patch_prefect_client()
    from prefect.cli import app

    sys.argv[0] = "prefect"
    sys.exit(app())


# -- MLflow ------------------------------------------------------------------------------------
# `mlflow server` starts job-execution workers (about 2.6 GB here) that the UI does not need.
MLFLOW_SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


@contextlib.contextmanager
def quiet_stderr() -> Iterator[io.StringIO]:
    """Capture what MLflow prints straight to stderr (registry messages, download progress bars)
    so that the CLI's console stays one line per event; the caller may log the captured text."""
    with contextlib.redirect_stderr(io.StringIO()) as said:
        yield said



# -- MLflow's SQLite store records absolute artifact locations ------------------------------------
# The experiment, its runs, logged models and model versions name their artifacts by absolute
# file:// URI, so a copied store read the original's models and a moved one found none. On opening a
# store's own mlflow.db whose artifacts moved with it, the recorded prefix is rewritten to where
# they are now, in one transaction. Remove if MLflow records store-relative artifact locations.
ARTIFACT_COLUMNS = (("experiments", "artifact_location"), ("runs", "artifact_uri"),
                    ("logged_models", "artifact_location"), ("model_versions", "storage_location"))


def rebase_moved_artifacts(db: "os.PathLike[str] | str", artifacts_uri: str) -> list[str]:
    """Point the artifact locations recorded in ``db`` under another `mlartifacts` folder at ``artifacts_uri``
    (the folder beside ``db``); returns the prefixes rewritten (none when the store did not move)."""
    import sqlite3

    if not os.path.isfile(db):
        return []
    with contextlib.closing(sqlite3.connect(db, timeout=60)) as conn, conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "experiments" not in tables:
            return []
        recorded = {row[0] for row in conn.execute("SELECT artifact_location FROM experiments") if row[0]}
        old = sorted(u for u in recorded if u.startswith("file://") and u.rstrip("/").endswith("/mlartifacts")
                     and u.rstrip("/") != artifacts_uri.rstrip("/"))
        for prefix in old:
            for table, column in ARTIFACT_COLUMNS:
                if table in tables:
                    conn.execute(f"UPDATE {table} SET {column} = ? || substr({column}, ?) "  # noqa: S608 - names from the tuple above
                                 f"WHERE substr({column}, 1, ?) = ?", (artifacts_uri.rstrip("/"), len(prefix.rstrip("/")) + 1,
                                                                        len(prefix.rstrip("/")), prefix.rstrip("/")))
    return old


# -- Interpreter teardown --------------------------------------------------------------------------
# After its last exit handler, the interpreter takes most of a second to tear down the modules of
# Prefect, MLflow and scikit-learn one by one, to free memory the operating system frees at once
# (benchmarks/COMMANDS_RESULTS.md). The CLI ends its process there instead. Remove if CPython's
# finalisation gets cheap for large module graphs.
@contextlib.contextmanager
def end_without_teardown() -> Iterator[None]:
    """Run the CLI; once every exit handler registered after this point has run (Prefect's and
    MLflow's flushes, temporary folders), end the process with the CLI's exit code.

    Only logging's own handler may exist before: one registered earlier by whatever runs the CLI
    (coverage, a sitecustomize, a host program) would be skipped, so then the process ends as usual.
    """
    import atexit
    import logging

    if getattr(atexit, "_ncallbacks", lambda: 2)() > 1:
        yield
        return
    code = [1]  # an exception other than SystemExit ends the process as Python would: 1

    def leave() -> None:
        logging.shutdown()  # registered before this handler, so it would run after it
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # e.g. the reader of a pipe has gone: Python itself would end with 120
                code[0] = code[0] or 120
        os._exit(code[0])

    atexit.register(leave)  # exit handlers run last-registered first: this one runs after all later ones
    try:
        yield
        code[0] = 0
    except SystemExit as exc:
        code[0] = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        raise
    except KeyboardInterrupt:
        code[0] = 130
        raise


if __name__ == "__main__":
    prefect_cli_main()
