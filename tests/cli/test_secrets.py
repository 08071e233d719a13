"""Credentials in URLs and in the environment appear in no file, database or console line the pipeline writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline_core.redaction import conceal, redact, reveal
from tests.servers import flaky_file_server


@pytest.mark.parametrize("given, shown", [
    ("http://user:pa55@host:8080/f.csv?token=abc&sep=%2C", "http://***@host:8080/f.csv?token=***&sep=%2C"),
    ("https://ghp_tok@github.com/o/r/raw/x.csv", "https://***@github.com/o/r/raw/x.csv"),
    ("postgresql://optuna:s3cr3t@db:5432/studies", "postgresql://***@db:5432/studies"),
    ("s3://bucket/k.csv?X-Amz-Signature=ffff&X-Amz-Credential=AKIA%2F1&X-Amz-Date=20260101",
     "s3://bucket/k.csv?X-Amz-Signature=***&X-Amz-Credential=***&X-Amz-Date=20260101"),
    ("https://h/f.csv?api_key=1;sig=2&access_token=3&page=4", "https://h/f.csv?api_key=***;sig=***&access_token=***&page=4"),
    ("error: https://u:p@h/a.csv: HTTP 404 (and http://v:q@g/b)", "error: https://***@h/a.csv: HTTP 404 (and http://***@g/b)"),
    ("data/credit.csv", "data/credit.csv"),
    ("sqlite:///results/mlflow.db", "sqlite:///results/mlflow.db"),
    ("user@example.com wrote a=b", "user@example.com wrote a=b"),
])
def test_redact_masks_userinfo_and_credential_parameters_only(given, shown):
    assert redact(given) == shown


def test_conceal_hands_the_original_back_in_this_process_only():
    url = "https://u:secretpw@host/x.csv?token=t0k"
    shown = conceal(url)
    assert "secretpw" not in shown and "t0k" not in shown
    assert reveal(shown) == url
    assert reveal("data/plain.csv") == "data/plain.csv"


def test_config_serializes_locations_without_credentials(credit_config):
    from pipeline_core.config import load_config

    config = load_config(str(credit_config), ["dataset.source=https://u:pw1@h/c.csv?token=tk1",
                                              "training.tuning.storage=postgresql://o:pw2@db/s"])
    assert config.dataset.source == "https://u:pw1@h/c.csv?token=tk1"  # used as given
    dumped = config.model_dump_json()
    assert "pw1" not in dumped and "tk1" not in dumped and "pw2" not in dumped
    assert "https://***@h/c.csv?token=***" in dumped


def _every_file_under(*roots: Path) -> list[Path]:
    return [p for root in roots if root.exists() for p in root.rglob("*") if p.is_file()]


@pytest.mark.usefixtures("prefect_harness")
def test_a_whole_run_with_secrets_leaves_no_trace_of_them(tmp_path, demo_dir):
    """Source and predict URLs with userinfo and tokens, a header token from the environment, a failing
    fetch: every file of the store, logs, MLflow and Prefect databases and every console line is clean."""
    from prefect.settings import PREFECT_API_DATABASE_CONNECTION_URL, PREFECT_API_URL

    secrets = ["pw-in-userinfo-4711", "tok-in-query-0815", "header-token-1234", "key-in-predict-url-99"]
    repo = Path(__file__).resolve().parents[2]
    data = yaml.safe_load((repo / "configs" / "credit_default.yaml").read_text())
    data["store"]["root"] = str(tmp_path / "store")
    data["dataset"]["http"] = {"headers_from_env": {"X-Api-Token": "CREDIT_SOURCE_TOKEN"}, "retries": 0}
    config = tmp_path / "credit.yaml"
    config.write_text(yaml.safe_dump(data))
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_HOME": str(tmp_path / "home"),
           "CREDIT_SOURCE_TOKEN": secrets[2]}
    cli = Path(sys.executable).with_name("pipeline-cli")
    consoles = []

    def cli_run(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(cli), *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
        consoles.append(proc.stdout + proc.stderr)
        return proc

    with flaky_file_server(demo_dir / "credit.csv", require=("X-Api-Token", secrets[2])) as (url, sent):
        base = url.replace("http://", f"http://analyst:{secrets[0]}@")
        source = f"{base}?token={secrets[1]}"
        ran = cli_run("run", "--config", str(config), "--set", f"dataset.source={source}",
                      "--set", "training.models={logistic_regression: {}}", "--set", "training.tuning.n_trials=2",
                      "--set", "training.tuning.cv_folds=3", "--set", "mlflow.min_metrics={}",
                      "--predict", f"{base}?api_key={secrets[3]}", str(tmp_path / "scored.parquet"))
        assert ran.returncode == 0, ran.stderr[-2000:]
        assert sent and set(sent) == {200}  # the header token was sent, to the source's host
        # a predict URL the server refuses: the error names the URL, without its credentials
        refused = cli_run("predict", "--config", str(config), "--verbose",
                          url.replace("http://", f"http://analyst:{secrets[0]}@").replace("127.0.0.1", "localhost") + f"?token={secrets[1]}",
                          str(tmp_path / "refused.parquet"))
    assert refused.returncode == 4, refused.stderr[-2000:]
    assert "http://***@localhost" in refused.stderr and "token=***" in refused.stderr
    assert (tmp_path / "scored.parquet").exists()

    prefect_db = Path(PREFECT_API_DATABASE_CONNECTION_URL.value().split("///", 1)[1])
    files = _every_file_under(tmp_path, prefect_db.parent)
    assert any(p.name == "mlflow.db" for p in files) and any(p.suffix == ".log" for p in files)
    assert any("_delta_log" in p.parts for p in files)
    leaks = [(p, s) for p in files for s in secrets if s.encode() in p.read_bytes()]
    leaks += [("console", s) for text in consoles for s in secrets if s in text]
    assert leaks == []
