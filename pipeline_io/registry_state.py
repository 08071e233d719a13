"""What a cached training result depends on, and whether the registry still backs it.

Kept free of the training libraries: a rerun that hits the cache imports MLflow's client at most,
and not even that while the local tracking database is byte for byte as training left it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pipeline_core.config import PipelineConfig
from pipeline_io import registry
from pipeline_io.atomic import write_bytes_atomic

# Larger tracking databases are asked through MLflow rather than hashed.
SIGNATURE_MAX_BYTES = 64 * 2**20


def registry_signature(config: PipelineConfig) -> str | None:
    """Digest of the tracking database's bytes when it is a local SQLite file; None when it cannot prove anything.

    Equal digests mean that nothing in the registry changed in between, so a cached training result
    can be trusted without importing MLflow, most of a cached rerun's time. A server, a
    transaction in progress or a very large file gives None: ask the registry instead.
    """
    path = _sqlite_path(config)
    if path is None or not path.is_file() or Path(f"{path}-journal").exists():
        return None
    files = [f for f in (path, Path(f"{path}-wal")) if f.is_file()]
    if sum(f.stat().st_size for f in files) > SIGNATURE_MAX_BYTES:
        return None
    digest = hashlib.blake2b(digest_size=16)
    for f in files:
        digest.update(f.read_bytes())
    return digest.hexdigest()


def _sqlite_path(config: PipelineConfig) -> Path | None:
    return registry.sqlite_path(registry.tracking_uri(config))


def registry_view(config: PipelineConfig, summary: dict[str, Any]) -> dict[str, Any] | None:
    """The registry's present view of an earlier training result, or None when it no longer holds that version.

    A cached result is only worth reusing while the model it registered is still there, from the same run.
    """
    signature = registry_signature(config)
    if signature is not None and signature == summary.get("registry_signature"):
        return {}  # the registry is exactly as training left it: the summary's view still holds
    model = {"registered_model": summary["registered_model"], "version": summary["version"], "run_id": summary["models"][0]["run_id"]}
    confirmed = _read_confirmation(config)
    if signature is not None and confirmed.get("registry_signature") == signature and confirmed.get("model") == model:
        return {"champion_version": confirmed.get("champion_version")}  # confirmed below, and nothing written since
    from mlflow.exceptions import MlflowException

    client, _ = registry.connect(config)
    try:
        registered = client.get_model_version(model["registered_model"], model["version"])
    except MlflowException:
        return None
    if registered.tags.get("run_id") != model["run_id"]:
        return None
    view = {"champion_version": _champion(client, model["registered_model"])}
    if signature is not None:
        # Scoring logs its batches to MLflow, which changes the database after training; remembering
        # what the registry said for this signature spares the next cached run asking again.
        # The signature was taken before the questions, so a write in between leaves it stale.
        _write_confirmation(config, {"model": model, "registry_signature": signature, **view})
    return view


def _confirmation_path(config: PipelineConfig) -> Path | None:
    path = _sqlite_path(config)
    return None if path is None else path.with_name(f"{path.name}.training-check.json")


def _read_confirmation(config: PipelineConfig) -> dict[str, Any]:
    path = _confirmation_path(config)
    try:
        return json.loads(path.read_text()) if path is not None else {}
    except (OSError, ValueError):
        return {}


def _write_confirmation(config: PipelineConfig, data: dict[str, Any]) -> None:
    path = _confirmation_path(config)
    if path is None:
        return
    try:
        write_bytes_atomic(path, json.dumps(data).encode())
    except OSError:
        pass  # only a shortcut: without it the next run asks MLflow


def _champion(client: Any, name: str) -> str | None:
    champion = registry.champion_version(client, name)
    return str(champion.version) if champion else None


def settled_view(config: PipelineConfig, client: Any, name: str) -> dict[str, Any]:
    """What a finished training run leaves for `registry_view`: the database's signature, then the champion.

    In this order, a change between the two reads leaves a signature that no longer matches.
    """
    signature = registry_signature(config)
    return {"registry_signature": signature, "champion_version": _champion(client, name)}
