"""Serve every deployment of prefect.yaml from one long-running process, for users without a work pool.

    pipeline-cli serve                      # all of them; or name some: pipeline-cli serve training-weekly
    python -m deployments.serve             # the same, without the CLI

Names, schedules, parameters and descriptions come from prefect.yaml (deployments/definitions.py),
so a served deployment is the deployed one minus the work pool. Runs start in the project root,
as the pull step of prefect.yaml makes them do under a worker. On exit, `serve` pauses the
schedules it served, so nothing piles up while no one is serving them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Any

from deployments.definitions import DeploymentSpec, find_prefect_file, load_deployment_specs, select


def build_deployments(specs: list[DeploymentSpec], project_root: Path) -> list[Any]:
    """One RunnerDeployment per spec, built from the flow object its entrypoint names."""
    from prefect.schedules import Cron

    root = str(project_root)
    if root not in sys.path:
        sys.path.insert(0, root)
    built = []
    for spec in specs:
        flow = getattr(importlib.import_module(spec.module), spec.function)
        built.append(flow.to_deployment(
            name=spec.name,
            schedules=[Cron(s.cron, timezone=s.timezone) for s in spec.schedules],
            parameters=spec.parameters,
            description=spec.description,
            tags=list(spec.tags),
        ))
    return built


def take_over_worker_deployments(deployments: list[Any]) -> list[str]:
    """Delete same-named deployments that a work pool runs, so the served ones replace them.

    Prefect 3.8 updates an existing deployment in place when serving it but keeps its work pool
    and drops its code location, so its runs would crash; a fresh one works. Flow runs stay.
    """
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    replaced = []
    with get_client(sync_client=True) as client:
        for d in deployments:
            full_name = f"{d.flow_name}/{d.name}"
            try:
                existing = client.read_deployment_by_name(full_name)
            except ObjectNotFound:
                continue
            if existing.work_pool_name:
                client.delete_deployment(existing.id)
                replaced.append(f"{full_name} (work pool {existing.work_pool_name})")
    return replaced


def serve_all(prefect_file: str | Path | None = None, names: list[str] | None = None, limit: int | None = None) -> None:
    """Serve the selected deployments until interrupted (Ctrl-C / SIGTERM)."""
    from prefect import serve

    path = find_prefect_file(prefect_file)
    specs = select(load_deployment_specs(path), names)
    os.chdir(path.parent)  # relative entrypoints and parameters resolve against the project root
    deployments = build_deployments(specs, path.parent)
    for name in take_over_worker_deployments(deployments):
        print(f"serving {name} here from now on: its work-pool deployment was replaced", file=sys.stderr)
    try:
        serve(*deployments, limit=limit)
    finally:
        pause_schedules(deployments)


def pause_schedules(deployments: list[Any]) -> None:
    """Pause what was served, once more after Prefect's own attempt.

    Prefect 3.8's SIGTERM handler exits while its runner still pauses the schedules, which can cut
    that request off; a service manager stopping `serve` must still leave them paused.
    """
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    paused = []
    try:
        with get_client(sync_client=True) as client:
            for d in deployments:
                try:
                    client.pause_deployment(client.read_deployment_by_name(f"{d.flow_name}/{d.name}").id)
                except ObjectNotFound:
                    continue
                paused.append(d.name)
    except Exception as exc:  # the server may be what went away; do not hide why serve stopped
        print(f"warning: could not pause the served schedules ({type(exc).__name__}: {str(exc)[:200]})", file=sys.stderr)
        return
    print(f"schedules paused: {', '.join(paused) or 'none'}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("names", nargs="*", help="deployment names from prefect.yaml (default: all)")
    parser.add_argument("--prefect-file", default=None, help="path to prefect.yaml (default: ./prefect.yaml)")
    parser.add_argument("--limit", type=int, default=None, help="most flow runs at once")
    args = parser.parse_args()
    serve_all(args.prefect_file, args.names, args.limit)


if __name__ == "__main__":
    main()
