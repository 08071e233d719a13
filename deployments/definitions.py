"""The deployments of the pipeline, read from `prefect.yaml`: the one definition that both
`prefect deploy --all` and `pipeline-cli serve` use, so names, schedules and parameters cannot drift.

No Prefect import here: this is plain YAML, usable by the fast CLI paths and by tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline_core.errors import ConfigError

PREFECT_FILE = "prefect.yaml"


@dataclass(frozen=True)
class Schedule:
    cron: str
    timezone: str | None = None


@dataclass(frozen=True)
class DeploymentSpec:
    name: str
    entrypoint: str                     # "flows/layers.py:run_flow", relative to the project root
    parameters: dict[str, Any] = field(default_factory=dict)
    schedules: tuple[Schedule, ...] = ()
    description: str | None = None
    tags: tuple[str, ...] = ()
    work_pool: str | None = None
    work_queue: str | None = None

    @property
    def module(self) -> str:
        """The importable module of the entrypoint: flows/layers.py -> flows.layers."""
        path = self.entrypoint.split(":", 1)[0]
        return path.removesuffix(".py").replace("/", ".")

    @property
    def function(self) -> str:
        return self.entrypoint.split(":", 1)[1]


def find_prefect_file(path: str | Path | None = None) -> Path:
    """The project's prefect.yaml: the given path, or ./prefect.yaml."""
    candidate = Path(path) if path else Path.cwd() / PREFECT_FILE
    if not candidate.is_file():
        raise ConfigError(f"{candidate}: prefect.yaml not found; run from the project root or pass --prefect-file")
    return candidate.resolve()


def load_deployment_specs(path: str | Path | None = None) -> list[DeploymentSpec]:
    """Every deployment declared in prefect.yaml (anchors from `definitions:` resolved)."""
    prefect_file = find_prefect_file(path)
    try:
        document = yaml.safe_load(prefect_file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{prefect_file}: not valid YAML ({str(exc).splitlines()[0]})") from None
    specs = []
    for i, raw in enumerate(document.get("deployments") or []):
        where = f"{prefect_file.name}: deployments[{i}]"
        if not raw.get("name") or ":" not in str(raw.get("entrypoint", "")):
            raise ConfigError(f"{where}: needs a name and an entrypoint 'path/to/file.py:flow_function'")
        schedules = []
        for s in raw.get("schedules") or []:
            if "cron" not in s:
                raise ConfigError(f"{where} ({raw['name']}): only cron schedules are used in this project")
            schedules.append(Schedule(cron=s["cron"], timezone=s.get("timezone")))
        pool = raw.get("work_pool") or {}
        specs.append(DeploymentSpec(
            name=raw["name"], entrypoint=raw["entrypoint"], parameters=dict(raw.get("parameters") or {}),
            schedules=tuple(schedules), description=raw.get("description"), tags=tuple(raw.get("tags") or ()),
            work_pool=pool.get("name"), work_queue=pool.get("work_queue_name"),
        ))
    return specs


def select(specs: list[DeploymentSpec], names: list[str] | None) -> list[DeploymentSpec]:
    """The named deployments (all when no names are given); an unknown name is a config error."""
    if not names:
        return specs
    known = {s.name: s for s in specs}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"unknown deployment {', '.join(map(repr, unknown))}; prefect.yaml declares: {', '.join(known)}")
    return [known[n] for n in names]
