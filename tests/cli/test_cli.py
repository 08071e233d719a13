"""pipeline-cli through Typer's CliRunner: output, exit codes and one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipeline_cli.main import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # log files land in ./results/logs of the working directory


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_help_lists_every_command():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("bronze", "silver", "features", "gold", "feature-pipeline", "run", "pipeline", "full-pipeline", "config", "demo-data"):
        assert command in result.stdout
    assert "--install-completion" in result.stdout


@pytest.mark.parametrize("args, names", [(["--help"], []), (["models", "--help"], []), (["models", "promote", "--help"], ["NAME", "VERSION"]),
                                         (["report", "open", "--help"], ["KIND"]), (["predict", "--help"], ["INPUT OUTPUT"])])
def test_help_shows_no_python_types_and_names_the_arguments(args, names):
    result = invoke(*args)
    assert result.exit_code == 0 and "--help" in result.stdout
    assert "<bool>" not in result.stdout and "<str>" not in result.stdout
    assert all(name in result.stdout for name in names)
    usage = next(line for line in result.stdout.splitlines() if "Usage:" in line)
    assert "{" not in usage  # NAME, not {NAME}


def test_a_closed_pipe_ends_the_command_without_a_traceback():
    """`pipeline-cli predict --help | head -1`: the reader goes away early; the CLI exits without a traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "pipeline_cli.main", "predict", "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "COLUMNS": "120"})
    try:
        proc.stdout.close()  # nobody reads: the first write fails with EPIPE
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) != 0 and "Traceback" not in err and "AttributeError" not in err, err
    finally:
        if proc.poll() is None:
            proc.kill()


def test_version_is_the_installed_one():
    from importlib.metadata import version

    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout == f"pipeline-cli {version('tabular-pipeline')}\n"


def test_help_does_not_import_the_heavy_stack():
    code = "import sys; import pipeline_cli.main; print(sorted(m for m in ('prefect', 'polars', 'sklearn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_cached_training_stage_loads_no_modelling_library():
    # the flows a rerun walks through define their cached tasks without pandas, scikit-learn or MLflow
    code = ("import sys; import flows.training, flows.layers; "
            "print(sorted(m for m in ('pandas', 'sklearn', 'mlflow', 'xgboost', 'lightgbm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_config_validate_and_schema(credit_config):
    ok = invoke("config", "validate", "--config", credit_config, "--json", "--set", "store.root=/tmp/elsewhere")
    assert ok.exit_code == 0
    assert json.loads(ok.stdout)["result"]["store"]["root"] == "/tmp/elsewhere"
    schema = json.loads(invoke("config", "schema").stdout)
    assert set(schema["properties"]) == {"dataset", "store", "cleaning", "features", "preprocessing", "training", "mlflow",
                                         "inference", "monitoring"}


@pytest.mark.parametrize(
    "mutate, code, message",
    [
        (lambda d: d["store"].update(rooot="x"), 2, "unknown key 'store.rooot'"),
        (lambda d: d["preprocessing"].update(scaler="zscore"), 2, "preprocessing.scaler"),
        (lambda d: d["dataset"].pop("target"), 2, "missing required key 'dataset.target'"),
    ],
)
def test_bad_config_is_one_line_error(tmp_path, credit_config, mutate, code, message):
    data = yaml.safe_load(credit_config.read_text())
    mutate(data)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    for command in (["config", "validate"], ["run"]):
        result = invoke(*command, "--config", bad)
        assert result.exit_code == code
        assert message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_malformed_yaml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("dataset: [\n")
    assert invoke("bronze", "--config", bad).exit_code == 2
    missing = invoke("bronze", "--config", tmp_path / "none.yaml")
    assert missing.exit_code == 2 and "config file not found" in missing.stderr


def test_demo_data_is_deterministic(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert invoke("demo-data", "credit-default", "--rows", 500, "--seed", 3, "--out", a).exit_code == 0
    assert invoke("demo-data", "credit-default", "--rows", 500, "--seed", 3, "--out", b).exit_code == 0
    assert a.read_bytes() == b.read_bytes()
    result = invoke("demo-data", "phishing", "--rows", 300, "--out", tmp_path / "p.sqlite", "--json")
    assert json.loads(result.stdout)["result"]["rows"] >= 300


def test_negative_row_count_is_rejected(tmp_path):
    result = invoke("demo-data", "credit-default", "--rows", -5, "--out", tmp_path / "x.csv")
    assert result.exit_code != 0 and "--rows" in result.output
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.usefixtures("prefect_harness")
def test_run_json_summary_and_layer_commands(credit_config, tmp_path):
    result = invoke("run", "--config", credit_config, "--through", "gold", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    layers = {s["layer"]: s for s in payload["result"]}
    assert layers["bronze"]["status"] == "ingested" and layers["gold"]["status"] == "ran"
    assert Path(payload["log_file"]).exists()

    table = invoke("features", "--config", credit_config)
    assert table.exit_code == 0 and "cached" in table.stdout and "feature version" in table.stdout

    # --refresh distrusts the cache: the layers look at their tables and find nothing new
    again = invoke("run", "--config", credit_config, "--through", "gold", "--refresh", "--json")
    assert again.exit_code == 0, again.output
    assert {s["layer"]: s["status"] for s in json.loads(again.stdout)["result"]} == {"bronze": "skipped", "silver": "unchanged", "gold": "unchanged"}
    # --full-refresh rebuilds silver and gold from every bronze batch, as new table versions
    forced = invoke("run", "--config", credit_config, "--through", "gold", "--full-refresh", "--json")
    assert forced.exit_code == 0, forced.output
    rebuilt = {s["layer"]: s for s in json.loads(forced.stdout)["result"]}
    assert {k: (s["status"], s.get("mode")) for k, s in rebuilt.items() if k != "bronze"} == {"silver": ("ran", "full"), "gold": ("ran", "full")}
    assert rebuilt["silver"]["versions"]["data"] == layers["silver"]["versions"]["data"] + 1
    assert rebuilt["gold"]["version"] == layers["gold"]["version"] + 1


@pytest.mark.usefixtures("prefect_harness")
def test_user_error_in_a_fresh_process_prints_one_line_and_no_traceback(tmp_path, credit_config):
    """In a real process Prefect configures its logging on first import; the CLI's quiet console must outlast that."""
    from prefect.settings import PREFECT_API_URL

    env = {**__import__("os").environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_HOME": str(tmp_path / "home")}
    cli = Path(sys.executable).with_name("pipeline-cli")
    proc = subprocess.run([str(cli), "silver", "--config", str(credit_config), "--set", f"store.root={tmp_path / 'empty'}"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 3
    assert proc.stderr.strip().splitlines() == [
        f"error: no bronze batches for dataset 'credit_default' in {tmp_path / 'empty'}; run `pipeline-cli bronze` first"]


@pytest.mark.usefixtures("prefect_harness")
def test_data_error_is_one_line_with_exit_code(tmp_path, credit_config):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    result = invoke("bronze", "--config", credit_config, "--set", f"dataset.source={empty}")
    assert result.exit_code == 3
    assert result.stderr.strip() == f"error: {empty}: file is empty"
    store = yaml.safe_load(credit_config.read_text())["store"]["root"]
    assert not list(Path(store).rglob("*.parquet"))


@pytest.mark.usefixtures("prefect_harness")
def test_quiet_prints_nothing_on_success(credit_config):
    result = invoke("bronze", "--config", credit_config, "--quiet")
    assert result.exit_code == 0 and result.stdout == ""


@pytest.mark.usefixtures("prefect_harness")
def test_a_damaged_table_file_is_exit_4_naming_it(credit_config):
    assert invoke("run", "--config", credit_config, "--through", "silver", "--quiet").exit_code == 0
    store = Path(yaml.safe_load(credit_config.read_text())["store"]["root"])
    data_file = next((store / "silver" / "credit_default" / "data").glob("*.parquet"))
    data_file.write_bytes(data_file.read_bytes()[:100])
    result = invoke("features", "--config", credit_config)
    assert result.exit_code == 4, result.output
    assert result.stderr.strip() == (f"error: silver/credit_default/data/{data_file.name}: damaged data file (its size differs from the one "
                                     "the table's log recorded); restore it from a backup or rebuild the layer with --full-refresh")


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "my-box.example"])
def test_a_server_on_the_network_needs_allow_remote(tmp_path, host):
    from pipeline_cli.orchestration import is_loopback

    assert not is_loopback(host)
    result = runner.invoke(app, ["server", "start", "--host", host, "--state-dir", str(tmp_path / "state")])
    assert result.exit_code == 2
    assert "unauthenticated" in result.output and "--allow-remote" in result.output
    assert not (tmp_path / "state").exists() or not any((tmp_path / "state").iterdir())  # nothing was started


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_hosts_need_nothing(host):
    from pipeline_cli.orchestration import is_loopback

    assert is_loopback(host)


@pytest.mark.usefixtures("prefect_harness")
def test_a_replaced_cached_result_is_refused_not_run(tmp_path, credit_config):
    """A cache hit reads a persisted stage summary; one rewritten to name the pickle serializer must not run its payload."""
    import base64
    import os
    import pickle

    from prefect.settings import get_current_settings

    assert invoke("run", "--config", credit_config, "--through", "gold", "--quiet").exit_code == 0
    storage = Path(get_current_settings().results.local_storage_path)
    record_path = max(storage.glob("gold-*"), key=lambda p: p.stat().st_mtime)
    record = json.loads(record_path.read_bytes())
    assert record["metadata"]["serializer"]["type"] == "json"
    assert json.loads(record["result"])["layer"] == "gold"  # the summary itself is plain JSON
    hit = invoke("features", "--config", credit_config, "--json")
    assert hit.exit_code == 0 and json.loads(hit.stdout)["result"][0]["status"] == "cached"

    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    record["metadata"]["serializer"] = {"type": "pickle", "picklelib": "pickle"}
    record["result"] = base64.encodebytes(pickle.dumps(Payload())).decode()
    record_path.write_text(json.dumps(record))
    refused = invoke("features", "--config", credit_config)
    assert refused.exit_code == 4, refused.output
    assert refused.stderr.strip() == (f"error: {record_path}: a cached stage result that is not plain JSON was refused "
                                      "(it may have been replaced); delete the file, or rerun with --refresh")
    assert not marker.exists()
    rebuilt = invoke("features", "--config", credit_config, "--refresh", "--json")  # the documented way out
    assert rebuilt.exit_code == 0 and not marker.exists()
    assert json.loads(record_path.read_bytes())["metadata"]["serializer"]["type"] == "json"


@pytest.mark.usefixtures("prefect_harness")
def test_sigterm_stops_training_in_seconds_and_a_hard_kill_is_marked_on_the_next_start(tmp_path, credit_config):
    """SIGTERM mid-tuning: exit 143 with one line, within the grace period, the MLflow run KILLED; after a
    SIGKILL the run stays RUNNING until the next training marks it KILLED with the reason."""
    import os
    import time

    from prefect.settings import PREFECT_API_URL

    assert invoke("run", "--config", credit_config, "--through", "gold", "--quiet").exit_code == 0
    store = Path(yaml.safe_load(credit_config.read_text())["store"]["root"])
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_HOME": str(tmp_path / "home")}
    cli = Path(sys.executable).with_name("pipeline-cli")

    started: list[subprocess.Popen] = []

    def training(seconds: int) -> subprocess.Popen:
        started.append(subprocess.Popen([str(cli), "train", "--config", str(credit_config), "--refresh", "--set",
                                 "training.models={logistic_regression: {}}", "--set", f"training.time_budget_seconds={seconds}"],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path))
        return started[-1]

    def parent_runs(status: str) -> list[str]:
        """Read-only, straight from the database: an MLflow client here would race the child creating its schema."""
        import sqlite3

        try:
            with sqlite3.connect(f"{(store / 'mlflow.db').as_uri()}?mode=ro", uri=True, timeout=30) as conn:
                rows = conn.execute("SELECT run_uuid FROM runs WHERE status = ? AND name LIKE 'training-%'", (status,)).fetchall()
        except sqlite3.OperationalError:  # not created yet
            return []
        return [r[0] for r in rows]

    def when_tuning(proc: subprocess.Popen) -> None:
        for _ in range(240):
            if parent_runs("RUNNING"):
                time.sleep(2)  # into the tuning
                return
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.5)
        raise AssertionError("training never started")

    try:
        stop_and_kill(training, when_tuning, parent_runs, credit_config, store)
    finally:
        for proc in started:  # a failed assertion must not leave a training running
            if proc.poll() is None:
                proc.kill()


def stop_and_kill(training, when_tuning, parent_runs, credit_config, store: Path) -> None:
    import signal
    import time

    import mlflow

    proc = training(120)
    when_tuning(proc)
    proc.send_signal(signal.SIGTERM)
    sent = time.time()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and time.time() - sent < 15
    assert err.strip().splitlines() == ["terminated; nothing half-written was kept"]
    assert len(parent_runs("KILLED")) == 1 and not parent_runs("RUNNING")

    hard = training(120)
    when_tuning(hard)
    hard.kill()
    hard.communicate()
    [orphan] = parent_runs("RUNNING")
    mlflow.set_tracking_uri(f"sqlite:///{store / 'mlflow.db'}")
    assert invoke("train", "--config", credit_config, "--refresh", "--quiet", "--set", "training.models={logistic_regression: {}}",
                  "--set", "training.time_budget_seconds=5").exit_code == 0
    killed = mlflow.get_run(orphan)
    assert killed.info.status == "KILLED" and "ended without closing the run" in killed.data.tags["killed_reason"]


def test_models_list_falls_back_to_the_store_when_the_mlflow_server_stops_answering(credit_config, monkeypatch):
    """The server was found, then failed mid-call: the store itself answers, with no error."""
    from pipeline_io import registry_rest

    asked = []

    def unreachable(self, endpoint, params):
        asked.append(endpoint)
        raise registry_rest.ServerUnavailable(f"{endpoint}: connection refused")

    _registry_with_versions(credit_config, 0)  # a store without models: it answers an empty list
    monkeypatch.setattr("pipeline_cli.runtime.running_mlflow_server", lambda uri: "http://127.0.0.1:9")
    monkeypatch.setattr(registry_rest.RestRegistry, "_get", unreachable)
    result = runner.invoke(app, ["models", "list", "--config", str(credit_config), "--json"])
    assert result.exit_code == 0, result.output
    assert asked == ["registered-models/search"]
    assert json.loads(result.stdout)["result"] == []


def test_models_describe_shows_the_threshold_like_the_other_tables():
    from pipeline_cli.render import _threshold

    assert [_threshold(v) for v in ("0.2811119949060108", 0.5, None, "n/a")] == ["0.281", "0.500", "-", "n/a"]


def test_the_leaderboard_says_once_per_reason_which_models_kept_their_defaults():
    from rich.console import Console

    from pipeline_cli.render import training

    def model(name, tuned, note="", params_from="tuned", ended=None):
        return {"name": name, "metrics": {"roc_auc": 0.8, "pr_auc": 0.5, "f1": 0.6, "mcc": 0.4}, "threshold": 0.5, "cv_mean": 0.8, "seconds": 1.0,
                "trials": {"COMPLETE": 3 if tuned else 0}, "tuned": tuned, "note": note, "params_from": params_from,
                "tuning_ended": ended, "params": {}}

    summary = {"primary_metric": "roc_auc", "ranked_by": "cv", "time_budget_seconds": 60, "tuned_models": ["xgboost"],
               "promoted": True, "best_model": "xgboost", "registered_model": "m", "version": "1", "reason": "first",
               "champion_version": "1", "tracking_uri": "sqlite:///x.db",
               "models": [{**model("xgboost", True, ended="stalled"), "refit_full": True, "rows_fitted": 12345},
                          model("lightgbm", False, "tuning off"),
                          model("random_forest", False, "tuning off", "defaults"),
                          model("logistic_regression", False, "the time budget ended before its turn to be tuned", "defaults")]}
    console = Console(record=True, width=200)
    training(console, summary)
    lines = console.export_text().splitlines()
    assert "lightgbm, random_forest: untuned, trained with their defaults: tuning off" in lines
    assert "logistic_regression: untuned, trained with its defaults: the time budget ended before its turn to be tuned" in lines
    assert not any(line.startswith("xgboost: untuned") for line in lines)
    assert "time budget 60s for all models; tuned: xgboost (stopped when its score stalled)" in lines
    assert "best: xgboost (refitted on all 12,345 rows: training + holdout) -> m v1 promoted to champion: first" in lines


def test_the_mlflow_server_records_its_sqlite_store_by_absolute_path(tmp_path, monkeypatch):
    from pipeline_io.registry import absolute_tracking_uri, same_tracking_store

    monkeypatch.chdir(tmp_path)
    recorded = absolute_tracking_uri("sqlite:///store/mlflow.db")
    assert recorded == f"sqlite:///{tmp_path.resolve()}/store/mlflow.db"
    assert absolute_tracking_uri(recorded) == recorded and absolute_tracking_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the same relative URI from another folder is another store
    assert not same_tracking_store(recorded, "sqlite:///store/mlflow.db")
    assert same_tracking_store(recorded, "sqlite:///../store/mlflow.db")


def test_flows_reach_a_store_through_its_mlflow_server_only_when_that_server_serves_it(tmp_path, monkeypatch):
    from pipeline_io.registry import SERVER_ENV, server_for

    monkeypatch.chdir(tmp_path)
    served = f"sqlite:///{tmp_path.resolve()}/store/mlflow.db"
    monkeypatch.delenv(SERVER_ENV, raising=False)
    assert server_for(served) is None
    monkeypatch.setenv(SERVER_ENV, f"http://127.0.0.1:5123 {served}")
    assert server_for("sqlite:///store/mlflow.db") == "http://127.0.0.1:5123"  # the same file, named relatively
    assert server_for("sqlite:///other/mlflow.db") is None and server_for("http://tracking.example:5000") is None
    monkeypatch.setenv(SERVER_ENV, "http://127.0.0.1:5123")  # no store named: never assumed
    assert server_for(served) is None


@pytest.mark.parametrize("ending, code, message", [("sys.exit(3)", 3, None), ("sys.exit(0)", 0, None), ("sys.exit(None)", 0, None),
                                                   ("sys.exit('gone wrong')", 1, "gone wrong"), ("raise ValueError('bug')", 1, "ValueError: bug"),
                                                   ("pass", 0, None)])
@pytest.mark.parametrize("handler_before", [False, True])
def test_the_cli_process_ends_with_its_exit_code_after_every_exit_handler(tmp_path, ending, code, message, handler_before):
    """`pipeline-cli` skips the interpreter's teardown (`end_without_teardown`): the exit code, the console output,
    buffered log records and the exit handlers registered meanwhile (Prefect's, MLflow's, temporary folders) are kept.
    An exit handler registered before it (coverage, a host program) makes it end the process as Python does."""
    later, earlier, log = tmp_path / "later-handler-ran", tmp_path / "earlier-handler-ran", tmp_path / "cli.log"
    torn_down = tmp_path / "modules-torn-down"
    script = f"""
import atexit, logging, logging.handlers, pathlib, sys
class Module:  # finalised when the interpreter tears the modules down
    def __del__(self):
        pathlib.Path({str(torn_down)!r}).write_text("yes")
kept = Module()
if {handler_before}:
    atexit.register(lambda: pathlib.Path({str(earlier)!r}).write_text("yes"))
from pipeline_io.workarounds import end_without_teardown
with end_without_teardown():
    atexit.register(lambda: pathlib.Path({str(later)!r}).write_text("yes"))
    # held in memory until logging shuts down: only then does the file get the record
    logging.getLogger("x").addHandler(logging.handlers.MemoryHandler(1000, target=logging.FileHandler({str(log)!r})))
    logging.getLogger("x").warning("logged before the end")
    sys.stdout.write("partial line without a newline")
    {ending}
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == code, done.stderr
    assert done.stdout == "partial line without a newline"
    assert later.read_text() == "yes" and log.read_text() == "logged before the end\n"
    assert earlier.exists() == handler_before
    assert torn_down.exists() == handler_before  # the teardown is skipped unless a handler came first
    assert (message in done.stderr) if message else done.stderr == ""


# -- the registry commands on a registry of bare versions (no training needed) --------------------------------

MODEL = "credit-default-classifier"


def _registry_with_versions(config: Path, versions: int, name: str = MODEL):
    """A tracking store holding ``versions`` versions of ``name`` (none: an empty store), without artifacts."""
    from pipeline_core.config import load_config
    from pipeline_io import registry

    client, _ = registry.connect(load_config(str(config), []))
    if versions:
        client.create_registered_model(name)
        for _ in range(versions):
            client.create_model_version(name, source="file:///nowhere/model")
    return client


def _error(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def test_promote_normalises_the_version_so_a_rollback_finds_the_champion_before(credit_config):
    client = _registry_with_versions(credit_config, 2)
    assert invoke("models", "promote", MODEL, "2", "--config", credit_config).exit_code == 0
    promoted = invoke("models", "promote", MODEL, "01", "--config", credit_config, "--json")
    assert promoted.exit_code == 0, promoted.output
    assert json.loads(promoted.stdout)["result"]["version"] == "1"
    rolled = invoke("models", "rollback", MODEL, "--config", credit_config, "--json")
    assert rolled.exit_code == 0, rolled.output
    assert (json.loads(rolled.stdout)["result"]["version"], json.loads(rolled.stdout)["result"]["previous"]) == ("2", "1")
    moves = len(json.loads(invoke("models", "history", MODEL, "--config", credit_config, "--json").stdout)["result"])
    for bad in ("abc", "0", "1.0"):
        refused = invoke("models", "promote", MODEL, bad, "--config", credit_config)
        assert refused.exit_code == 2
        assert _error(refused) == (f"error: VERSION {bad!r}: a model version is a whole number from 1, e.g. 1; "
                                   f"`pipeline-cli models describe {MODEL}` lists them")
    assert len(json.loads(invoke("models", "history", MODEL, "--config", credit_config, "--json").stdout)["result"]) == moves
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "2"


def test_a_rollback_reads_a_history_that_recorded_a_version_as_typed(credit_config):
    """Histories written before versions were normalised may hold "01": the champion line still matches."""
    from pipeline_io.registry import champion_line

    history = [{"alias": "champion", "version": "2"}, {"alias": "champion", "version": "01"}]
    assert champion_line(history) == ["2", "1"]
    assert champion_line([*history, {"alias": "champion", "version": "2", "rollback_of": "01"}]) == ["2"]


@pytest.mark.parametrize("command", [["models", "list"], ["models", "describe", MODEL], ["models", "history", MODEL],
                                     ["models", "promote", MODEL, "1"], ["models", "rollback", MODEL],
                                     ["lineage", f"models:/{MODEL}/1"]])
def test_registry_commands_never_create_a_tracking_store_where_a_mistyped_location_points(credit_config, tmp_path, command, monkeypatch):
    missing = tmp_path / "nonexistent" / "dir"
    by_uri = invoke(*command, "--config", credit_config, "--set", f"mlflow.tracking_uri=sqlite:///{missing}/x.db")
    assert by_uri.exit_code == 4
    assert _error(by_uri) == (f"error: mlflow.tracking_uri sqlite:///{missing}/x.db: no MLflow store there yet; "
                              "train a model first (`pipeline-cli run`) or fix mlflow.tracking_uri")
    by_root = invoke(*command, "--config", credit_config, "--set", f"store.root={missing}")
    assert by_root.exit_code == 4
    assert _error(by_root).startswith(f"error: store.root {missing}: no MLflow store there yet (")
    assert _error(by_root).endswith("is missing); train a model first (`pipeline-cli run`) or fix store.root")
    assert not (tmp_path / "nonexistent").exists()
    assert not (tmp_path / "store").exists()  # nor the configured store's
    monkeypatch.chdir(tmp_path)  # the registry of an s3:// store is ./results/mlflow.db: none here
    on_s3 = invoke(*command, "--config", credit_config, "--set", "store.root=s3://lake/credit")  # (S3 not reached: the registry is local)
    assert on_s3.exit_code == 4 and "an s3:// store's registry is ./results/mlflow.db under the folder its models were trained" in _error(on_s3)


@pytest.mark.parametrize("command", [["models", "history", "nope"], ["models", "describe", "nope"], ["models", "promote", "nope", "1"],
                                     ["lineage", "models:/nope/1"]])
def test_an_unknown_model_name_points_at_the_list_of_names(credit_config, command):
    _registry_with_versions(credit_config, 1)
    result = invoke(*command, "--config", credit_config)
    assert result.exit_code == 6
    assert _error(result) == "error: no registered model 'nope'; `pipeline-cli models list` shows the names"


def test_lineage_of_an_unknown_alias_hints_at_what_lineage_takes(credit_config):
    _registry_with_versions(credit_config, 1)
    result = invoke("lineage", f"models:/{MODEL}@nope", "--config", credit_config)
    assert result.exit_code == 6
    assert _error(result) == (f"error: model '{MODEL}' has no version with alias 'nope'; train one (`pipeline-cli train`), "
                              f"promote one (`pipeline-cli models promote`) or name a version (models:/{MODEL}/VERSION)")


@pytest.mark.parametrize("command, argument", [(["predict", "{csv}", "{out}", "--model"], "--model"),
                                               (["inference-pipeline"], "MODEL_URI"), (["lineage"], "TARGET")])
@pytest.mark.parametrize("uri, problem", [(f"models:/{MODEL}", f"name a version, e.g. models:/{MODEL}/1 or models:/{MODEL}@champion"),
                                          (f"models:/{MODEL}/01x", "a model version is a whole number from 1, e.g. 1; "
                                                                   f"`pipeline-cli models describe {MODEL}` lists them")])
def test_a_model_uri_without_a_version_is_refused_naming_the_argument(credit_config, demo_dir, tmp_path, command, argument, uri, problem):
    _registry_with_versions(credit_config, 1)
    args = [a.format(csv=demo_dir / "credit.csv", out=tmp_path / "p.parquet") for a in command]
    if command == ["inference-pipeline"]:
        args += [uri, str(demo_dir / "credit.csv"), str(tmp_path / "p.parquet")]
    else:
        args.append(uri)
    result = invoke(*args, "--config", credit_config)
    assert result.exit_code == 2
    assert _error(result) == f"error: {argument} {uri!r}: {problem}"
    assert not (tmp_path / "p.parquet").exists()


def test_a_logged_models_own_uri_is_a_model_not_a_name_missing_its_version(credit_config):
    """MLflow 3 names a logged model models:/m-<id>: scored like runs:/, and lineage says it is not a registered version."""
    from pipeline_io.registry import check_model_uri

    logged = "models:/m-82490dadf8024c24b8b0d6e03a9c8b4f"
    assert check_model_uri(logged) == (None, None, None)
    _registry_with_versions(credit_config, 1)
    result = invoke("lineage", logged, "--config", credit_config)
    assert result.exit_code == 2
    assert _error(result) == (f"error: TARGET {logged!r}: a logged model, not a registered version; "
                              "give models:/NAME/VERSION or models:/NAME@ALIAS")


def test_inference_pipeline_names_its_positional_model_uri(credit_config, demo_dir, tmp_path):
    result = invoke("inference-pipeline", "bogus", demo_dir / "credit.csv", tmp_path / "p.parquet", "--config", credit_config)
    assert result.exit_code == 2
    assert _error(result) == ("error: MODEL_URI 'bogus': use models:/<name>/<version>, models:/<name>@<alias> "
                              "or runs:/<run id>/model")
    assert not (tmp_path / "store").exists()


def test_an_unknown_training_key_lists_register_not_its_attribute_name(credit_config):
    result = invoke("config", "validate", "--config", credit_config, "--set", "training.registr=all")
    assert result.exit_code == 2
    allowed = _error(result).split("allowed keys: ", 1)[1].split(", ")
    assert "register" in allowed and "registration" not in allowed


def test_commands_started_in_the_same_second_log_to_files_of_their_own(tmp_path, monkeypatch):
    from datetime import datetime

    from pipeline_cli import runtime

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2026, 11, 30, 9, 15, 0)

    monkeypatch.setattr(runtime, "LOG_DIR", tmp_path)
    monkeypatch.setattr(runtime, "datetime", Frozen)
    paths = [runtime.new_log_file("run") for _ in range(3)]
    assert [p.name for p in paths] == ["20261130-091500-run.log", "20261130-091500-run-2.log", "20261130-091500-run-3.log"]
    assert all(p.exists() for p in paths)
