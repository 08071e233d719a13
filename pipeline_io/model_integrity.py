"""A registered model is loaded only as it was registered.

The model's files live in the artifact store (a folder or a bucket), which more hands can write than
the registry. They are data (`pipeline_io.model_format`: JSON and skops with a type allow-list), and
at registration the sha256 of every file of the version is recorded as a tag of the version; the
pipeline downloads a version, checks every file against that record and the format, and only then
loads the copy it checked. A `runs:/` URI has no registered record: only its format is checked.
A version refitted on all rows also records the digests of the model it was judged by before the
refit (``holdout_artifact_sha256``), which the promotion gate rescores as the champion.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from pipeline_core.errors import PipelineError, StorageError, environment_fault, first_line
from pipeline_io import model_format

log = logging.getLogger(__name__)

DIGEST_TAG = "artifact_sha256"
HOLDOUT_DIGEST_TAG = "holdout_artifact_sha256"  # of the model a refitted version was judged by (its run's `model`)


def file_digests(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ``root``."""
    digests = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        digests[path.relative_to(root).as_posix()] = h.hexdigest()
    return digests


def digest_mismatches(recorded: dict[str, str], found: dict[str, str]) -> list[str]:
    """What differs between the recorded and the found files: changed, added or missing, by path."""
    changed = [f"{p} (changed)" for p in recorded if p in found and found[p] != recorded[p]]
    added = [f"{p} (added)" for p in found if p not in recorded]
    missing = [f"{p} (missing)" for p in recorded if p not in found]
    return changed + added + missing


def _download(uri: str, dest: Path) -> Path:
    import mlflow

    from pipeline_io.workarounds import quiet_stderr

    with quiet_stderr():  # MLflow draws a download progress bar on stderr
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dest)))


def record_digests(client: Any, name: str, version: str, work_dir: Path) -> dict[str, str]:
    """Record the digest of every file of a just-registered version, and its format, on the version
    (``work_dir``: scratch space)."""
    local = _download(f"models:/{name}/{version}", work_dir)
    model_format.check_loadable(local, f"models:/{name}/{version}")
    digests = file_digests(local)
    client.set_model_version_tag(name, version, DIGEST_TAG, json.dumps(digests, sort_keys=True, separators=(",", ":")))
    client.set_model_version_tag(name, version, model_format.FORMAT_TAG, model_format.FORMAT)
    return digests


def verified_copy(client: Any, name: str, version: str, dest: Path, shown: str) -> Path:
    """A local copy of a registered version whose files match the digests recorded at registration.

    ``shown`` names the model in the error. A version registered before digests were recorded
    is copied with a warning.
    """
    recorded = client.get_model_version(name, version).tags.get(DIGEST_TAG)
    local = _download(f"models:/{name}/{version}", dest)
    if recorded is None:
        log.warning("%s: version %s has no recorded artifact digests (registered by an older release); its files are not checked",
                    shown, version)
    else:
        _refuse_changed(json.loads(recorded), local, f"{shown}: the files of version {version}")
    model_format.check_loadable(local, shown)
    return local


def _refuse_changed(recorded: dict[str, str], local: Path, what: str,
                    todo: str = "restore the artifact store or register a retrained model") -> None:
    if differences := digest_mismatches(recorded, file_digests(local)):
        raise StorageError(f"{what} differ from those registered ({', '.join(differences[:3])}); refusing to load them; {todo}")


def run_model_digests(run_id: str, work_dir: Path) -> dict[str, str]:
    """The digests of a run's logged `model`, for a registered version that was judged by it (``work_dir``: scratch)."""
    uri = f"runs:/{run_id}/model"
    local = _download(uri, work_dir)
    model_format.check_loadable(local, uri)
    return file_digests(local)


# the champion is in doubt, not the candidate: a person decides which model serves
_JUDGED_TODO = "restore that run and its artifacts, or move the champion by hand (`pipeline-cli models promote`)"


def load_judged_model(run_id: str, recorded: str, shown: str) -> Any:
    """The pyfunc of a run's `model`, loaded only if its files match ``recorded`` (JSON of `run_model_digests`)."""
    try:
        return load_unregistered(f"runs:/{run_id}/model", shown,
                                 (json.loads(recorded), f"{shown}: the files of the model it was judged by (run {run_id})", _JUDGED_TODO))
    except PipelineError:
        raise
    except Exception as exc:  # its run deleted or garbage-collected: the gate cannot judge, and says so in one line
        if (fault := environment_fault(exc)) is not None:
            raise fault from None
        first = first_line(exc)
        raise StorageError(f"{shown}: the model it was judged by before its refit (run {run_id}) cannot be read ({first}); {_JUDGED_TODO}") from None


def load_verified(client: Any, name: str, version: str, shown: str) -> Any:
    """The pyfunc of a registered version, loaded from a local copy checked by `verified_copy`."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="pipeline-model-") as tmp:
        return _load_pyfunc(verified_copy(client, name, version, Path(tmp), shown), shown)


def load_unregistered(uri: str, shown: str | None = None, recorded: tuple[dict[str, str], str, str] | None = None) -> Any:
    """The pyfunc behind a ``runs:/`` URI, loaded only if it is in the pipeline's model format (and, with
    ``recorded`` = (digests, what the error calls the files, what to do about a mismatch), only if its files match them)."""
    import tempfile

    shown = shown or uri
    with tempfile.TemporaryDirectory(prefix="pipeline-model-") as tmp:
        local = _download(uri, Path(tmp))
        if recorded is not None:
            digests, what, todo = recorded
            _refuse_changed(digests, local, what, todo)
        model_format.check_loadable(local, shown)
        return _load_pyfunc(local, shown)


def _load_pyfunc(local: Path, shown: str) -> Any:
    """MLflow's pyfunc of a checked local copy, with the environment compared to the model's pins here:
    MLflow's own comparison first maps every installed distribution to its modules, which takes
    longer than loading the model."""
    import mlflow

    if mismatches := requirement_mismatches(local):
        log.warning("%s: this environment differs from the one the model was logged in: %s; "
                    "`mlflow.pyfunc.get_model_dependencies` gives its requirements", shown, ", ".join(mismatches))
    return mlflow.pyfunc.load_model(str(local), suppress_warnings=True)


def requirement_mismatches(model_dir: Path) -> list[str]:
    """The model's pinned requirements (``name==version`` lines) this environment does not satisfy,
    and a different Python minor version, as "name (installed X, model Y)"."""
    import importlib.metadata
    import platform

    from packaging.requirements import InvalidRequirement, Requirement

    found = []
    for line in _text(model_dir / "requirements.txt").splitlines():
        text = line.split("#", 1)[0].strip()
        try:
            req = Requirement(text)
        except InvalidRequirement:  # blank lines, pip options (-r, --index-url), paths
            continue
        pinned = [s.version for s in req.specifier if s.operator == "=="]
        if not pinned or (req.marker is not None and not req.marker.evaluate()):
            continue
        try:
            installed = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{req.name} (not installed, model {pinned[0]})")
            continue
        if not req.specifier.contains(installed, prereleases=True):
            found.append(f"{req.name} (installed {installed}, model {pinned[0]})")
    logged = _text(model_dir / "python_env.yaml").splitlines()
    model_python = next((ln.split(":", 1)[1].strip() for ln in logged if ln.startswith("python:")), "")
    if model_python and model_python.split(".")[:2] != platform.python_version().split(".")[:2]:
        found.append(f"python (installed {platform.python_version()}, model {model_python})")
    return found


def _text(path: Path) -> str:
    """A file of the model's folder; empty when it is absent (a model logged without it)."""
    try:
        return path.read_text()
    except OSError:
        return ""
