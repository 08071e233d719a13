"""`pipeline-cli serve | deploy | server start|stop|status`: run the deployments of prefect.yaml.

Only typer and the standard library at import time (`--help` must stay fast); Prefect is
imported inside the commands that need it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer

server_app = typer.Typer(help="Run a local Prefect server (and the MLflow UI) in the background for later runs to reuse.",
                         no_args_is_help=True)

PrefectFileOpt = Annotated[Optional[str], typer.Option("--prefect-file", help="The project's prefect.yaml (default: ./prefect.yaml).")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show full tracebacks.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable JSON summary.")]
StateDirOpt = Annotated[Path, typer.Option("--state-dir", envvar="PIPELINE_SERVER_STATE_DIR",
                                           help="Where the servers' state and log files live (Prefect keeps its pid file in PREFECT_HOME).")]
_STATE_DIR_DEFAULT = Path("results/server")


def _err(message: str) -> None:
    typer.echo(message, err=True)


@contextmanager
def _one_line_errors(debug: bool) -> Iterator[None]:
    """The project's error contract: a domain error is one line on stderr and its exit code."""
    from pipeline_cli.exit_codes import exit_code
    from pipeline_core.errors import PipelineError

    try:
        yield
    except PipelineError as exc:
        if debug:
            raise
        _err(f"error: {exc}")
        raise typer.Exit(exit_code(exc)) from None


def _reachable_api_url() -> str:
    """PREFECT_API_URL (environment, the server `pipeline-cli server start` runs for this directory, or the
    Prefect profile) of a server that answers, else a StorageError. Called before Prefect is imported,
    which reads the URL once."""
    from deployments.local_server import healthy
    from pipeline_cli.runtime import use_running_server
    from pipeline_core.errors import StorageError

    use_running_server()
    url = os.environ.get("PREFECT_API_URL")
    if not url:
        from prefect.settings import get_current_settings  # a URL set with `prefect config set`

        url = get_current_settings().api.url
    if not url:
        raise StorageError("PREFECT_API_URL is not set: deployments need a running Prefect server; "
                           "start one with `pipeline-cli server start` (later commands in this directory find it)")
    if not healthy(url.rstrip("/") + "/health", timeout=5.0):
        raise StorageError(f"no Prefect server answers at {url} (PREFECT_API_URL); start one with `pipeline-cli server start`")
    return url


def serve(
    names: Annotated[Optional[list[str]], typer.Argument(help="Deployments of prefect.yaml to serve (default: all).")] = None,
    prefect_file: PrefectFileOpt = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Most flow runs at once.")] = None,
    debug: DebugOpt = False,
) -> None:
    """Serve the deployments of prefect.yaml from this one long-running process (no work pool needed); Ctrl-C stops."""
    with _one_line_errors(debug):
        from deployments.definitions import find_prefect_file, load_deployment_specs, select

        chosen = select(load_deployment_specs(find_prefect_file(prefect_file)), names)
        url = _reachable_api_url()
        _err(f"serving {', '.join(s.name for s in chosen)} against {url}; Ctrl-C stops (schedules pause on exit)")
        from deployments.serve import serve_all

        serve_all(prefect_file, [s.name for s in chosen], limit)


def deploy(
    ctx: typer.Context,
    name: Annotated[Optional[list[str]], typer.Option("--name", "-n", help="A deployment of prefect.yaml (repeatable; default: all).")] = None,
    prefect_file: PrefectFileOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Create or update the deployments of prefect.yaml on the Prefect server (`prefect deploy --all`).

    Missing work pools are created (type process). Other options go to `prefect deploy`, e.g. `--tag nightly`.
    """
    with _one_line_errors(debug):
        from deployments.definitions import find_prefect_file, load_deployment_specs, select

        path = find_prefect_file(prefect_file)
        chosen = select(load_deployment_specs(path), name)
        _reachable_api_url()
        created = _ensure_work_pools(sorted({s.work_pool for s in chosen if s.work_pool}))
        for pool in created:
            _err(f"created work pool {pool!r} (type process); start a worker: prefect worker start --pool {pool}")
        which = ["--all"] if not name else [arg for s in chosen for arg in ("--name", s.name)]
        command = [sys.executable, "-m", "pipeline_io.workarounds", "--no-prompt", "deploy",
                   "--prefect-file", str(path), *which, *ctx.args]
        env = dict(os.environ)
        root = str(path.parent)
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
        code = subprocess.call(command, cwd=root, env=env)
        if code != 0:
            _err(f"error: prefect deploy failed with exit code {code} (its output is above)")
            raise typer.Exit(code)
        from deployments.notifications import WEBHOOK_ENV, ensure_notifications

        if ensure_notifications():
            _err(f"notifications: promotions, rollbacks, drift and degraded performance go to the webhook in {WEBHOOK_ENV}")


def _ensure_work_pools(names: list[str]) -> list[str]:
    """Create missing work pools as process pools; return the ones created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    created = []
    with get_client(sync_client=True) as client:
        for pool in names:
            try:
                client.read_work_pool(pool)
            except ObjectNotFound:
                client.create_work_pool(WorkPoolCreate(name=pool, type="process",
                                                       base_job_template=ProcessWorker.get_default_base_job_template()))
                created.append(pool)
    return created


HostOpt = Annotated[str, typer.Option("--host", help="Interface the server listens on (non-loopback needs --allow-remote).")]


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost: only this machine can connect."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False
PortOpt = Annotated[int, typer.Option("--port", min=1, max=65535, help="Port of the Prefect server.")]


@server_app.command("start")
def server_start(
    host: HostOpt = "127.0.0.1",
    port: PortOpt = 4200,
    mlflow: Annotated[bool, typer.Option("--mlflow", help="Also start the MLflow UI on the pipeline's tracking store.")] = False,
    mlflow_port: Annotated[int, typer.Option("--mlflow-port", min=1, max=65535, help="Port of the MLflow UI.")] = 5000,
    config: Annotated[str, typer.Option("--config", "-c", help="Pipeline config whose MLflow store the UI shows.")] = "configs/credit_default.yaml",
    backend_store_uri: Annotated[Optional[str], typer.Option("--backend-store-uri", help="MLflow store to show instead of the config's.")] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for a server to answer.")] = 120.0,
    allow_remote: Annotated[bool, typer.Option(
        "--allow-remote", help="Listen on a non-loopback --host: the Prefect and MLflow APIs have no authentication.")] = False,
    state_dir: StateDirOpt = _STATE_DIR_DEFAULT,
    json_: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Run `prefect server start --background`, wait until healthy and print the PREFECT_API_URL to export.

    Messages go to stderr, the export line to stdout: `eval "$(pipeline-cli server start)"` sets it.
    """
    from deployments import local_server
    from pipeline_io.workarounds import environment_warnings

    if not is_loopback(host):
        if not allow_remote:
            _err(f"error: --host {host} exposes the unauthenticated Prefect (and MLflow) APIs to the network; "
                 "put them behind an authenticating proxy and pass --allow-remote, or use 127.0.0.1")
            raise typer.Exit(2)
        _err(f"warning: listening on {host}: anyone who reaches it can run flows and change the registry (no authentication)")
    with _one_line_errors(debug):
        started = []
        prefect, new = local_server.start_prefect(state_dir, host, port, timeout)
        started.append((prefect, new))
        if mlflow:
            from pipeline_io.registry import absolute_tracking_uri

            store = absolute_tracking_uri(backend_store_uri or _mlflow_store(config))
            started.append(local_server.start_mlflow(state_dir, store, host, mlflow_port, timeout))
    if json_:
        typer.echo(json.dumps({"services": [{**local_server.status(state_dir, s.name).as_dict(), "started_now": n} for s, n in started],
                               "warnings": environment_warnings()}, indent=2))
        return
    for service, new in started:
        took = f" in {_age(service):.0f}s" if new else ""
        verb = "started" if new else "already running"
        _err(f"{service.name}: {verb}{took} at {service.url} (pid {service.pid}; log {service.log})")
    for note in environment_warnings():
        _err(f"warning: {note}")
    typer.echo(f"export PREFECT_API_URL={prefect.api_url}")


def _age(service: object) -> float:
    import time

    return time.time() - service.started_at  # type: ignore[attr-defined]


def _mlflow_store(config: str) -> str:
    from pipeline_core.config import load_config
    from pipeline_io.registry import tracking_uri

    return tracking_uri(load_config(config, []))


@server_app.command("stop")
def server_stop(state_dir: StateDirOpt = _STATE_DIR_DEFAULT) -> None:
    """Stop the servers `server start` started (Prefect's with `prefect server stop`, the MLflow UI's process group)."""
    from deployments import local_server

    with _one_line_errors(debug=False):  # `prefect server stop` can fail
        stopped = [s for s in (local_server.stop(state_dir, n) for n in (local_server.MLFLOW, local_server.PREFECT)) if s]
    if not stopped:
        _err("no server started by pipeline-cli is running")
    for s in stopped:
        _err(f"{s.name}: stopped (pid {s.pid})")


@server_app.command("status")
def server_status(state_dir: StateDirOpt = _STATE_DIR_DEFAULT, json_: JsonOpt = False) -> None:
    """What runs and whether it answers; exit code 0 when the Prefect server is healthy, 1 otherwise."""
    from deployments import local_server

    states = [local_server.status(state_dir, n) for n in (local_server.PREFECT, local_server.MLFLOW)]
    if json_:
        typer.echo(json.dumps([s.as_dict() for s in states], indent=2))
    else:
        for s in states:
            if s.service is None:
                typer.echo(f"{s.name}: stopped")
            else:
                api = f" (PREFECT_API_URL={s.service.api_url})" if s.service.api_url else ""
                typer.echo(f"{s.name}: {s.state} at {s.service.url}{api}, pid {s.service.pid}, log {s.service.log}")
    if states[0].state != "running":
        raise typer.Exit(1)
