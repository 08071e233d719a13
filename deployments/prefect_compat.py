"""Known incompatibilities between Prefect 3.8 and newer releases of the libraries it runs on.

Seen here (pyproject.toml pins them away; an environment that already has them gets a warning):
- FastAPI >= 0.151 validates an explicit JSON ``null`` against ``int`` body fields. Prefect 3.8's
  client sends ``"limit": null, "offset": null`` when it asks which workers are online, so
  ``prefect deploy`` stops with a 422 after creating the first deployment of ``--all``.
- SQLAlchemy >= 2.1 refuses the bulk insert Prefect 3.8's scheduler uses for scheduled flow runs
  ("Can't evaluate bulk DML statement"), so schedules never produce runs; triggered runs work.

``python -m deployments.prefect_compat ARGS`` runs the Prefect CLI with the client-side fix for
the first (explicit integers instead of nulls, which every server accepts). Nothing can be done
client-side for the second: the server needs SQLAlchemy < 2.1.
"""

from __future__ import annotations

import sys
from importlib import metadata
from typing import Any


def _version(package: str) -> tuple[int, ...] | None:
    try:
        raw = metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
    parts = []
    for piece in raw.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


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
    """Send integers where Prefect 3.8's worker listing sends nulls (accepted by old and new servers alike).

    Only `prefect deploy` calls this in the patched process, to ask whether any worker is online:
    a limit of 1 answers that and stays within any server's maximum page size.
    """
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


def main() -> None:
    patch_prefect_client()
    from prefect.cli import app

    sys.argv[0] = "prefect"
    sys.exit(app())


if __name__ == "__main__":
    main()
