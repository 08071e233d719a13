"""A local Prefect server (and optionally the MLflow UI) in the background, so later runs reuse it.

Without PREFECT_API_URL every pipeline run starts a temporary Prefect server of its own.
`pipeline-cli server start` runs Prefect's own `prefect server start --background` once, waits
until `/api/health` answers and prints the PREFECT_API_URL to export; `stop` runs `prefect server
stop`. Prefect keeps the server's pid in PREFECT_HOME/server.pid, so one PREFECT_HOME has one
background server. MLflow has no background mode: its UI is started and stopped here (pid in the
state folder, `stop` ends its whole process group). Each service keeps a JSON state file (URL,
log; Prefect's also its PREFECT_HOME) in the state folder.

Standard library only at import: no Prefect import, so the commands answer at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from pipeline_core.errors import PipelineError, StorageError
from pipeline_io.atomic import write_bytes_atomic
from pipeline_io.registry_rest import healthy
from pipeline_io.workarounds import MLFLOW_SERVER_ENV, SERVER_WRITE_BATCHING

DEFAULT_STATE_DIR = Path("results/server")

PREFECT = "prefect"
MLFLOW = "mlflow"
PREFECT_PID_FILE = "server.pid"  # prefect.cli._server_utils.SERVER_PID_FILE_NAME, in PREFECT_HOME


@dataclass
class Service:
    name: str
    url: str                 # base URL of the UI
    health_url: str
    log: str
    command: list[str]
    started_at: float
    pid: int | None = None   # MLflow: stored here; Prefect: read from PREFECT_HOME/server.pid
    prefect_home: str | None = None

    @property
    def api_url(self) -> str | None:
        return f"{self.url}/api" if self.name == PREFECT else None


@dataclass
class ServiceStatus:
    name: str
    state: str               # "running", "unhealthy", "stopped"
    service: Service | None = None

    def as_dict(self) -> dict:
        out: dict = {"service": self.name, "state": self.state}
        if self.service:
            out.update(pid=self.service.pid, url=self.service.url, log=self.service.log)
            if self.service.api_url:
                out.update(api_url=self.service.api_url, prefect_home=self.service.prefect_home)
        return out


def _state_file(state_dir: Path, name: str) -> Path:
    return state_dir / f"{name}.json"


def _prefect_pid(prefect_home: str | Path) -> int | None:
    try:
        return int((Path(prefect_home) / PREFECT_PID_FILE).read_text())
    except (OSError, ValueError):
        return None


def _read_state(state_dir: Path, name: str) -> Service | None:
    path = _state_file(state_dir, name)
    if not path.is_file():
        return None
    try:
        service = Service(**json.loads(path.read_text()))
    except (ValueError, TypeError):
        path.unlink(missing_ok=True)
        return None
    if name == PREFECT:
        service.pid = _prefect_pid(service.prefect_home) if service.prefect_home else None
    return service


def _write_state(state_dir: Path, service: Service) -> None:
    data = asdict(service)
    if service.name == PREFECT:
        del data["pid"]  # Prefect's server.pid is the record
    write_bytes_atomic(_state_file(state_dir, service.name), json.dumps(data, indent=2).encode())


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) is not running
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _same_process(service: Service) -> bool:
    """Guard against a recycled pid: where /proc exists, the process must still run our command."""
    try:
        with open(f"/proc/{service.pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        return True
    return any(a.endswith(b"server") for a in args) and any(Path(a.decode(errors="replace")).name == service.name for a in args)


def status(state_dir: Path, name: str) -> ServiceStatus:
    service = _read_state(state_dir, name)
    if service is None:
        return ServiceStatus(name, "stopped")
    if service.pid is None or not process_alive(service.pid) or (name == MLFLOW and not _same_process(service)):
        _state_file(state_dir, name).unlink(missing_ok=True)  # stale: the process is gone
        return ServiceStatus(name, "stopped")
    return ServiceStatus(name, "running" if healthy(service.health_url) else "unhealthy", service)


def _executable(name: str) -> str:
    """The console script next to this interpreter (the project's venv), else the one on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


def _one_line(output: str) -> str:
    return " ".join(output.split())[-400:]


def start_prefect(state_dir: Path, host: str = "127.0.0.1", port: int = 4200, timeout: float = 120.0) -> tuple[Service, bool]:
    """`prefect server start --background` unless ours already runs; returns (service, started_now)."""
    current = status(state_dir, PREFECT)
    if current.service is not None:
        return current.service, False
    url = f"http://{host}:{port}"
    if healthy(f"{url}/api/health"):
        raise StorageError(f"a Prefect server not started by pipeline-cli already answers at {url}; "
                           f"use it (export PREFECT_API_URL={url}/api) or pick another --port")
    from prefect.settings import Settings  # PREFECT_HOME as Prefect resolves it now (env, profile, toml)

    home = Path(Settings().home).expanduser().resolve()
    pid = _prefect_pid(home)
    if pid is not None and not process_alive(pid):
        (home / PREFECT_PID_FILE).unlink(missing_ok=True)  # left by a server that died; `--background` refuses while it exists
    env = dict(os.environ, PREFECT_HOME=str(home))
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    for key, value in SERVER_WRITE_BATCHING.items():
        env.setdefault(key, value)
    env.pop("PREFECT_API_URL", None)  # the server must not try to talk to another server
    command = [_executable("prefect"), "server", "start", "--background", "--host", host, "--port", str(port)]
    started_at = time.time()
    # A session of its own: a Ctrl-C in the terminal that started it does not reach the server.
    launched = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=env,
                              start_new_session=True, timeout=timeout)
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / f"{PREFECT}.log"
    with open(log_path, "a") as log:  # the launcher's output only: `--background` pipes the server's to no reader
        log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n{launched.stdout}{launched.stderr}")
    if launched.returncode != 0:
        raise StorageError(f"`prefect server start --background` failed (PREFECT_HOME={home}): "
                           f"{_one_line(launched.stdout + launched.stderr)}")
    service = Service(name=PREFECT, url=url, health_url=f"{url}/api/health", log=str(log_path), command=command,
                      started_at=started_at, pid=_prefect_pid(home), prefect_home=str(home))
    _write_state(state_dir, service)
    # Our own wait, not `prefect server status --wait`: that cannot tell a server that died from a slow one.
    deadline = time.monotonic() + timeout
    while not healthy(service.health_url, timeout=1.0):
        died = service.pid is None or not process_alive(service.pid)
        if died or time.monotonic() > deadline:
            _stop_prefect(service)
            _state_file(state_dir, PREFECT).unlink(missing_ok=True)
            why = "exited while starting" if died else f"did not answer {service.health_url} within {timeout:.0f}s"
            raise PipelineError(f"the Prefect server {why}; run `prefect server start` with PREFECT_HOME={home} "
                                "in the foreground to see its log")
        time.sleep(0.5)
    return service, True


def _stop_prefect(service: Service, grace: float = 20.0) -> None:
    """`prefect server stop` for the PREFECT_HOME the server was started with, then wait until it has exited."""
    command = [_executable("prefect"), "server", "stop"]
    done = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
                          env=dict(os.environ, PREFECT_HOME=str(service.prefect_home)))
    if done.returncode != 0:
        raise PipelineError(f"`prefect server stop` failed: {_one_line(done.stdout + done.stderr)}")
    # It only sends SIGTERM and returns: wait so the port is free on return, and SIGKILL a shutdown that hangs.
    deadline = time.monotonic() + grace
    while service.pid is not None and process_alive(service.pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(service.pid, signal.SIGKILL)
            break
        time.sleep(0.2)


def _launch(state_dir: Path, name: str, command: list[str], url: str, health_url: str, env: dict[str, str],
            timeout: float) -> Service:
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / f"{name}.log"
    with open(log_path, "ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n".encode())
        log.flush()
        # A session of its own: `stop` signals the whole group (the server and anything it spawned),
        # and a Ctrl-C in the terminal that started it does not reach it.
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
    service = Service(name=name, pid=proc.pid, url=url, health_url=health_url, log=str(log_path),
                      command=command, started_at=time.time())
    _write_state(state_dir, service)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _state_file(state_dir, name).unlink(missing_ok=True)
            raise PipelineError(f"{name} server exited with code {proc.returncode} while starting; see {log_path}")
        if healthy(health_url, timeout=1.0):
            return service
        time.sleep(0.5)
    _terminate(service)
    _state_file(state_dir, name).unlink(missing_ok=True)
    raise PipelineError(f"{name} server did not answer {health_url} within {timeout:.0f}s; see {log_path}")


def start_mlflow(state_dir: Path, backend_store_uri: str, host: str = "127.0.0.1", port: int = 5000,
                 timeout: float = 120.0) -> tuple[Service, bool]:
    """Start the MLflow UI on the pipeline's tracking store unless ours already runs."""
    current = status(state_dir, MLFLOW)
    if current.service is not None:
        from pipeline_io.registry import same_tracking_store

        served = backend_store(current.service)
        if served is not None and not same_tracking_store(served, backend_store_uri):
            raise StorageError(f"the MLflow UI already runs on another store ({served}); "
                               "stop it first (`pipeline-cli server stop`) to show this one")
        return current.service, False
    if not port_free(host, port):
        raise StorageError(f"port {port} on {host} is in use; pick another with --mlflow-port")
    url = f"http://{host}:{port}"
    env = dict(os.environ)
    env.update(MLFLOW_SERVER_ENV)
    command = [_executable("mlflow"), "server", "--backend-store-uri", backend_store_uri,
               "--host", host, "--port", str(port), "--workers", "1"]
    return _launch(state_dir, MLFLOW, command, url, f"{url}/health", env, timeout), True


def backend_store(service: Service) -> str | None:
    """The --backend-store-uri an MLflow server of ours was started with."""
    args = service.command
    return args[args.index("--backend-store-uri") + 1] if "--backend-store-uri" in args[:-1] else None


def _terminate(service: Service, grace: float = 20.0) -> None:
    """SIGTERM to the service's process group, SIGKILL to whatever is left after the grace period."""
    try:
        pgid = os.getpgid(service.pid)
    except ProcessLookupError:
        return
    if pgid != service.pid:  # not the group leader we started: signal the process alone
        pgid = None
    try:
        if pgid is not None:
            os.killpg(pgid, signal.SIGTERM)
        else:
            os.kill(service.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and process_alive(service.pid):
        time.sleep(0.2)
    try:
        if pgid is not None:
            os.killpg(pgid, signal.SIGKILL)
        elif process_alive(service.pid):
            os.kill(service.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stop(state_dir: Path, name: str) -> Service | None:
    """Stop the service if ours runs; returns what was stopped (None when nothing ran)."""
    current = status(state_dir, name)
    if current.service is None:
        return None
    if name == PREFECT:
        _stop_prefect(current.service)
    else:
        _terminate(current.service)
    _state_file(state_dir, name).unlink(missing_ok=True)
    return current.service
