"""prefect.yaml, the served deployments built from it, run output names and the orchestration CLI's errors."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from deployments.definitions import load_deployment_specs, select
from pipeline_core.errors import ConfigError
from pipeline_core.outputs import run_output_uri

REPO = Path(__file__).resolve().parents[2]

# The design's schedule: feature pipeline daily 04:00, training Sunday 05:00, inference hourly, full on demand.
EXPECTED = {
    "feature-pipeline-daily": ("flows/layers.py:run_flow", ["0 4 * * *"]),
    "training-weekly": ("flows/training.py:training_flow", ["0 5 * * 0"]),
    "batch-inference-hourly": ("flows/scheduled.py:scheduled_inference_flow", ["0 * * * *"]),
    "full-pipeline-on-demand": ("flows/layers.py:run_flow", []),
}


def test_prefect_yaml_declares_the_design_schedule():
    specs = {s.name: s for s in load_deployment_specs(REPO / "prefect.yaml")}
    assert {name: (s.entrypoint, [c.cron for c in s.schedules]) for name, s in specs.items()} == EXPECTED
    for s in specs.values():
        assert s.work_pool == "pipeline-process"
        assert all(c.timezone == "UTC" for c in s.schedules)
        assert (REPO / s.parameters["config_path"]).is_file()
        assert (REPO / s.entrypoint.split(":")[0]).is_file()
    assert specs["feature-pipeline-daily"].parameters["through"] == "gold"
    assert specs["full-pipeline-on-demand"].parameters["through"] == "training"
    inference = specs["batch-inference-hourly"].parameters
    assert {"input_uri", "output_uri"} <= set(inference)
    hour = datetime(2026, 11, 1, 4, tzinfo=timezone.utc)
    assert run_output_uri(inference["output_uri"], hour) != run_output_uri(inference["output_uri"], hour + timedelta(hours=1))


def test_prefect_yaml_runs_from_the_clone_it_was_deployed_from():
    document = yaml.safe_load((REPO / "prefect.yaml").read_text())
    (build,) = document["build"]
    (pull,) = document["pull"]
    step_id = build["prefect.deployments.steps.run_shell_script"]["id"]
    assert build["prefect.deployments.steps.run_shell_script"]["script"] == "pwd"
    assert pull["prefect.deployments.steps.set_working_directory"]["directory"] == "{{ " + step_id + ".stdout }}"

    def strings(node):
        if isinstance(node, dict):
            for v in node.values():
                yield from strings(v)
        elif isinstance(node, list):
            for v in node:
                yield from strings(v)
        elif isinstance(node, str):
            yield node

    assert not [s for s in strings(document["deployments"]) if s.startswith(("/", "~")) or ":\\" in s]


def test_served_deployments_are_the_ones_prefect_yaml_declares():
    from deployments.serve import build_deployments

    specs = load_deployment_specs(REPO / "prefect.yaml")
    cwd = os.getcwd()
    os.chdir(REPO)  # as serve does: entrypoints are recorded relative to the project root
    try:
        built = build_deployments(specs, REPO)
    finally:
        os.chdir(cwd)
    assert [d.name for d in built] == [s.name for s in specs]
    for spec, d in zip(specs, built):
        assert d.entrypoint == spec.entrypoint
        assert d.parameters == spec.parameters
        assert d.description == spec.description
        assert [(s.schedule.cron, s.schedule.timezone) for s in d.schedules] == [(c.cron, c.timezone) for c in spec.schedules]
    flows = {d.name: d.flow_name for d in built}
    assert flows["feature-pipeline-daily"] == flows["full-pipeline-on-demand"] == "full-pipeline"
    assert flows["training-weekly"] == "training-pipeline"
    assert flows["batch-inference-hourly"] == "scheduled-batch-inference"


def test_selecting_deployments_by_name():
    specs = load_deployment_specs(REPO / "prefect.yaml")
    assert [s.name for s in select(specs, ["training-weekly"])] == ["training-weekly"]
    assert select(specs, None) == specs
    with pytest.raises(ConfigError, match="unknown deployment 'nightly'; prefect.yaml declares: feature-pipeline-daily"):
        select(specs, ["nightly"])


@pytest.mark.parametrize(
    "template, when, expected",
    [
        ("out/{scheduled_start:%Y%m%dT%H%M%SZ}.parquet", datetime(2026, 11, 1, 4, tzinfo=timezone.utc), "out/20261101T040000Z.parquet"),
        # a scheduled time in another zone is named in UTC
        ("out/{scheduled_start:%Y%m%d_%H}.parquet", datetime(2026, 11, 1, 6, tzinfo=timezone(timedelta(hours=2))), "out/20261101_04.parquet"),
        ("s3://bucket/predictions/", datetime(2026, 11, 1, 4, 30, 15), "s3://bucket/predictions/predictions-20261101T043015Z.parquet"),
        # the bare field uses the default format; other fields are left for the inference flow
        ("out/{date}/{scheduled_start}.parquet", datetime(2026, 11, 1, 4, tzinfo=timezone.utc), "out/{date}/20261101T040000Z.parquet"),
    ],
)
def test_run_output_uri_names_each_run_by_its_scheduled_time(template, when, expected):
    assert run_output_uri(template, when) == expected


@pytest.mark.parametrize("template", ["out/predictions.parquet", "out/{run}.parquet", "out/{scheduled_start_time}.parquet"])
def test_run_output_uri_refuses_a_name_shared_by_every_run(template):
    with pytest.raises(ConfigError, match="output_uri"):
        run_output_uri(template, datetime(2026, 11, 1, tzinfo=timezone.utc))


def cli(*args, env_extra=None, cwd=None):
    """pipeline-cli in a subprocess with no Prefect server configured (tests' harness settings stay out)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = os.environ["PREFECT_HOME"]
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "pipeline_cli.main", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd or REPO, timeout=120)


def test_deploy_and_serve_without_a_server_fail_in_one_line(tmp_path):
    from deployments.local_server import free_port

    unset = cli("deploy")
    assert unset.returncode == 4, unset.stderr
    assert unset.stderr.strip() == ("error: PREFECT_API_URL is not set: deployments need a running Prefect server; "
                                    "start one with `pipeline-cli server start` (later commands in this directory find it)")
    url = f"http://127.0.0.1:{free_port()}/api"
    for command in (["deploy"], ["serve"]):
        down = cli(*command, env_extra={"PREFECT_API_URL": url})
        assert down.returncode == 4
        assert down.stderr.strip() == f"error: no Prefect server answers at {url} (PREFECT_API_URL); start one with `pipeline-cli server start`"
    unknown = cli("deploy", "--name", "nightly", env_extra={"PREFECT_API_URL": url})
    assert unknown.returncode == 2 and "unknown deployment 'nightly'" in unknown.stderr
    elsewhere = cli("serve", cwd=tmp_path)
    assert elsewhere.returncode == 2 and "prefect.yaml not found" in elsewhere.stderr


def test_server_stop_and_status_when_nothing_runs(tmp_path):
    state = tmp_path / "state"
    status = cli("server", "status", "--state-dir", state)
    assert status.returncode == 1
    assert status.stdout.splitlines() == ["prefect: stopped", "mlflow: stopped"]
    stop = cli("server", "stop", "--state-dir", state)
    assert stop.returncode == 0 and stop.stderr.strip() == "no server started by pipeline-cli is running"


def test_help_lists_the_orchestration_commands():
    from typer.testing import CliRunner

    from pipeline_cli.main import app

    runner = CliRunner()
    commands = {line.split()[1] for line in runner.invoke(app, ["--help"]).stdout.splitlines() if line.startswith("│ ") and len(line.split()) > 1}
    assert {"serve", "deploy", "server"} <= commands
    server = runner.invoke(app, ["server", "--help"]).stdout
    assert all(sub in server for sub in ("start", "stop", "status"))


def test_scheduled_inference_names_its_output_by_the_run(prefect_harness, monkeypatch):
    import re

    from prefect import flow

    import flows.scheduled as scheduled

    @flow(name="stand-in-for-batch-inference")
    def stand_in(config_path, input_uri, output_uri, model_uri=None, overrides=None, threshold=None, shadow=False):
        return {"config_path": config_path, "input_uri": input_uri, "output_uri": output_uri, "threshold": threshold, "shadow": shadow}

    monkeypatch.setattr(scheduled, "inference_flow", stand_in)
    result = scheduled.scheduled_inference_flow("c.yaml", "in.csv", "out/{scheduled_start:%Y%m%dT%H%M%SZ}.parquet", threshold=0.3,
                                                shadow=True)
    assert re.fullmatch(r"out/\d{8}T\d{6}Z\.parquet", result["output_uri"])
    assert (result["config_path"], result["input_uri"], result["threshold"], result["shadow"]) == ("c.yaml", "in.csv", 0.3, True)
    with pytest.raises(ConfigError, match="each run writes its own file"):
        scheduled.scheduled_inference_flow("c.yaml", "in.csv", "out/predictions.parquet")
