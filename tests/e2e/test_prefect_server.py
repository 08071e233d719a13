"""A real Prefect server: `pipeline-cli server start`, `deploy`, a worker, `serve`, runs triggered through the API.

Everything that talks to this server runs in subprocesses with an explicit environment (its own
PREFECT_HOME and PREFECT_API_URL), so the session's test harness is left alone. Every process is
started in a session of its own and its whole group is killed at the end, passed or failed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from deployments import local_server
from deployments.definitions import load_deployment_specs
from deployments.local_server import free_port, healthy, process_alive
from deployments.notifications import AUTOMATION_NAME, NOTIFIED, WEBHOOK_ENV
from pipeline_io.events import DRIFT_DETECTED, MODEL_PROMOTED
from pipeline_io.workarounds import environment_warnings
from tests.conftest import shipped_config
from tests.servers import webhook_receiver

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
POOL = "pipeline-process"


def kill_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process group, SIGKILL what is left after ``grace`` seconds."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=grace)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


class Server:
    def __init__(self, tmp: Path):
        self.port = free_port()
        self.state_dir = tmp / "state"
        self.prefect_home = tmp / "prefect-home"
        self.pid_file = self.prefect_home / "server.pid"  # where `prefect server start --background` keeps its pid
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(
            PREFECT_HOME=str(self.prefect_home),
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            PREFECT_RUNNER_POLL_FREQUENCY="1",      # serve: look for runs every second (default 10)
            PREFECT_WORKER_QUERY_SECONDS="1",       # worker: the same
            PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
        )
        self.env_without_url = env
        self.env = {**env, "PREFECT_API_URL": self.api_url}

    def cli(self, *args: object, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pipeline_cli.main", *map(str, args)], capture_output=True, text=True,
                              env=self.env_without_url if args[0] == "server" else self.env, cwd=REPO, timeout=timeout)

    def pids(self) -> list[int]:
        """What runs: Prefect's record of its server, ours of the MLflow UI."""
        pids = [int(self.pid_file.read_text())] if self.pid_file.is_file() else []
        mlflow = self.state_dir / "mlflow.json"
        return pids + ([json.loads(mlflow.read_text())["pid"]] if mlflow.is_file() else [])

    def spawn(self, *args: str, log: Path) -> subprocess.Popen:
        with open(log, "wb") as out:
            return subprocess.Popen([sys.executable, *args], stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=REPO,
                                    start_new_session=True)

    def api(self, method: str, path: str, body: dict | None = None) -> object:
        response = httpx.request(method, f"{self.api_url}{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def deployments(self) -> dict[str, dict]:
        return {d["name"]: d for d in self.api("POST", "/deployments/filter", {})}

    def run_deployment(self, name: str, parameters: dict, timeout: float = 90) -> dict:
        """Trigger through the Python API (`run_deployment`) and wait for a final state."""
        code = (
            "import json, sys\n"
            "from prefect.deployments import run_deployment\n"
            "run = run_deployment(sys.argv[1], parameters=json.loads(sys.argv[2]), timeout=float(sys.argv[3]), poll_interval=1)\n"
            "print(json.dumps({'id': str(run.id), 'state': run.state.type.value}))\n"
        )
        done = subprocess.run([sys.executable, "-c", code, name, json.dumps(parameters), str(timeout)], capture_output=True,
                              text=True, env=self.env, cwd=REPO, timeout=timeout + 60)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prefect-server")
    srv = Server(tmp)
    try:
        started = srv.cli("server", "start", "--port", srv.port, "--state-dir", srv.state_dir)
        assert started.returncode == 0, started.stderr
        assert started.stdout.strip() == f"export PREFECT_API_URL={srv.api_url}"
        assert process_alive(int(srv.pid_file.read_text()))
        yield srv
    finally:
        pids = srv.pids()
        stopped = srv.cli("server", "stop", "--state-dir", srv.state_dir)
        left = [pid for pid in pids if process_alive(pid)]
        for pid in left:  # stop failed: kill what it left
            os.killpg(os.getpgid(pid), signal.SIGKILL)  # each runs in a session of its own
        assert stopped.returncode == 0 and not left, stopped.stderr
        assert not list(srv.state_dir.glob("*.json")) and not srv.pid_file.exists()
        assert not healthy(f"{srv.api_url}/health")


@pytest.fixture(scope="module")
def webhook():
    with webhook_receiver() as (url, received):
        yield url, received


@pytest.fixture(scope="module")
def deployed(server, webhook):
    # as the README shows: `server start`, then `deploy` with no PREFECT_API_URL, which finds that server on its own
    env = {**server.env_without_url, "PIPELINE_SERVER_STATE_DIR": str(server.state_dir),
           WEBHOOK_ENV: webhook[0]}  # `deploy` saves it in a notification block
    done = subprocess.run([sys.executable, "-m", "pipeline_cli.main", "deploy"], capture_output=True, text=True, env=env, cwd=REPO, timeout=180)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"go to the webhook in {WEBHOOK_ENV}" in done.stderr
    return server.deployments()


def emit(server: Server, event: str, payload: dict, version: str = "1") -> None:
    code = ("import json, sys\nfrom pipeline_io.events import emit\n"
            "emit(sys.argv[1], 'credit_default', json.loads(sys.argv[2]), 'credit-default-classifier', sys.argv[3])\n")
    sent = subprocess.run([sys.executable, "-c", code, event, json.dumps(payload), version], capture_output=True, text=True,
                          env=server.env, cwd=REPO, timeout=60)
    assert sent.returncode == 0, sent.stderr[-2000:]


def test_server_start_is_idempotent_and_status_reports_it(server):
    again = server.cli("server", "start", "--port", server.port, "--state-dir", server.state_dir)
    assert again.returncode == 0 and "prefect: already running at" in again.stderr
    assert again.stdout.strip() == f"export PREFECT_API_URL={server.api_url}"
    status = server.cli("server", "status", "--state-dir", server.state_dir, "--json")
    assert status.returncode == 0
    prefect, mlflow = json.loads(status.stdout)
    assert (prefect["state"], prefect["api_url"], mlflow["state"]) == ("running", server.api_url, "stopped")
    assert prefect["pid"] == int(server.pid_file.read_text())  # the server Prefect keeps track of
    assert httpx.get(f"{server.api_url}/health", timeout=5).status_code == 200


def test_flow_commands_find_the_running_server_without_prefect_api_url(server, tmp_path, demo_dir):
    """`pipeline-cli server start` once, then a flow command with no PREFECT_API_URL runs on that server."""
    config = shipped_config("credit_default", demo_dir / "credit.csv", tmp_path)
    env = {**server.env_without_url, "PIPELINE_SERVER_STATE_DIR": str(server.state_dir)}
    done = subprocess.run([sys.executable, "-m", "pipeline_cli.main", "bronze", "--config", str(config), "--json"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    log = Path(json.loads(done.stdout)["log_file"])
    assert f"using the Prefect server at {server.api_url}" in (REPO / log if not log.is_absolute() else log).read_text()
    runs = server.api("POST", "/flow_runs/filter", {"sort": "EXPECTED_START_TIME_DESC", "limit": 50})
    flows = {f["id"]: f["name"] for f in server.api("POST", "/flows/filter", {})}
    assert any(flows.get(r["flow_id"]) == "bronze" and r["state_type"] == "COMPLETED" for r in runs)


def test_one_prefect_home_has_one_background_server(server, tmp_path):
    other = tmp_path / "other-state"
    again = server.cli("server", "start", "--port", free_port(), "--state-dir", other)
    assert again.returncode == 4, again.stderr
    assert "`prefect server start --background` failed" in again.stderr and "already running in the background" in again.stderr
    assert not list(other.glob("*.json"))
    assert httpx.get(f"{server.api_url}/health", timeout=5).status_code == 200


def test_deploy_creates_every_deployment_of_prefect_yaml(deployed):
    specs = load_deployment_specs(REPO / "prefect.yaml")
    assert set(deployed) == {s.name for s in specs}
    for spec in specs:
        d = deployed[spec.name]
        assert d["entrypoint"] == spec.entrypoint and d["parameters"] == spec.parameters
        assert d["work_pool_name"] == POOL
        assert [(s["schedule"]["cron"], s["schedule"]["timezone"]) for s in d["schedules"]] == [(c.cron, c.timezone) for c in spec.schedules]
        # runs start in the clone `deploy` ran in, recorded at deploy time
        assert d["pull_steps"] == [{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}]


def test_a_drift_event_makes_the_automation_create_a_training_run(server, deployed):
    """prefect.yaml's trigger is a real automation: the event scoring emits on drift creates a training run."""
    training = deployed["training-weekly"]
    automations = server.api("POST", "/automations/filter", {})
    [linked] = [a for a in automations if any(act.get("deployment_id") == training["id"] for act in a["actions"])]
    assert set(linked["trigger"]["expect"]) == {"pipeline.drift.detected", "pipeline.performance.degraded"}
    assert linked["trigger"]["posture"] == "Reactive" and linked["trigger"]["within"] == 21600  # the cool-down
    before = server.api("POST", "/flow_runs/filter", {"flow_runs": {"deployment_id": {"any_": [training["id"]]}}})
    emit(server, DRIFT_DETECTED, {"output": "x.parquet", "alerts": ["PSI of AGE 0.4"], "rows": 500})
    deadline = time.monotonic() + 90
    while True:
        runs = server.api("POST", "/flow_runs/filter", {"flow_runs": {"deployment_id": {"any_": [training["id"]]}}})
        new = [r for r in runs if r["id"] not in {b["id"] for b in before} and r["parameters"].get("refresh") is True]
        if new:
            break
        assert time.monotonic() < deadline, "the automation created no training run within 90 s"
        time.sleep(2)
    assert new[0]["parameters"]["config_path"] == "configs/credit_default.yaml"
    # a second drifted batch inside the cool-down retrains nothing more (the first took about as long to act on)
    emit(server, DRIFT_DETECTED, {"output": "y.parquet", "alerts": ["PSI of AGE 0.5"], "rows": 500})
    time.sleep(max(15.0, 90 - (deadline - time.monotonic())))
    runs = server.api("POST", "/flow_runs/filter", {"flow_runs": {"deployment_id": {"any_": [training["id"]]}}})
    # (the scheduler adds the weekly schedule's runs meanwhile: those do not refresh)
    assert len([r for r in runs if r["id"] not in {b["id"] for b in before} and r["parameters"].get("refresh") is True]) == len(new)
    for run in new:  # not for the worker of the next test to pick up
        httpx.delete(f"{server.api_url}/flow_runs/{run['id']}", timeout=10).raise_for_status()


def test_a_promotion_sends_a_message_to_the_webhook_through_a_notification_block(server, deployed, webhook):
    """`deploy` with PIPELINE_NOTIFY_WEBHOOK_URL: a Prefect notification block and automation deliver the event."""
    _, received = webhook
    [automation] = [a for a in server.api("POST", "/automations/filter", {}) if a["name"] == AUTOMATION_NAME]
    assert set(automation["trigger"]["expect"]) == set(NOTIFIED) and automation["actions"][0]["type"] == "send-notification"
    emit(server, MODEL_PROMOTED, {"reason": "roc_auc 0.78 > 0.75", "metrics": {"roc_auc": 0.78}}, version="7")
    deadline = time.monotonic() + 90
    while not any(MODEL_PROMOTED in m.get("subject", "") for m in received):
        assert time.monotonic() < deadline, f"no message reached the webhook within 90 s: {received}"
        time.sleep(1)
    [message] = [m for m in received if MODEL_PROMOTED in m["subject"]]
    assert message["subject"] == f"{MODEL_PROMOTED}: credit_default"
    assert "model pipeline.model.credit-default-classifier v7" in message["body"] and '"roc_auc": 0.78' in message["body"]


def test_a_worker_runs_the_triggered_feature_pipeline(server, deployed, tmp_path, demo_dir):
    config = shipped_config("credit_default", demo_dir / "credit.csv", tmp_path)
    worker = server.spawn("-m", "prefect", "worker", "start", "--pool", POOL, "--type", "process", log=tmp_path / "worker.log")
    try:
        run = server.run_deployment("full-pipeline/feature-pipeline-daily", {"config_path": str(config), "through": "gold"})
    finally:
        kill_group(worker)
    assert run["state"] == "COMPLETED", (tmp_path / "worker.log").read_text()[-3000:]
    gold = tmp_path / "store" / "gold" / "credit_default"
    assert list((gold / "features").glob("*.parquet")) and (gold / "features" / "_delta_log").is_dir()
    assert json.loads((gold / "features_metadata.json").read_text())["row_count"] > 2900
    flow_run = server.api("GET", f"/flow_runs/{run['id']}")
    assert flow_run["deployment_id"] == deployed["feature-pipeline-daily"]["id"]


@pytest.mark.skipif(bool([w for w in environment_warnings() if w.startswith("SQLAlchemy")]),
                    reason="Prefect 3.8's scheduler cannot insert scheduled runs with SQLAlchemy >= 2.1 (pyproject pins < 2.1)")
def test_the_server_schedules_runs_at_the_declared_times(server, deployed):
    ids = {name: d["id"] for name, d in deployed.items()}
    deadline = time.monotonic() + 60
    while True:
        runs = server.api("POST", "/flow_runs/filter", {"flow_runs": {"deployment_id": {"any_": list(ids.values())},
                                                                      "state": {"type": {"any_": ["SCHEDULED"]}}}})
        by_deployment = {name: [r for r in runs if r["deployment_id"] == i] for name, i in ids.items()}
        if all(by_deployment[n] for n in ("feature-pipeline-daily", "training-weekly", "batch-inference-hourly")):
            break
        assert time.monotonic() < deadline, f"no scheduled runs after 60 s: { {n: len(r) for n, r in by_deployment.items()} }"
        time.sleep(2)
    assert by_deployment["full-pipeline-on-demand"] == []
    times = {n: [datetime.fromisoformat(r["expected_start_time"].replace("Z", "+00:00")) for r in rs] for n, rs in by_deployment.items()}
    assert all((t.hour, t.minute) == (4, 0) for t in times["feature-pipeline-daily"])
    assert all((t.weekday(), t.hour, t.minute) == (6, 5, 0) for t in times["training-weekly"])
    assert all(t.minute == 0 for t in times["batch-inference-hourly"])


def test_serve_takes_over_a_deployment_and_runs_it(server, deployed, tmp_path, demo_dir):
    config = shipped_config("credit_default", demo_dir / "credit.csv", tmp_path)
    serving = server.spawn("-m", "pipeline_cli.main", "serve", "feature-pipeline-daily", log=tmp_path / "serve.log")
    try:
        deadline = time.monotonic() + 60
        while server.deployments().get("feature-pipeline-daily", {"work_pool_name": POOL})["work_pool_name"] is not None:
            assert serving.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "serve did not register its deployment within 60 s"
            time.sleep(0.5)
        run = server.run_deployment("full-pipeline/feature-pipeline-daily", {"config_path": str(config), "through": "gold"})
        assert run["state"] == "COMPLETED", (tmp_path / "serve.log").read_text()[-3000:]
        assert (tmp_path / "store" / "gold" / "credit_default" / "features_metadata.json").is_file()
        serving.send_signal(signal.SIGTERM)  # what a service manager sends; serve pauses its schedules on the way out
        serving.wait(timeout=30)
        assert server.deployments()["feature-pipeline-daily"]["paused"] is True
        assert "schedules paused: feature-pipeline-daily" in (tmp_path / "serve.log").read_text()
    finally:
        kill_group(serving)


def test_server_start_with_mlflow_serves_the_pipeline_tracking_store(server, tmp_path, demo_dir):
    config = shipped_config("credit_default", demo_dir / "credit.csv", tmp_path)
    port = free_port()
    started = server.cli("server", "start", "--port", server.port, "--state-dir", server.state_dir,
                         "--mlflow", "--mlflow-port", port, "--config", config)
    assert started.returncode == 0, started.stderr
    assert "prefect: already running" in started.stderr and "mlflow: started in" in started.stderr
    assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    experiments = httpx.post(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search", json={"max_results": 5}, timeout=10)
    assert experiments.status_code == 200
    assert (tmp_path / "store" / "mlflow.db").is_file()  # the config's sqlite store, created by the UI's server
    status = json.loads(server.cli("server", "status", "--state-dir", server.state_dir, "--json").stdout)
    assert [s["state"] for s in status] == ["running", "running"]
    # the UI runs on one store: asked for another, it says so instead of "already running" on the first
    other = server.cli("server", "start", "--port", server.port, "--state-dir", server.state_dir, "--mlflow", "--mlflow-port", port,
                       "--backend-store-uri", f"sqlite:///{tmp_path / 'other.db'}")
    assert other.returncode == 4 and f"the MLflow UI already runs on another store (sqlite:///{tmp_path / 'store' / 'mlflow.db'})" in other.stderr


def test_models_reads_are_answered_by_the_mlflow_server_of_the_store(server, tmp_path, demo_dir):
    """With `server start --mlflow` running on the config's store, `models list|describe|history` read the
    registry over MLflow's REST API without loading MLflow, with the answers the store itself gives once the
    server stops; a store the server does not serve is read directly."""
    from mlflow import MlflowClient

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    config = shipped_config("credit_default", demo_dir / "credit.csv", tmp_path / "a")
    other = shipped_config("credit_default", demo_dir / "credit.csv", tmp_path / "b")
    local_server.stop(server.state_dir, local_server.MLFLOW)  # one another test started, on its own store
    port = free_port()
    started = server.cli("server", "start", "--port", server.port, "--state-dir", server.state_dir,
                         "--mlflow", "--mlflow-port", port, "--config", config)
    assert started.returncode == 0, started.stderr
    client = MlflowClient(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}")
    run = client.create_run(client.create_experiment("listing"))
    for name, versions in (("b-classifier", 2), ("a-classifier", 3)):
        client.create_registered_model(name)
        for _ in range(versions):
            client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    client.set_registered_model_alias("a-classifier", "champion", "2")
    client.set_registered_model_alias("a-classifier", "challenger", "3")
    client.log_metric(run.info.run_id, "roc_auc", 0.8125)
    client.set_model_version_tag("a-classifier", "2", "threshold", "0.42")
    move = {"alias": "champion", "version": "2", "at": "2026-11-28T10:00:00+00:00", "reason": "passed the gate", "metrics": {"roc_auc": 0.8125}}
    client.set_model_version_tag("a-classifier", "2", "alias_move:1", json.dumps(move))
    expected = [{"name": "a-classifier", "latest_version": 3, "aliases": {"champion": "2", "challenger": "3"}, "versions": 3},
                {"name": "b-classifier", "latest_version": 2, "aliases": {}, "versions": 2}]

    def models(cfg: Path, *args: str) -> tuple[int, list | dict | str, bool]:
        # reports on stderr whether the process loaded MLflow by the time it exited
        code = ("import runpy, sys\n"
                f"sys.argv = ['pipeline-cli', 'models', *{list(args)!r}, '--config', {str(cfg)!r}, '--json']\n"
                "try:\n    runpy.run_module('pipeline_cli.main', run_name='__main__')\n"
                "finally:\n    print('mlflow loaded:', 'mlflow' in sys.modules, file=sys.stderr)")
        env = {**server.env_without_url, "PIPELINE_SERVER_STATE_DIR": str(server.state_dir)}
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
        answer = json.loads(done.stdout)["result"] if done.returncode == 0 else next(
            (line for line in done.stderr.splitlines() if line.startswith("error:")), done.stderr)
        return done.returncode, answer, "mlflow loaded: True" in done.stderr

    reads = [("list",), ("describe", "a-classifier"), ("history", "a-classifier"), ("describe", "no-such-model")]
    over_rest = {r: models(config, *r) for r in reads}
    assert over_rest[("list",)] == (0, expected, False)
    assert [over_rest[r][0::2] for r in reads] == [(0, False), (0, False), (0, False), (6, False)]  # all answered over REST
    described = over_rest[("describe", "a-classifier")][1]
    assert [(v["version"], v["aliases"], v["threshold"], v["metrics"]) for v in described["versions"]] == [
        ("1", [], None, {"roc_auc": 0.8125}), ("2", ["champion"], "0.42", {"roc_auc": 0.8125}), ("3", ["challenger"], None, {"roc_auc": 0.8125})]
    assert over_rest[("history", "a-classifier")] == (0, [move], False)
    code, error, _ = over_rest[("describe", "no-such-model")]
    assert code == 6 and error.startswith("error: no registered model 'no-such-model'"), error
    code, error, _ = models(other, "list")  # a store with no MLflow database yet is not created by a read
    assert code == 4 and "no MLflow store there yet" in error and not (tmp_path / "b" / "store" / "mlflow.db").exists(), error
    from pipeline_core.config import load_config
    from pipeline_io import registry

    registry.connect(load_config(str(other)))
    assert models(other, "list") == (0, [], True)  # a store the server does not serve is read directly
    # flow commands hand the server and the store it serves to their scoring tasks (`registry.server_for`)
    handed = subprocess.run([sys.executable, "-c", "import os; from pipeline_cli.runtime import use_running_mlflow_server; "
                             "use_running_mlflow_server(); print(os.environ['PIPELINE_MLFLOW_SERVER'])"], capture_output=True, text=True,
                            env={**server.env_without_url, "PIPELINE_SERVER_STATE_DIR": str(server.state_dir)}, cwd=REPO, timeout=60)
    assert handed.returncode == 0, handed.stderr
    url, store = handed.stdout.split()
    assert url == f"http://127.0.0.1:{port}" and store == f"sqlite:///{(tmp_path / 'a' / 'store' / 'mlflow.db').resolve()}", handed.stderr
    assert local_server.stop(server.state_dir, local_server.MLFLOW) is not None  # Prefect's server keeps running
    for read in reads:  # the store itself gives the same answers
        assert models(config, *read)[:2] == over_rest[read][:2], read
    assert models(config, "list")[2]
