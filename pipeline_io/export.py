"""Local export of a registered model: the MLflow model directory, its metadata, the fitted
preprocessor (skops, never a bare pickle) and the config snapshot, in one folder written atomically.

Layout of ``<export_dir>/<registered name>-v<version>/``::

    model/                 the logged MLflow model (raw record -> probability); mlflow.pyfunc.load_model(path)
    model_metadata.json    hyperparameters, metrics, threshold, timestamps, duration, model URIs and version
    preprocessor.skops     the fitted scikit-learn preprocessing; load with `load_preprocessor`
    config_snapshot.json   the resolved pipeline config of the training run
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipeline_core.config import PipelineConfig
from pipeline_core.errors import ConfigError, DataError, StorageError
from pipeline_io import model_integrity
from pipeline_io.atomic import atomic_path

log = logging.getLogger(__name__)

PREPROCESSOR_FILE = "preprocessor.skops"
# Types skops does not trust by default that a preprocessor of this project may hold; anything else is refused.
KNOWN_PREPROCESSOR_TYPES = frozenset({"builtins.object", "numpy.dtype"})


def export_root(config: PipelineConfig) -> Path:
    """The export folder, created if missing; training calls it first, so a bad folder fails before any model is trained."""
    folder = config.training.export_dir or ""
    if "://" in folder:
        raise ConfigError(f"training.export_dir {folder!r}: must be a local folder (the MLflow store holds the remote copy)")
    root = Path(folder).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"training.export_dir {folder}: cannot create the folder ({exc.strerror or exc}); "
                           "choose a writable folder") from None
    return root


def export_registered_model(config: PipelineConfig, outcome: dict[str, Any], best: dict[str, Any]) -> Path:
    """Write the export folder of the version `outcome` registered; replaces an earlier export of that version."""
    import mlflow
    import skops.io

    name, version = outcome["registered_model"], str(outcome["version"])
    target = export_root(config) / f"{name}-v{version}"
    if target.exists() and not is_export_of(target, mlflow.get_tracking_uri(), name, version):
        raise StorageError(f"{target}: holds something other than this store's export of {name} v{version}, and is left as it is; "
                           f"the model is registered as models:/{name}/{version}: move that folder away, or pick another --export folder")
    with atomic_path(target) as staging:
        staging.mkdir()
        local = model_integrity.verified_copy(mlflow.MlflowClient(), name, version, staging / "model", f"models:/{name}/{version}")
        preprocessor = mlflow.pyfunc.load_model(str(local)).get_raw_model().pipeline.named_steps["pre"]
        skops.io.dump(preprocessor, staging / PREPROCESSOR_FILE)
        (staging / "model_metadata.json").write_text(json.dumps(export_metadata(config, outcome, best), indent=2, default=str))
        (staging / "config_snapshot.json").write_text(json.dumps(config.model_dump(mode="json", by_alias=True), indent=2))
    log.info("exported %s v%s to %s", name, version, target)
    return target


EXPORT_FILES = frozenset({"model", "model_metadata.json", PREPROCESSOR_FILE, "config_snapshot.json"})


def is_export_of(folder: Path, tracking_uri: str, name: str, version: str) -> bool:
    """Whether ``folder`` is an export of exactly this version from this tracking store, with nothing of anyone else's in it
    (what a re-export may replace): versions of two stores share names, and a folder may hold a person's own files."""
    try:
        meta = json.loads((folder / "model_metadata.json").read_text())
        names = {p.name for p in folder.iterdir()}
    except (OSError, ValueError):
        return False
    return (isinstance(meta, dict) and names <= EXPORT_FILES and meta.get("tracking_uri") == tracking_uri
            and meta.get("model_uri") == f"models:/{name}/{version}")


def export_metadata(config: PipelineConfig, outcome: dict[str, Any], best: dict[str, Any]) -> dict[str, Any]:
    import mlflow

    run = mlflow.MlflowClient().get_run(best["run_id"])
    started = datetime.fromtimestamp(run.info.start_time / 1000, timezone.utc).isoformat()
    ended = datetime.fromtimestamp(run.info.end_time / 1000, timezone.utc).isoformat() if run.info.end_time else None
    return {
        "registered_model": outcome["registered_model"], "version": str(outcome["version"]),
        "model_uri": f"models:/{outcome['registered_model']}/{outcome['version']}", "logged_model_uri": best["model_uri"],
        "run_id": best["run_id"], "tracking_uri": mlflow.get_tracking_uri(), "model": best["name"],
        "hyperparameters": best["params"], "threshold": best["threshold"], "metrics": best["metrics"],
        "metrics_at_0.5": best.get("metrics_at_0.5"), "primary_metric": config.training.primary_metric,
        "cv_mean": best["cv_mean"], "cv_std": best["cv_std"], "duration_seconds": best["seconds"],
        # refitted on training + holdout: `metrics` were scored before the refit, by the model of `holdout_run_id`
        "refit_full": bool(best.get("refit_full")), "holdout_run_id": best.get("holdout_run_id"), "rows_fitted": best.get("rows_fitted"),
        "promoted": outcome["promoted"], "registry_reason": outcome["reason"],
        "dataset": config.dataset.name, "feature_version": run.data.tags.get("feature_version"),
        "data_fingerprint": run.data.tags.get("data_fingerprint"), "git_commit": run.data.tags.get("git_commit"),
        "trained_at": started, "run_ended_at": ended, "exported_at": datetime.now(timezone.utc).isoformat(),
    }


def load_preprocessor(path: str | Path) -> Any:
    """Load an exported preprocessor, trusting only scikit-learn's types and the few known extras."""
    import skops.io

    untrusted = set(skops.io.get_untrusted_types(file=path))
    unknown = sorted(untrusted - KNOWN_PREPROCESSOR_TYPES)
    if unknown:
        raise DataError(f"{path}: refusing to load unknown types {unknown}")
    return skops.io.load(path, trusted=sorted(untrusted))
