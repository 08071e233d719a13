"""Cache keys built from content fingerprints, config sections and code versions only.

Prefect's default policy hashes task inputs (slow or unstable for frames) and ignores the
code a task calls; these keys name exactly what a stage's output depends on.
"""

from __future__ import annotations

from typing import Any

from pipeline_core.fingerprint import digest


def stage_cache_key(stage: str, *sections: str, code_version: Any) -> Any:
    """A Prefect ``cache_key_fn`` keyed on ``parameters['input_fingerprint']``."""

    def key(context: Any, parameters: dict[str, Any]) -> str:
        config = parameters["config"]
        return f"{stage}-" + digest(
            stage,
            config.dataset.name,
            config.store.root,
            parameters["input_fingerprint"],
            config.section_json(*sections),
            code_version(),
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
