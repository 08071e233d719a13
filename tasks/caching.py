"""Cache keys built from table versions, config sections and code versions only.

Prefect's default policy hashes task inputs (slow or unstable for frames) and ignores the
code a task calls; these keys name exactly what a stage's output depends on. A layer's input
is named by its Delta table's id and version (`pipeline_io.delta.table_key`), never by hashing
its files.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger
from prefect.serializers import JSONSerializer
from prefect.settings import get_current_settings

from pipeline_core.config import PipelineConfig
from pipeline_core.errors import StorageError
from pipeline_core.fingerprint import digest
from pipeline_io import layout
from pipeline_io.store import open_store

# A persisted result record names its own serializer, so a rewritten file could name ``pickle`` and
# run code when a cache hit reads it. Stage summaries are plain data: they are written with the
# stdlib JSON serializer, and `refuse_foreign_result` checks a record before Prefect reads it.
PLAIN_JSON = JSONSerializer(object_encoder=None, object_decoder=None)


def persisted_as_plain_json() -> dict[str, Any]:
    """Task options that persist a stage's summary as plain JSON."""
    return {"persist_result": True, "result_serializer": PLAIN_JSON}


def is_plain_json_record(content: bytes) -> bool:
    """Whether a Prefect result record was written by `PLAIN_JSON` (so reading it runs no code)."""
    try:
        serializer = json.loads(content)["metadata"]["serializer"]
        return (serializer.get("type") == "json" and serializer.get("jsonlib") == "json"
                and serializer.get("object_decoder") is None and not serializer.get("loads_kwargs"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return False


def refuse_foreign_result(stage_task: Any, config: PipelineConfig, input_fingerprint: str) -> None:
    """Raise when the result a cache hit would read is not a plain JSON record (exit 4, naming the file)."""
    settings = get_current_settings().results
    if settings.default_storage_block:  # a remote result store is its owner's to protect
        return
    key = stage_task.cache_key_fn(None, {"config": config, "input_fingerprint": input_fingerprint})
    path = Path(settings.local_storage_path).expanduser() / key
    if path.is_file() and not is_plain_json_record(path.read_bytes()):
        raise StorageError(f"{path}: a cached stage result that is not plain JSON was refused (it may have been replaced); "
                           "delete the file, or rerun with --refresh")


def stage_cache_key(stage: str, *sections: str, code_version: Any) -> Any:
    """A Prefect ``cache_key_fn`` keyed on ``parameters['input_fingerprint']``.

    A run ``as_of`` a past version has a key of its own: its result describes that version, and
    under the current input's key a later plain run would take it for the current result.
    """

    def key(context: Any, parameters: dict[str, Any]) -> str:
        config = parameters["config"]
        as_of = [f"as-of {parameters['as_of']}"] if parameters.get("as_of") else []
        return f"{stage}-" + digest(
            stage,
            config.dataset.name,
            config.store.root,
            parameters["input_fingerprint"],
            config.section_json(*sections),
            code_version(),
            *as_of,
        )

    return key


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only failures that may pass by themselves (HTTP 5xx, connection errors)."""
    from pipeline_core.errors import TransientSourceError

    try:
        state.result()
    except TransientSourceError:
        return True
    except BaseException:
        return False
    return False


@task(name="stored-fingerprint", cache_policy=NO_CACHE)
def stored_fingerprint(config: PipelineConfig, layer: str) -> str | None:
    """The table key (``<id>@v<version>``) the layer's report or metadata names, or None when the layer is absent."""
    store = open_store(config)
    name = config.dataset.name
    uri = layout.silver_paths(store, name)["report"] if layer == "silver" else layout.gold_paths(store, name)["metadata"]
    return store.read_json(uri).get("fingerprint") if store.exists(uri) else None


def run_cached(stage_task: Any, config: PipelineConfig, input_fingerprint: str, layer: str, refresh: bool = False,
               still_valid: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None, **options: Any) -> dict[str, Any]:
    """Run a cached stage; trust a cache hit only while the stored output is the one it describes.

    ``still_valid`` checks a cached summary against the world (default: the layer's stored
    table key) and returns what to refresh in it, or None to recompute. ``refresh`` recomputes
    regardless and replaces the cached result; so does any of ``options`` that is set (e.g.
    ``full_refresh``, ``as_of``), which are passed to the stage.
    """
    start = time.perf_counter()
    options = {k: v for k, v in options.items() if v}
    if refresh or options:
        get_run_logger().info("%s: %s requested; recomputing even if cached", layer, ", ".join(options) or "refresh")
        return stage_task.with_options(refresh_cache=True)(config, input_fingerprint=input_fingerprint, **options)
    refuse_foreign_result(stage_task, config, input_fingerprint)
    state = stage_task(config, input_fingerprint=input_fingerprint, return_state=True)
    summary = state.result()
    if state.name != "Cached":
        return summary
    check = still_valid or (lambda s: {} if stored_fingerprint(config, layer) == s["fingerprint"] else None)
    updates = check(summary)
    if updates is None:
        get_run_logger().info("%s: cached result no longer matches the store; recomputing", layer)
        return stage_task.with_options(refresh_cache=True)(config, input_fingerprint=input_fingerprint)
    get_run_logger().info("%s: inputs, config and code unchanged; cache hit, nothing recomputed", layer)
    return {**summary, **updates, "status": "cached", "seconds": round(time.perf_counter() - start, 3)}
