"""The monitoring loop told whole, on a real Prefect server with prefect.yaml's deployments and a worker:
train v1; a drifted batch scored through the inference deployment; the automation retrains; v2 is
promoted because it is significantly better; outcomes show v2 degraded; the champion rolls back to v1;
the webhook received each notification; monitor, the registry history, MLflow and the reports show it.

The project is deployed from a folder of its own (the repository's code linked in, prefect.yaml
copied, `configs/credit_default.yaml` pointing at small demo data and a temporary store), so the
deployments' relative config path is the test's and nothing is written into the repository.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import httpx
import polars as pl
import pytest
import yaml

from deployments.notifications import WEBHOOK_ENV
from pipeline_core import demo_data
from pipeline_io import demo_files
from pipeline_io.events import DRIFT_DETECTED, MODEL_PROMOTED, MODEL_ROLLED_BACK, PERFORMANCE_DEGRADED
from tests.conftest import shipped_config
from tests.e2e.test_prefect_server import POOL, REPO, Server, kill_group
from tests.servers import webhook_receiver

pytestmark = pytest.mark.slow
FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")

MODEL = "credit-default-classifier"
TARGET = "default payment next month"
# v1: a deliberately weak champion (one split per tree), so that the retrained v2 is significantly better
STUMP = ["training.models={random_forest: {params: {n_estimators: 3, max_depth: 1}}}", "training.tuning.enabled=false"]


@pytest.fixture(scope="module")
def project(tmp_path_factory, demo_dir) -> Path:
    root = tmp_path_factory.mktemp("project")
    for package in ("flows", "tasks", "pipeline_core", "pipeline_io", "pipeline_cli", "deployments"):
        (root / package).symlink_to(REPO / package, target_is_directory=True)
    shutil.copy(REPO / "prefect.yaml", root / "prefect.yaml")
    (root / "configs").mkdir()
    config = yaml.safe_load(shipped_config("credit_default", demo_dir / "credit.csv", root).read_text())
    config["training"].update(models={"logistic_regression": {}}, time_budget_seconds=30)
    config["training"]["tuning"] = {**config["training"].get("tuning", {}), "n_trials": 2, "cv_folds": 3}
    config.setdefault("mlflow", {})["min_metrics"] = {}
    config.setdefault("monitoring", {})["rollback_margin"] = 0.05
    (root / "configs" / "credit_default.yaml").write_text(yaml.safe_dump(config))
    return root


@pytest.fixture(scope="module")
def story_server(tmp_path_factory, project):
    srv = Server(tmp_path_factory.mktemp("story-server"))
    started = srv.cli("server", "start", "--port", srv.port, "--state-dir", srv.state_dir)
    assert started.returncode == 0, started.stderr
    try:
        yield srv
    finally:
        srv.cli("server", "stop", "--state-dir", srv.state_dir)


def api(srv: Server, method: str, path: str, body: dict | None = None):
    """One API call, tried again on a transient failure: the server shares two cores with a worker running flows."""
    for attempt in range(5):
        try:
            return srv.api(method, path, body)
        except httpx.HTTPError:
            if attempt == 4:
                raise
            time.sleep(2)


def run_to_the_end(srv: Server, deployment_id: str, parameters: dict, timeout: float) -> dict:
    """Create a run of a deployment through the API and wait until it reaches a final state."""
    run = api(srv, "POST", f"/deployments/{deployment_id}/create_flow_run", {"parameters": parameters})
    return wait_for(f"flow run {run['id']} to finish",
                    lambda: (r := api(srv, "GET", f"/flow_runs/{run['id']}"))["state_type"] in FINAL and r, timeout)


def wait_for(what: str, check, timeout: float):
    """Poll ``check`` until it returns something; a poll the server is too busy to answer (a training flow
    holding two cores and its SQLite database) counts as not yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if found := check():
                return found
        except httpx.TimeoutException:
            pass
        assert time.monotonic() < deadline, f"{what}: not within {timeout:.0f} s"
        time.sleep(2)


def test_drift_retrains_a_better_champion_that_outcomes_then_roll_back(story_server, project, tmp_path, demo_dir):
    srv, config = story_server, project / "configs" / "credit_default.yaml"
    store = Path(yaml.safe_load(config.read_text())["store"]["root"])
    with webhook_receiver() as (url, received):
        srv.env[WEBHOOK_ENV] = url
        try:
            deployed = srv.cli("deploy", "--prefect-file", project / "prefect.yaml")
        finally:
            srv.env.pop(WEBHOOK_ENV)
        assert deployed.returncode == 0, deployed.stdout[-2000:] + deployed.stderr[-2000:]
        training_id = srv.deployments()["training-weekly"]["id"]

        # v1: the first champion
        first = srv.cli("run", "--config", config, "--quiet", *[a for o in STUMP for a in ("--set", o)], timeout=300)
        assert first.returncode == 0, first.stderr[-3000:]
        import mlflow

        uri = f"sqlite:///{store / 'mlflow.db'}"
        client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)  # not the registry an earlier test set for this process
        assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "1"

        worker = srv.spawn("-m", "prefect", "worker", "start", "--pool", POOL, "--type", "process", log=tmp_path / "worker.log")
        try:
            # a drifted batch, scored by the hourly inference deployment
            fresh = demo_data.credit_default_frame(1500, seed=99)
            shifted = fresh.with_columns((pl.col("ID").cast(pl.Int64) + 100_000).alias("ID"),  # people the outcomes do not cover
                                         (pl.col("LIMIT_BAL").cast(pl.Float64, strict=False) * 4).alias("LIMIT_BAL"),
                                         (pl.col("PAY_0").cast(pl.Int64, strict=False) + 2).clip(upper_bound=8).alias("PAY_0"))
            demo_files.write_csv(shifted, tmp_path / "drifted.csv")
            inference_id = srv.deployments()["batch-inference-hourly"]["id"]
            parameters = {**srv.deployments()["batch-inference-hourly"]["parameters"], "input_uri": str(tmp_path / "drifted.csv"),
                          "output_uri": str(tmp_path / "scored" / "{scheduled_start:%Y%m%dT%H%M%SZ}.parquet")}
            scored = run_to_the_end(srv, inference_id, parameters, 240)
            assert scored["state_type"] == "COMPLETED", (tmp_path / "worker.log").read_text()[-3000:]

            # the automation of prefect.yaml creates a training run, which the worker runs to the end
            def retrained():
                runs = api(srv, "POST", "/flow_runs/filter", {"flow_runs": {"deployment_id": {"any_": [training_id]}}})
                return [r for r in runs if r["parameters"].get("refresh") is True and r["state_type"] == "COMPLETED"]

            wait_for("a completed training run created by the drift automation", retrained, 300)
        finally:
            kill_group(worker)
        log = (tmp_path / "worker.log").read_text()

        # v2 was promoted by the gate on a paired bootstrap whose interval is clear of zero
        history = srv.cli("models", "history", MODEL, "--config", config, "--json")
        moves = json.loads(history.stdout)["result"]
        v2_move = [m for m in moves if m["alias"] == "champion" and m["version"] == "2"]
        assert v2_move and "paired bootstrap" in v2_move[0]["reason"] and "better by more than 0" in v2_move[0]["reason"], (moves, log[-2000:])
        evidence = json.loads(client.get_model_version(MODEL, "2").tags["gate_evidence"])
        assert evidence["champion"] == "1" and evidence["low"] > 0

        # outcomes of a batch v2 scored contradict its predictions: degraded, and rolled back to v1
        source = pl.read_csv(demo_dir / "credit.csv", infer_schema=False)
        source.head(1200).write_csv(tmp_path / "later.csv")
        later = srv.cli("predict", tmp_path / "later.csv", tmp_path / "later.parquet", "--config", config, "--quiet")
        assert later.returncode == 0, later.stderr[-2000:]
        flipped = source.head(1200).select("ID", (1 - pl.col(TARGET).cast(pl.Int8)).cast(pl.String).alias(TARGET))
        flipped.write_csv(tmp_path / "outcomes.csv")
        fed = srv.cli("feedback", tmp_path / "outcomes.csv", "--config", config, "--json")
        assert fed.returncode == 0, fed.stderr[-2000:]
        result = json.loads(fed.stdout)["result"]
        assert result["events"] == [PERFORMANCE_DEGRADED, MODEL_ROLLED_BACK] and result["rollback"]["version"] == "1"

        # the webhook received each notification the server sent
        wanted = {MODEL_PROMOTED, DRIFT_DETECTED, PERFORMANCE_DEGRADED, MODEL_ROLLED_BACK}
        wait_for("a message per event at the webhook", lambda: wanted <= {m["subject"].split(":")[0] for m in received}, 120)
        promoted = [m for m in received if m["subject"].startswith(MODEL_PROMOTED)]
        assert any(f"{MODEL} v2" in m["body"] for m in promoted) and any(f"{MODEL} v1" in m["body"] for m in promoted)

    # the cool-down: the degraded event, inside the six hours after the drift, retrained nothing more
    runs = api(srv, "POST", "/flow_runs/filter", {"flow_runs": {"deployment_id": {"any_": [training_id]}}})
    assert len([r for r in runs if r["parameters"].get("refresh") is True]) == 1

    # every step is visible: the registry history, monitor, MLflow and the reports
    moves = json.loads(srv.cli("models", "history", MODEL, "--config", config, "--json").stdout)["result"]
    assert [(m["alias"], m["version"]) for m in moves if m["alias"] == "champion"] == [("champion", "1"), ("champion", "2"), ("champion", "1")]
    assert "below version 1's" in moves[-1]["reason"]
    monitored = json.loads(srv.cli("monitor", "--config", config, "--json").stdout)["result"]
    assert [r["status"] for r in monitored][-1] == "drift" and monitored[0]["model"].endswith("v2") and monitored[0]["realized"] < 0.5
    outcome_runs = client.search_runs([e.experiment_id for e in client.search_experiments()], "tags.kind = 'outcomes'")
    assert [r.data.tags["model_version"] for r in outcome_runs] == ["2"]
    pages = sorted(p.name for p in (store / "reports" / "credit_default").glob("*.html"))
    assert [p.split("-")[0] for p in pages].count("training") == 2 and [p.split("-")[0] for p in pages].count("scoring") == 2
    assert any(p.startswith("training-") and p.endswith("-v2.html") for p in pages)
