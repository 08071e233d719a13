"""MLflow at the edge: tracking store, runs, the logged raw-record model and the gated registry.

Registry stages are deprecated in MLflow 3; the pipeline moves aliases instead: every new best
model becomes `challenger`, and only the promotion gate moves `champion`. Each move is kept
as a tag of the model version it names, so "which model was champion on date X" has an answer.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipeline_core.config import PipelineConfig
from pipeline_core.errors import StorageError
from pipeline_core.storage import s3_settings_from_env

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_PREFIX = "alias_move:"
_REQUIREMENTS = ["mlflow", "scikit-learn", "xgboost", "polars", "pandas", "numpy", "pyarrow", "pydantic", "pyyaml"]


def tracking_uri(config: PipelineConfig) -> str:
    if config.mlflow.tracking_uri:
        return config.mlflow.tracking_uri
    root = config.store.root
    folder = Path("results") if root.startswith("s3://") else Path(root)
    folder = folder.expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def artifact_location(config: PipelineConfig) -> str:
    root = config.store.root.rstrip("/")
    if root.startswith("s3://"):
        endpoint = s3_settings_from_env(config.store.s3)["endpoint"]
        if endpoint:
            os.environ.setdefault("MLFLOW_S3_ENDPOINT_URL", endpoint)
        return f"{root}/mlartifacts"
    return (Path(root).expanduser().resolve() / "mlartifacts").as_uri()


def registered_model_name(config: PipelineConfig) -> str:
    return config.mlflow.registered_model or f"{config.dataset.name}-classifier"


def connect(config: PipelineConfig) -> tuple[Any, str]:
    """Point MLflow at the configured store and make sure the experiment exists; fail clearly if unreachable."""
    import mlflow
    from mlflow import MlflowClient

    uri = tracking_uri(config)
    if uri.startswith(("http://", "https://")):
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(uri, uri)
    name = config.mlflow.experiment or config.dataset.name
    try:
        exp = client.get_experiment_by_name(name)
        exp_id = exp.experiment_id if exp else client.create_experiment(name, artifact_location=artifact_location(config))
    except Exception as exc:
        raise StorageError(f"mlflow.tracking_uri {uri}: tracking server unreachable or unusable ({str(exc).splitlines()[0][:200]})") from None
    return client, exp_id


def pip_requirements() -> list[str]:
    """Explicit requirements: faster than MLflow's inference and free of unrelated packages."""
    reqs = []
    for pkg in _REQUIREMENTS:
        try:
            reqs.append(f"{pkg}=={importlib.metadata.version(pkg)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return reqs


def log_raw_record_model(model: Any, input_example: Any) -> Any:
    """Log the pyfunc with signature, input example, explicit requirements and the core package as code."""
    import mlflow
    from mlflow.models import infer_signature

    import pipeline_core

    output = model.predict(None, input_example)
    signature = infer_signature(input_example, output, params={"threshold": float(model.threshold)})
    return mlflow.pyfunc.log_model(
        name="model", python_model=model, signature=signature, input_example=input_example,
        pip_requirements=pip_requirements(), code_paths=[str(Path(pipeline_core.__file__).parent)],
    )


def champion_version(client: Any, name: str) -> Any | None:
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except Exception:  # MlflowException: no such model or alias
        return None


def gate_decision(candidate: dict[str, float], champion: dict[str, float] | None, primary: str,
                  minimums: dict[str, float]) -> tuple[bool, str]:
    """Promote only a model that meets every minimum and beats the champion on the primary metric."""
    missed = [f"{k}={candidate.get(k, float('nan')):.4f} < {v}" for k, v in minimums.items() if not candidate.get(k, float("-inf")) >= v]
    if missed:
        return False, "below the configured minimum: " + ", ".join(missed)
    if champion is None:
        return True, "no champion yet and every minimum met"
    if candidate[primary] > champion[primary]:
        return True, f"{primary} {candidate[primary]:.4f} beats the champion's {champion[primary]:.4f} on this holdout"
    return False, f"{primary} {candidate[primary]:.4f} does not beat the champion's {champion[primary]:.4f} on this holdout"


def record_alias(client: Any, name: str, alias: str, version: str, metrics: dict[str, float], reason: str) -> dict[str, Any]:
    """Move an alias and keep the move as a tag of the version (one tag per move, never rewritten)."""
    client.set_registered_model_alias(name, alias, version)
    entry = {"at": datetime.now(timezone.utc).isoformat(), "alias": alias, "version": str(version),
             "metrics": {k: round(v, 6) for k, v in metrics.items()}, "reason": reason}
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    client.set_model_version_tag(name, version, f"{HISTORY_PREFIX}{stamp}:{alias}", json.dumps(entry))
    return entry


def alias_history(client: Any, name: str) -> list[dict[str, Any]]:
    """Every alias move of a registered model, oldest first."""
    entries = []
    for mv in client.search_model_versions(f"name = '{name}'"):
        entries += [json.loads(v) for k, v in mv.tags.items() if k.startswith(HISTORY_PREFIX)]
    return sorted(entries, key=lambda e: e["at"])


def list_models(client: Any) -> list[dict[str, Any]]:
    """Registered models with their aliases and newest version."""
    out = []
    for rm in client.search_registered_models():
        versions = client.search_model_versions(f"name = '{rm.name}'")
        out.append({"name": rm.name, "latest_version": max((int(v.version) for v in versions), default=None),
                    "aliases": {a: str(v) for a, v in (getattr(rm, "aliases", {}) or {}).items()}, "versions": len(versions)})
    return sorted(out, key=lambda m: m["name"])


def describe_model(client: Any, name: str) -> dict[str, Any]:
    """Every version of a model with its aliases, threshold, run and holdout metrics."""
    from pipeline_core.errors import ConfigError

    try:
        rm = client.get_registered_model(name)
    except Exception:
        raise ConfigError(f"no registered model '{name}'; `pipeline-cli models list` shows the names") from None
    aliases: dict[str, list[str]] = {}
    for alias, version in (getattr(rm, "aliases", {}) or {}).items():
        aliases.setdefault(str(version), []).append(alias)
    versions = []
    for v in sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version)):
        run_id = v.tags.get("run_id") or v.run_id
        metrics = client.get_run(run_id).data.metrics if run_id else {}
        versions.append({"version": str(v.version), "aliases": aliases.get(str(v.version), []), "run_id": run_id,
                         "threshold": v.tags.get("threshold"), "created": v.creation_timestamp,
                         "metrics": {k: metrics[k] for k in sorted(metrics) if "_at_" not in k and not k.startswith("cv_")}})
    return {"name": name, "versions": versions}


def promote(client: Any, name: str, version: str, reason: str) -> dict[str, Any]:
    """A manual champion move, kept in the history like the gate's."""
    from pipeline_core.errors import ConfigError

    try:
        mv = client.get_model_version(name, str(version))
    except Exception:
        raise ConfigError(f"model '{name}' has no version {version}") from None
    metrics = client.get_run(mv.tags.get("run_id") or mv.run_id).data.metrics
    return record_alias(client, name, CHAMPION, str(version), {k: v for k, v in metrics.items() if "_at_" not in k}, reason)


def log_inference_run(experiment_id: str, summary: dict[str, Any], markdown: str) -> str:
    """One run per scored batch: counts, drift effect sizes and the report, tagged with the model version."""
    from mlflow import MlflowClient

    client = MlflowClient()
    model = summary["model"]
    run = client.create_run(experiment_id, tags={
        "mlflow.runName": f"inference-{summary['inference_timestamp'][:19]}", "kind": "inference",
        "model_uri": model["uri"], "model_name": model.get("name") or "", "model_version": model.get("version") or "",
        "drift_status": summary["drift_status"], "input": summary["input"][:500], "output": summary["output"][:500]})
    run_id = run.info.run_id
    drift = summary["drift"]
    metrics = {k: float(summary[k]) for k in ("rows_in", "rows_scored", "rows_quarantined", "positives", "seconds") if summary.get(k) is not None}
    if summary.get("positive_rate") is not None:
        metrics["positive_rate"] = float(summary["positive_rate"])
    for f in drift.get("features", []):
        metrics[f"psi_{f['name']}"] = float(f["psi"])
    if drift.get("prediction", {}).get("psi") is not None:
        metrics["psi_probability"] = float(drift["prediction"]["psi"])
    client.log_batch(run_id, metrics=[_metric(k, v) for k, v in metrics.items()])
    client.log_dict(run_id, drift, "drift.json")
    client.log_text(run_id, markdown, "drift.md")
    client.set_terminated(run_id, "FINISHED")
    return run_id


def _metric(key: str, value: float) -> Any:
    import time

    from mlflow.entities import Metric

    safe = "".join(ch if ch.isalnum() or ch in "_-. /" else "_" for ch in key)
    return Metric(safe, value, int(time.time() * 1000), 0)
