"""The HTML reports: what they say, that they say it safely, and that they need nothing but the file."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from pipeline_core.reports import data_profile, leaderboard_rows, scoring_report_html, training_report_html

PNG = bytes.fromhex("89504e470d0a1a0a")  # a PNG signature is enough to check inlining


def training_facts(**changes):
    facts = dict(
        title="Training of credit_default: m v3", subtitle="now",
        decision={"promoted": True, "reason": "roc_auc +0.0123 against the champion", "model": "lightgbm", "version": "3",
                  "evidence": {"metric": "roc_auc", "delta": 0.0123, "low": 0.0051, "high": 0.0199, "confidence": 0.95,
                               "resamples": 1000, "champion": "2"}},
        profile=data_profile({"class_balance": {"positive": 30, "negative": 70, "positive_rate": 0.3}, "version": 4, "feature_version": "abc",
                              "missing_values": {"age": 0.02, "bill": 0.3}},
                             {"rows_in": 110, "rows_out": 100, "rows_quarantined": 10, "repeated_rows": 0,
                              "quarantined_by_rule": {"range:age": 7, "cast:limit_bal": 3}}),
        leaderboard=leaderboard_rows([{"name": "lightgbm", "metrics": {"roc_auc": 0.81}, "cv_mean": 0.8, "cv_std": 0.011, "threshold": 0.3,
                                       "tuned": True, "seconds": 12.0, "rank": 1},
                                      {"name": "<script>alert(1)</script>", "metrics": {"roc_auc": 0.7}, "cv_mean": 0.69, "cv_std": 0.02,
                                       "threshold": 0.5, "tuned": False, "note": "not among the most promising defaults", "seconds": 1.0,
                                       "rank": 2}], "roc_auc"),
        primary="roc_auc", metrics={"roc_auc": 0.81, "f1": 0.55}, figures={"ROC curve": PNG},
        importance=[{"name": "pay_1", "mean": 0.08, "std": 0.004}, {"name": "sex", "mean": -0.001, "std": 0.0005}], importance_repeats=3)
    return {**facts, **changes}


def test_the_training_page_states_the_decision_interval_profile_and_leaderboard():
    html = training_report_html(**training_facts())
    text = re.sub(r"<[^>]+>", " ", html)
    assert "promoted to champion" in text and "+0.0051 to +0.0199" in text and "champion v2" in text
    assert re.search(r"range:age\s+7", text) and re.search(r"cast:limit_bal\s+3", text)  # quarantine by reason, largest first
    assert text.index("range:age") < text.index("cast:limit_bal")
    assert re.search(r"bill\s+30\.00%", text) and "30.00%" in text  # null rates, and the class balance
    assert "0.8000 ± 0.0110" in text  # CV spread
    assert "no (not among the most promising defaults)" in text
    assert "0.0800 ± 0.0040" in text and text.index("pay_1") < text.index("sex")


def test_values_are_escaped_and_the_page_needs_no_network():
    html = training_report_html(**training_facts())
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing fetched from elsewhere
    assert 'src="data:image/png;base64,iVBORw0KGgo="' in html  # the figure travels inside the page


def test_a_page_for_a_model_kept_out_says_so_and_a_first_model_has_no_interval():
    kept = training_report_html(**training_facts(decision={"promoted": False, "reason": "not better", "model": "x", "version": "4",
                                                           "evidence": None}))
    assert "kept as challenger" in kept and "interval" not in kept


def test_the_scoring_page_shows_drift_per_feature_and_realized_metrics_once_outcomes_exist():
    drift = {"status": "drift", "alerts": ["age: psi 0.400 >= 0.25"], "prediction": {"positive_rate": 0.3, "psi": 0.02},
             "features": [{"name": "age", "kind": "numeric", "status": "drift", "psi": 0.4, "ks": 0.2, "null_rate": 0.0,
                           "reference_null_rate": 0.0, "reasons": ["psi 0.400 >= 0.25"]},
                          {"name": "sex", "kind": "categorical", "status": "ok", "psi": 0.001, "unseen_rate": 0.0, "null_rate": 0.0,
                           "reference_null_rate": 0.0, "reasons": []}]}
    batch = {"rows_in": 10, "rows_scored": 9, "rows_quarantined": 1, "positive_rate": 0.3, "threshold": 0.4, "drift_status": "drift",
             "model": "m v1", "shadow": None}
    before = re.sub(r"<[^>]+>", " ", scoring_report_html("t", "s", batch, drift, [], ["roc_auc"]))
    assert "No outcomes yet" in before and re.search(r"age\s+numeric\s+drift\s+0\.4000\s+0\.2000", before)
    assert "age: psi 0.400 &gt;= 0.25" in before
    realized = [{"role": "served", "model_version": "1", "labelled_rows": 8, "metrics": {"roc_auc": 0.75}},
                {"role": "shadow", "model_version": "2", "labelled_rows": 8, "metrics": {"roc_auc": 0.8125}}]
    after = re.sub(r"<[^>]+>", " ", scoring_report_html("t", "s", {**batch, "shadow": "m v2"}, drift, realized, ["roc_auc"]))
    assert "No outcomes yet" not in after
    assert re.search(r"served\s+1\s+8\s+0\.7500", after) and re.search(r"shadow\s+2\s+8\s+0\.8125", after)


def test_permutation_importance_names_the_columns_the_model_reads_not_the_encoded_ones():
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from pipeline_core.modeling.explain import permutation_importance_by_column

    rng = np.random.default_rng(0)
    n = 2000
    X = pd.DataFrame({"signal": rng.normal(size=n), "noise": rng.normal(size=n), "colour": rng.choice(["red", "green", "blue"], n)})
    y = ((X["signal"] + (X["colour"] == "red") * 1.5 + rng.normal(scale=0.5, size=n)) > 0.7).astype(int).to_numpy()
    model = make_pipeline(ColumnTransformer([("num", StandardScaler(), ["signal", "noise"]), ("cat", OneHotEncoder(), ["colour"])]),
                          LogisticRegression()).fit(X, y)
    rows = permutation_importance_by_column(model, X, y, "roc_auc", 0.5, seed=0, repeats=3)
    by_name = {r["name"]: r for r in rows}
    assert set(by_name) == {"signal", "noise", "colour"}  # one entry per column, the one-hot colour judged whole
    assert [r["name"] for r in rows][:2] == ["signal", "colour"]
    assert by_name["signal"]["mean"] > 0.1 and by_name["colour"]["mean"] > 0.02 and abs(by_name["noise"]["mean"]) < 0.01
    # lower-is-better metrics count a worse (higher) score as importance too
    assert permutation_importance_by_column(model, X, y, "brier", 0.5, seed=0, repeats=3)[0]["name"] == "signal"


@pytest.mark.parametrize("silver, shown", [(None, None), ({"rows_in": 5, "rows_out": 5, "rows_quarantined": 0}, [])])
def test_a_profile_without_silver_or_without_quarantine_has_no_reasons(silver, shown):
    profile = data_profile({"class_balance": {"positive": 1, "negative": 3, "positive_rate": 0.25}}, silver)
    assert profile["rows"] == 4 and (profile["silver"]["reasons"] if profile["silver"] else None) == shown

