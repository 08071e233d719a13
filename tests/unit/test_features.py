import polars as pl
import pytest

from pipeline_core.errors import ConfigError, DataError
from pipeline_core.features import (
    FeatureSpec,
    age_bin,
    bill_trend,
    check_inputs,
    engineer_features,
    missing_indicator,
    pay_ratio,
    resolve_positive_label,
    target_expr,
    utilization,
)


def credit_rows(**over):
    base = {"limit_bal": [1000.0, 2000.0], "age": [24, 65]}
    base.update({f"bill_amt{i}": [float(700 - 100 * i), 50.0] for i in range(1, 7)})  # 600, 500, ..., 100 (newest first)
    base.update({f"pay_amt{i}": [10.0, 0.0] for i in range(1, 7)})
    base.update(over)
    return pl.DataFrame(base)


def test_age_bins_edges():
    df = pl.DataFrame({"age": [18, 24, 25, 34, 35, 64, 65, 90, None]})
    got = df.select(age_bin([25, 35, 45, 55, 65]))["age_bin"].to_list()
    assert got == ["<25", "<25", "25-34", "25-34", "35-44", "55-64", "65+", "65+", None]


def test_bill_trend_is_the_least_squares_slope():
    # oldest (bill_amt6) = 100 ... newest (bill_amt1) = 600: +100 a month; a flat bill has slope 0
    got = credit_rows().select(bill_trend())["bill_trend"].to_list()
    assert got == pytest.approx([100.0, 0.0])


def test_bill_trend_null_when_a_month_is_missing():
    df = credit_rows(bill_amt3=[None, 50.0])
    assert df.select(bill_trend())["bill_trend"].to_list()[0] is None


def test_pay_ratio_and_utilization():
    df = credit_rows()
    # paid 60 of 2100 billed; second row: nothing paid of 300
    assert df.select(pay_ratio())["pay_ratio"].to_list() == pytest.approx([60 / 2100, 0.0])
    assert df.select(utilization())["utilization"].to_list() == pytest.approx([600 / 1000, 50 / 2000])


def test_ratios_are_null_when_denominator_not_positive():
    df = credit_rows(limit_bal=[0.0, -5.0], **{f"bill_amt{i}": [0.0, -1.0] for i in range(1, 7)})
    assert df.select(utilization())["utilization"].to_list() == [None, None]
    assert df.select(pay_ratio())["pay_ratio"].to_list() == [None, None]


def test_missing_indicator():
    df = pl.DataFrame({"line_of_code": [1.0, None, 3.0]})
    out = df.select(missing_indicator("line_of_code"))
    assert out.columns == ["line_of_code_missing"] and out.to_series().to_list() == [0, 1, 0]


def test_engineer_features_credit_and_target():
    spec = FeatureSpec(feature_set="credit_default", target="y", positive_label="1")
    out = engineer_features(credit_rows(y=["1", "0"]).lazy(), spec).collect()
    assert {"age_bin", "bill_trend", "pay_ratio", "utilization"} <= set(out.columns)
    assert out["y"].to_list() == [1, 0]


def test_phishing_set_adds_line_of_code_indicator():
    spec = FeatureSpec(feature_set="phishing", target="y", positive_label="1")
    out = engineer_features(pl.LazyFrame({"line_of_code": [None, 5.0], "y": [1, 0]}), spec).collect()
    assert out["line_of_code_missing"].to_list() == [1, 0]


def test_target_with_text_labels():
    df = pl.DataFrame({"t": ["Yes", "no", None]})
    assert df.select(target_expr("t", "yes"))["t"].to_list() == [1, 0, None]


@pytest.mark.parametrize("values, configured, expected", [([0, 1], None, "1"), ([True, False], None, "true"), (["a", "b"], "b", "b"), ([0.0, 1.0], 1, "1")])
def test_positive_label(values, configured, expected):
    assert resolve_positive_label(values, configured, "t") == expected


def test_positive_label_errors():
    with pytest.raises(DataError, match="3 classes"):
        resolve_positive_label([0, 1, 2], None, "t")
    with pytest.raises(DataError, match="single class"):
        resolve_positive_label([1, 1], None, "t")
    with pytest.raises(ConfigError, match="set dataset.positive_label"):
        resolve_positive_label(["a", "b"], None, "t")
    with pytest.raises(ConfigError, match="not a value"):
        resolve_positive_label(["a", "b"], "c", "t")


def test_feature_set_needs_its_columns():
    with pytest.raises(DataError, match=r"needs column\(s\) \['limit_bal'"):
        check_inputs("credit_default", ["age"], "silver/x")
