"""MLflow at the edge: tracking store, runs, the logged raw-record model and the gated registry.

Registry stages are deprecated in MLflow 3; the pipeline moves aliases instead: every new best
model becomes `challenger`, and only the promotion gate moves `champion`. Each move is kept
as a tag of the model version it names, so "which model was champion on date X" has an answer.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline_core.config import PipelineConfig
from pipeline_core.errors import ConfigError, ModelError, StorageError, environment_fault, first_line
from pipeline_core.modeling.specs import MODEL_SPECS
from pipeline_io import layout, model_integrity
from pipeline_io.registry_rest import ServerUnavailable
from pipeline_io.s3 import s3_settings_from_env
from pipeline_io.workarounds import rebase_moved_artifacts

if TYPE_CHECKING:  # the scoring stack (scikit-learn, the models) is loaded only by the commands that score
    from pipeline_core.scoring import ScoringModel

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
HISTORY_PREFIX = "alias_move:"
# "<url> <backend store URI>" of the MLflow server `pipeline-cli server start --mlflow` runs, set by the
# CLI for its own process and the processes it starts (`server_for`)
SERVER_ENV = "PIPELINE_MLFLOW_SERVER"
# tabular-pipeline is the model's loader (`pipeline_io.model_format`): no code travels with the model
_REQUIREMENTS = ["tabular-pipeline", "mlflow", "scikit-learn", "skops", "polars", "pandas", "numpy", "pyarrow", "pydantic", "pyyaml",
                 *sorted({spec.package for spec in MODEL_SPECS.values()} - {"scikit-learn"})]


def tracking_uri(config: PipelineConfig, *, create: bool = True) -> str:
    """``create``: make the store's folder for its database; a command that only reads must not, or a
    mistyped store.root would leave folders wherever it points."""
    if config.mlflow.tracking_uri:
        return config.mlflow.tracking_uri
    db = layout.tracking_db(config.store.root)
    if create:
        db.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{db}"


def require_tracking_store(config: PipelineConfig) -> str:
    """The tracking URI of a store that must already exist: a command that only reads the registry refuses a
    missing SQLite database rather than creating an empty one where a mistyped location points."""
    uri = tracking_uri(config, create=False)
    db = sqlite_path(uri)
    if db is None or db.exists():
        return uri
    if config.mlflow.tracking_uri:
        raise StorageError(f"mlflow.tracking_uri {uri}: no MLflow store there yet; train a model first (`pipeline-cli run`) "
                           "or fix mlflow.tracking_uri")
    if config.store.root.startswith("s3://"):  # its registry is local: relative to where commands run
        raise StorageError(f"store.root {config.store.root}: no MLflow store here ({db} is missing): an s3:// store's registry is "
                           "./results/mlflow.db under the folder its models were trained from; run from that folder, or set "
                           "mlflow.tracking_uri")
    raise StorageError(f"store.root {config.store.root}: no MLflow store there yet ({db} is missing); train a model first "
                       "(`pipeline-cli run`) or fix store.root")


def artifact_location(config: PipelineConfig) -> str:
    root = config.store.root.rstrip("/")
    if root.startswith("s3://"):
        return f"{root}/mlartifacts"
    return layout.artifact_dir(root).as_uri()


def use_store_s3_endpoint(config: PipelineConfig) -> None:
    """MLflow reads and writes the artifacts of an s3:// store through the endpoint the store uses (its own
    setting, `store.s3.endpoint_url`, else AWS_ENDPOINT_URL), in this process and the ones it starts."""
    if config.store.root.startswith("s3://") and (endpoint := s3_settings_from_env(config.store.s3)["endpoint"]):
        os.environ.setdefault("MLFLOW_S3_ENDPOINT_URL", endpoint)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a local ``sqlite:///`` tracking URI; None for any other store."""
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0]) if uri.startswith("sqlite:///") else None


def absolute_tracking_uri(uri: str) -> str:
    """A ``sqlite:///`` URI with its path made absolute (others as they are): what a server records,
    so that commands run from another folder recognise the store it serves, or do not."""
    db = sqlite_path(uri)
    return f"sqlite:///{db.resolve()}" if db is not None and not db.is_absolute() else uri


def same_tracking_store(a: str, b: str) -> bool:
    """Whether two tracking URIs name one store (SQLite files compared by resolved path)."""
    path_a, path_b = sqlite_path(a), sqlite_path(b)
    if path_a is not None and path_b is not None:
        return path_a.resolve() == path_b.resolve()
    return a.rstrip("/") == b.rstrip("/")


@contextmanager
def one_process_at_a_time(uri: str) -> Iterator[None]:
    """For a local SQLite store, an exclusive lock beside the database while a process creates its
    schema or the experiment: two first runs at once would otherwise both create the tables, and one
    fails inside MLflow's migrations. Servers serialise this themselves."""
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    from pipeline_io.locks import exclusive

    with exclusive(db.with_name(f"{db.name}.lock")):
        if not db.exists():
            create_tracking_db(db)
        yield


@contextmanager
def gate_turn(uri: str, name: str) -> Iterator[None]:
    """For a local SQLite store, one promotion gate at a time per registered model: an exclusive lock beside
    the database from reading the champion to moving the alias. (A tracking server cannot be locked from
    here: the gate checks again that the champion did not move before promoting.)"""
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    from pipeline_io.locks import exclusive

    digest = hashlib.sha256(name.encode()).hexdigest()[:16]  # any registered name, as a file name
    with exclusive(db.with_name(f"{db.name}.gate-{digest}.lock")):
        yield


def create_tracking_db(db: Path) -> None:
    """Create MLflow's schema in a file beside ``db`` and rename it into place once complete: a first
    run that fails while MLflow migrates (a full disk, a kill) leaves no half-made database that
    every later run would trip over."""
    import uuid

    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    # a name of its own per attempt: SQLAlchemy keeps engines per URL, and one of a failed attempt
    # would still hold the deleted file
    staging = db.with_name(f".{db.name}.creating-{uuid.uuid4().hex}")
    try:
        store = SqlAlchemyStore(f"sqlite:///{staging}", layout.artifact_dir(str(db.parent)).as_uri())
        store.engine.dispose()
        os.replace(staging, db)
    finally:
        staging.unlink(missing_ok=True)


OWNER_TAG = "pipeline.owner"  # "<host>:<pid>" of the process that opened a run


def owner_tags() -> dict[str, str]:
    import socket

    return {OWNER_TAG: f"{socket.gethostname()}:{os.getpid()}"}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def close_orphaned_runs(client: Any, experiment_id: str) -> list[str]:
    """Runs of this host left RUNNING by a process that is gone (a hard kill): marked KILLED, with the reason."""
    import socket

    host = socket.gethostname()
    closed = []
    for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000):
        owner_host, _, pid = run.data.tags.get(OWNER_TAG, "").rpartition(":")
        if owner_host == host and pid.isdigit() and not _alive(int(pid)):
            client.set_tag(run.info.run_id, "killed_reason", f"process {pid} ended without closing the run; marked on the next start")
            client.set_terminated(run.info.run_id, "KILLED")
            closed.append(run.info.run_id)
    return closed


def registered_model_name(config: PipelineConfig) -> str:
    return config.mlflow.registered_model or f"{config.dataset.name}-classifier"


def server_for(uri: str) -> str | None:
    """The MLflow server the CLI found serving the store ``uri`` names (`SERVER_ENV`), if any."""
    url, _, store = os.environ.get(SERVER_ENV, "").partition(" ")
    return url if url and store and same_tracking_store(store, uri) else None


def connect(config: PipelineConfig, *, through_server: bool = False, existing: bool = False) -> tuple[Any, str]:
    """Point MLflow at the configured store and make sure the experiment exists; fail clearly if unreachable.

    ``existing``: refuse a local store that has no database yet (`require_tracking_store`) instead of creating it.

    ``through_server``: talk to the store through the MLflow server of `server start --mlflow` when
    one serves it (`server_for`), which spares this process opening the SQLite store (its schema
    check is the slow part); back to the store itself if that server does not answer.
    """
    uri = require_tracking_store(config) if existing else tracking_uri(config)
    if through_server and (url := server_for(uri)):
        from pipeline_io.registry_rest import healthy

        # asked first: MLflow's client would retry a server that is gone for seconds before failing
        if not healthy(f"{url}/health"):
            log.warning("the MLflow server at %s did not answer; using the store directly", url)
            return _connect(config, uri)
        try:
            connected = _connect(config, url)
            log.info("tracking store %s reached through the MLflow server at %s", uri, url)
            return connected
        except StorageError as exc:
            log.warning("the MLflow server at %s did not answer (%s); using the store directly", url, exc)
    return _connect(config, uri)


def _connect(config: PipelineConfig, uri: str) -> tuple[Any, str]:
    import mlflow
    from mlflow import MlflowClient

    if uri.startswith(("http://", "https://")):
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        # MLflow prints each run's URL on stdout for a server store, which would corrupt `--json` output
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    use_store_s3_endpoint(config)
    name = config.mlflow.experiment or config.dataset.name
    try:
        with one_process_at_a_time(uri):
            if not config.mlflow.tracking_uri and not config.store.root.startswith("s3://"):
                # the store's own database: its artifacts moved with it when the store was copied or moved
                for old in rebase_moved_artifacts(layout.tracking_db(config.store.root), artifact_location(config)):
                    log.warning("mlflow.db: the store was moved or copied; artifact locations under %s now point at %s",
                                old, artifact_location(config))
            client = MlflowClient(uri, uri)
            exp = client.get_experiment_by_name(name)
            exp_id = exp.experiment_id if exp else client.create_experiment(name, artifact_location=artifact_location(config))
    except Exception as exc:
        if fault := environment_fault(exc):  # a full or read-only disk under the tracking database
            raise StorageError(f"mlflow.tracking_uri {uri}: {fault}") from None
        raise StorageError(f"mlflow.tracking_uri {uri}: tracking server unreachable or unusable ({first_line(exc)})") from None
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


def raw_record_signature(columns: list[str], optional: set[str], threshold: float) -> Any:
    """The served model's contract: every raw source column by name, of any type.

    The model cleans and types raw records itself (the same code as silver), so the signature must
    not refuse what a client naturally sends: ``pd.read_csv`` gives int64 for a whole-number column
    and float64 once it has a missing value, JSON gives either. Optional columns (the id) may be absent.
    """
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, ParamSchema, ParamSpec, Schema

    inputs = Schema([ColSpec(AnyType(), name, required=name not in optional) for name in columns])
    outputs = Schema([ColSpec("double", "probability"), ColSpec("long", "prediction", required=False),
                      ColSpec("string", "quarantine_reason", required=False)])  # a record predict would quarantine: no answer, a reason
    return ModelSignature(inputs, outputs, ParamSchema([ParamSpec("threshold", "double", float(threshold))]))


def log_raw_record_model(model: Any, input_example: Any, optional_columns: set[str] | None = None) -> Any:
    """Log the pyfunc (files in `model_format`, loaded by that module) with signature, input example and requirements."""
    import tempfile

    import mlflow

    from pipeline_io import model_format

    signature = raw_record_signature(list(input_example.columns), optional_columns or set(), model.threshold)
    with tempfile.TemporaryDirectory(prefix="pipeline-model-") as tmp:
        data = model_format.write_model_files(model, Path(tmp) / "raw_record_model")
        return mlflow.pyfunc.log_model(
            name="model", loader_module=model_format.LOADER_MODULE, data_path=str(data), signature=signature,
            input_example=input_example, pip_requirements=pip_requirements(),
        )


def version_number(value: str, what: str, name: str | None = None) -> str:
    """A model version as the registry spells it ("01" -> "1"): the alias history and rollbacks compare versions
    as text, so a version taken from the user is normalised before it is looked up or recorded."""
    text = str(value).strip()
    if not (text.isascii() and text.isdigit()) or int(text) == 0:
        listing = f"`pipeline-cli models describe {name}` lists them" if name else "`pipeline-cli models describe NAME` lists them"
        raise ConfigError(f"{what}: a model version is a whole number from 1, e.g. 1; {listing}")
    return str(int(text))


def _version_key(version: Any) -> str:
    # histories written before versions were normalised may hold "01" for version 1
    text = str(version)
    return str(int(text)) if text.isascii() and text.isdigit() else text


def registered_model(client: Any, name: str) -> Any:
    """The registered model ``name``, or a ModelError that points at the list of names."""
    try:
        return client.get_registered_model(name)
    except ServerUnavailable:
        raise  # not an answer: the caller reads the store instead
    except Exception:
        raise ModelError(f"no registered model '{name}'; `pipeline-cli models list` shows the names") from None


def alias_version(client: Any, name: str, alias: str) -> str | None:
    """The version an alias names, or None (no such model or alias)."""
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except Exception:  # MlflowException: no such model or alias
        return None


def champion_version(client: Any, name: str) -> Any | None:
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except Exception:  # MlflowException: no such model or alias
        return None


def holdout_metrics(client: Any, mv: Any) -> dict[str, float]:
    """A version's holdout scores. A refitted version's own run fitted the holdout too, so they are read from the run
    that scored it before the refit (older refit runs carry no copy of them)."""
    run_id = mv.tags.get("holdout_run_id") or mv.tags.get("run_id") or mv.run_id
    return dict(client.get_run(run_id).data.metrics) if run_id else {}


def record_alias(client: Any, name: str, alias: str, version: str, metrics: dict[str, float], reason: str,
                 **facts: str) -> dict[str, Any]:
    """Move an alias and keep the move as a tag of the version (one tag per move, never rewritten)."""
    version = _version_key(version)
    client.set_registered_model_alias(name, alias, version)
    entry = {"at": datetime.now(timezone.utc).isoformat(), "alias": alias, "version": version,
             "metrics": {k: round(v, 6) for k, v in metrics.items()}, "reason": reason, **facts}
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    client.set_model_version_tag(name, version, f"{HISTORY_PREFIX}{stamp}:{alias}", json.dumps(entry))
    return entry


def alias_history(client: Any, name: str) -> list[dict[str, Any]]:
    """Every alias move of a registered model, oldest first."""
    entries = []
    for mv in client.search_model_versions(f"name = '{name}'"):
        entries += [json.loads(v) for k, v in mv.tags.items() if k.startswith(HISTORY_PREFIX)]
    return sorted(entries, key=lambda e: e["at"])


def model_history(client: Any, name: str) -> list[dict[str, Any]]:
    """`alias_history` of a model a person named: an unknown name is a mistake, not a model without moves."""
    registered_model(client, name)
    return alias_history(client, name)


def champion_line(history: list[dict[str, Any]]) -> list[str]:
    """The champions in the order they took over, with rolled-back ones taken off: the last is the
    current champion, the one before it is where a rollback goes."""
    line: list[str] = []
    for entry in history:
        if entry["alias"] != CHAMPION:
            continue
        version = _version_key(entry["version"])
        if entry.get("rollback_of") is not None and line and line[-1] == _version_key(entry["rollback_of"]):
            line.pop()
        if not line or line[-1] != version:
            line.append(version)
    return line


def rollback(client: Any, name: str, reason: str) -> dict[str, Any]:
    """Move `champion` back to the previous champion, kept in the history as a rollback."""
    current = champion_version(client, name)
    if current is None:
        raise ModelError(f"model '{name}' has no champion to roll back; `pipeline-cli models list` shows the names")
    line = champion_line(alias_history(client, name))
    if len(line) < 2 or line[-1] != _version_key(current.version):
        raise ModelError(f"model '{name}': version {current.version} is the only champion it has had; nothing to roll back to "
                         f"(`pipeline-cli models promote {name} VERSION` picks one by hand)")
    target = line[-2]
    mv = client.get_model_version(name, target)
    metrics = holdout_metrics(client, mv)
    entry = record_alias(client, name, CHAMPION, target, {k: v for k, v in metrics.items() if "_at_" not in k},
                         f"rollback from version {current.version}: {reason}", rollback_of=str(current.version))
    return {**entry, "previous": str(current.version)}


def registered_models(client: Any) -> list[Any]:
    """Every registered model: MlflowClient returns one page at a time."""
    models: list[Any] = []
    token = None
    while True:
        page = client.search_registered_models(max_results=1000, page_token=token)
        models.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return models


def list_models(client: Any) -> list[dict[str, Any]]:
    """Registered models with their aliases and newest version."""
    out = []
    for rm in registered_models(client):
        versions = client.search_model_versions(f"name = '{rm.name}'")
        out.append({"name": rm.name, "latest_version": max((int(v.version) for v in versions), default=None),
                    "aliases": {a: str(v) for a, v in (getattr(rm, "aliases", {}) or {}).items()}, "versions": len(versions)})
    return sorted(out, key=lambda m: m["name"])


def describe_model(client: Any, name: str) -> dict[str, Any]:
    """Every version of a model with its aliases, threshold, run and holdout metrics."""
    rm = registered_model(client, name)
    aliases: dict[str, list[str]] = {}
    for alias, version in (getattr(rm, "aliases", {}) or {}).items():
        aliases.setdefault(str(version), []).append(alias)
    versions = []
    for v in sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version)):
        run_id = v.tags.get("run_id") or v.run_id
        metrics = holdout_metrics(client, v)
        versions.append({"version": str(v.version), "aliases": aliases.get(str(v.version), []), "run_id": run_id,
                         "threshold": v.tags.get("threshold"), "created": v.creation_timestamp,
                         "metrics": {k: metrics[k] for k in sorted(metrics) if "_at_" not in k and not k.startswith("cv_")}})
    return {"name": name, "versions": versions}


def promote(client: Any, name: str, version: str, reason: str) -> dict[str, Any]:
    """A manual champion move, kept in the history like the gate's."""
    version = version_number(version, f"VERSION {version!r}", name)
    registered_model(client, name)  # else "no version" would point at a describe that fails too
    try:
        mv = client.get_model_version(name, version)
    except Exception:
        raise ModelError(f"model '{name}' has no version {version}; `pipeline-cli models describe {name}` lists them") from None
    metrics = holdout_metrics(client, mv)
    return record_alias(client, name, CHAMPION, version, {k: v for k, v in metrics.items() if "_at_" not in k}, reason)


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


def log_outcome_run(experiment_id: str, batch: dict[str, Any], primary: str) -> str:
    """One run per batch that got outcomes: its realized metrics, tagged with the model version and the batch."""
    from mlflow import MlflowClient

    client = MlflowClient()
    run = client.create_run(experiment_id, tags={
        "mlflow.runName": f"outcomes-{Path(batch['output']).stem}{'-shadow' if batch.get('role') == 'shadow' else ''}"[:250],
        "kind": "outcomes", "role": batch.get("role", "served"), "model_name": batch["model_name"],
        "model_version": batch["model_version"], "output": batch["output"][:500], "inference_timestamp": batch["inference_timestamp"],
        "primary_metric": primary})
    run_id = run.info.run_id
    client.log_batch(run_id, metrics=[_metric(f"realized_{k}", v) for k, v in batch["metrics"].items()]
                     + [_metric("labelled_rows", batch["labelled_rows"]), _metric("labelled_positives", batch["positives"])])
    client.set_terminated(run_id, "FINISHED")
    return run_id


def _metric(key: str, value: float) -> Any:
    import time

    from mlflow.entities import Metric

    safe = "".join(ch if ch.isalnum() or ch in "_-. /" else "_" for ch in key)
    return Metric(safe, value, int(time.time() * 1000), 0)


# -- the model a scoring run loads --------------------------------------------------

MODEL_SCHEMES = ("models:/", "runs:/")


def default_model_uri(config: PipelineConfig) -> str:
    return f"models:/{registered_model_name(config)}@{config.inference.model_alias}"


LOGGED_MODEL_ID = re.compile(r"m-[0-9a-f]{32}")


def check_model_uri(uri: str, argument: str = "--model") -> tuple[str | None, str | None, str | None]:
    """(name, version, alias) of a model URI, refused by its form alone before any registry is opened; the
    error names ``argument``, the option or argument the URI came in."""
    if not uri.startswith(MODEL_SCHEMES):
        raise ConfigError(f"{argument} {uri!r}: use models:/<name>/<version>, models:/<name>@<alias> or runs:/<run id>/model")
    if not uri.startswith("models:/"):
        return None, None, None
    ref = uri[len("models:/"):]
    if LOGGED_MODEL_ID.fullmatch(ref):  # MLflow 3's own URI of a logged model: like runs:/, not a registered version
        return None, None, None
    name, at, alias = ref.partition("@")
    version = None
    if not at:
        name, _, version = ref.partition("/")
    if not name or not (alias or version):
        shown = name or "NAME"
        raise ConfigError(f"{argument} {uri!r}: name a version, e.g. models:/{shown}/1 or models:/{shown}@champion")
    return name, version_number(version, f"{argument} {uri!r}", name) if version else None, alias or None


def registered_version(client: Any, uri: str, argument: str = "--model") -> tuple[str | None, str | None]:
    """(name, version) that a models:/ URI points at; (None, None) for runs:/."""
    name, version, alias = check_model_uri(uri, argument)
    if alias is not None:
        try:
            return name, str(client.get_model_version_by_alias(name, alias).version)
        except Exception:
            raise ModelError(f"model '{name}' has no version with alias '{alias}'; train one (`pipeline-cli train`), "
                             f"promote one (`pipeline-cli models promote`) or name a version (models:/{name}/VERSION)") from None
    return name, version


def load_scoring_model(uri: str, client: Any) -> ScoringModel:
    """The pyfunc behind a models:/ or runs:/ URI, with its registry name, version and input columns."""

    name, version = registered_version(client, uri)
    try:
        # a registered version is loaded only as it was registered; a run's model as given, if in the safe format
        pyfunc = model_integrity.load_verified(client, name, version, uri) if name and version else model_integrity.load_unregistered(uri)
    except (StorageError, ModelError):
        raise
    except Exception as exc:
        first = first_line(exc)
        raise ModelError(f"{uri}: cannot load it ({first}); `pipeline-cli models describe NAME` lists the versions") from None
    inner = pyfunc.get_raw_model()
    if not all(hasattr(inner, a) for a in ("cleaning", "features", "pipeline", "threshold")):
        raise ModelError(f"{uri}: not a model logged by this pipeline (it lacks the raw-record cleaning and features)")
    schema = pyfunc.metadata.get_input_schema()
    columns = schema.input_names() if schema is not None else list(inner.cleaning["renames"])
    from pipeline_core.scoring import ScoringModel

    return ScoringModel(uri, name, version, pyfunc.metadata.run_id, inner, [str(c) for c in columns])
