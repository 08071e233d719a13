import json

import pytest

from pipeline_core.cleaning.naming import silver_name, snake_case
from pipeline_core.config import apply_overrides, load_config, parse_config
from pipeline_core.errors import ConfigError

MINIMAL = {"dataset": {"name": "d", "source": "x.csv", "target": "y"}}


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("NoOfURLRedirect", "no_of_url_redirect"),
        ("default payment next month", "default_payment_next_month"),
        ("LIMIT_BAL", "limit_bal"),
        ("PAY_0", "pay_0"),
        ("BILL_AMT1", "bill_amt1"),
        ("isPhishing", "is_phishing"),
        ("Unnamed: 0", "unnamed_0"),
        ("already_snake", "already_snake"),
    ],
)
def test_snake_case(raw, expected):
    assert snake_case(raw) == expected
    assert snake_case(expected) == expected  # idempotent: cleaned names resolve to themselves


def test_silver_name_applies_rename_first():
    assert silver_name("PAY_0", {"PAY_0": "PAY_1"}, True) == "pay_1"
    assert silver_name("PAY_0", {}, False) == "PAY_0"


def test_minimal_config_gets_defaults():
    cfg = parse_config(MINIMAL)
    assert cfg.store.root == "data/store"
    assert cfg.preprocessing.scaler == "robust"
    assert cfg.cleaning.drop_columns == ["Unnamed: 0"]


def test_unknown_key_names_path_and_allowed_keys():
    with pytest.raises(ConfigError) as err:
        parse_config({**MINIMAL, "store": {"rooot": "x"}}, source="c.yaml")
    msg = str(err.value)
    assert "c.yaml" in msg and "unknown key 'store.rooot'" in msg and "allowed keys: root, s3" in msg


def test_bad_literal_lists_allowed_values():
    with pytest.raises(ConfigError) as err:
        parse_config({**MINIMAL, "preprocessing": {"scaler": "zscore"}})
    assert "preprocessing.scaler" in str(err.value) and "'robust'" in str(err.value) and "zscore" in str(err.value)


@pytest.mark.parametrize("key", ["name", "source", "target"])
def test_missing_required_key(key):
    data = {"dataset": {k: v for k, v in MINIMAL["dataset"].items() if k != key}}
    with pytest.raises(ConfigError, match=f"missing required key 'dataset.{key}'"):
        parse_config(data)


def test_out_of_range_value():
    with pytest.raises(ConfigError, match="cleaning.max_failure_rate"):
        parse_config({**MINIMAL, "cleaning": {"max_failure_rate": 1.5}})


def test_overrides_parse_yaml_values_and_nest():
    out = apply_overrides(MINIMAL, ["store.root=/tmp/x", "cleaning.max_failure_rate=0.2", "cleaning.not_null=[a, b]"])
    assert out["store"]["root"] == "/tmp/x"
    assert out["cleaning"] == {"max_failure_rate": 0.2, "not_null": ["a", "b"]}
    assert "store" not in MINIMAL  # input untouched


def test_override_without_equals_is_an_error():
    with pytest.raises(ConfigError, match="KEY.PATH=VALUE"):
        apply_overrides(MINIMAL, ["store.root"])


def test_override_of_unknown_key_is_an_error():
    with pytest.raises(ConfigError, match="unknown key 'dataset.sauce'"):
        parse_config(MINIMAL, ["dataset.sauce=x"])


def test_malformed_yaml_names_file_and_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("dataset:\n  name: [unclosed\n")
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert str(p) in str(err.value) and "malformed YAML" in str(err.value) and "line" in str(err.value)


def test_a_key_given_twice_is_an_error_not_the_last_value(tmp_path):
    p = tmp_path / "twice.yaml"
    p.write_text("dataset:\n  name: a\n  source: x.csv\n  target: y\n  name: b\n")
    with pytest.raises(ConfigError, match=r"line 5, column 3: key 'name' appears twice") as err:
        load_config(p)
    assert str(p) in str(err.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_shipped_configs_are_valid():
    from pathlib import Path

    for name in ("credit_default", "phishing", "minimal"):
        cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / f"{name}.yaml")
        assert cfg.dataset.name


@pytest.mark.parametrize("name", ["team/model", "a:b", "model@champion", " padded"])
def test_a_registered_model_name_mlflow_would_refuse_is_caught_before_training(name):
    with pytest.raises(ConfigError, match=r"mlflow.registered_model.*cannot contain '/', ':' or '@'"):
        parse_config(MINIMAL, [f"mlflow.registered_model={json.dumps(name)}"])
