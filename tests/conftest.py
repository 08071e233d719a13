"""Shared fixtures: small demo datasets, temporary stores, one Prefect test harness per session."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Prefect reads these at import time; a private home keeps tests off the user's Prefect state.
_PREFECT_HOME = tempfile.mkdtemp(prefix="pipeline-tests-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
for var in ("PREFECT_API_URL", "AWS_ENDPOINT_URL", "AWS_PROFILE"):
    os.environ.pop(var, None)
# no test finds a server a developer started with `pipeline-cli server start` in the checkout
os.environ["PIPELINE_SERVER_STATE_DIR"] = tempfile.mkdtemp(prefix="pipeline-tests-server-state-")

import yaml  # noqa: E402

from pipeline_core import demo_data  # noqa: E402
from pipeline_io import demo_files


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("demo")
    demo_files.write_csv(demo_data.credit_default_frame(3000, seed=7), d / "credit.csv")
    demo_files.write_sqlite(demo_data.phishing_frame(1500, seed=7), d / "phishing.sqlite")
    return d


def write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def shipped_config(name: str, source: Path, tmp_path: Path) -> Path:
    """A shipped config pointed at small demo data and a temporary store."""
    repo = Path(__file__).resolve().parents[1]
    data = yaml.safe_load((repo / "configs" / f"{name}.yaml").read_text())
    data["dataset"]["source"] = str(source)
    data["store"]["root"] = str(tmp_path / "store")
    return write_config(tmp_path / f"{name}.yaml", data)


@pytest.fixture
def credit_config(tmp_path, demo_dir) -> Path:
    return shipped_config("credit_default", demo_dir / "credit.csv", tmp_path)


@pytest.fixture
def phishing_config(tmp_path, demo_dir) -> Path:
    return shipped_config("phishing", demo_dir / "phishing.sqlite", tmp_path)


def pytest_collection_modifyitems(config, items):
    """Tests under tests/e2e start real servers: they are the `slow` tier (`-m "not slow"` skips them)."""
    e2e = Path(__file__).resolve().parent / "e2e"
    for item in items:
        if e2e in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.slow)
