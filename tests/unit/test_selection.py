import copy
import math

import pytest

from pipeline_core.modeling.selection import DEFAULT_TIE_BREAKERS, leaderboard_markdown, leaderboard_rows, rank_models


def _result(name: str, **metrics: float) -> dict:
    return {"name": name, "metrics": metrics}


RESULTS = [
    _result("logreg", roc_auc=0.90, accuracy=0.80, f1=0.70, fpr=0.20),
    _result("forest", roc_auc=0.93, accuracy=0.82, f1=0.71, fpr=0.30),
    _result("boost", roc_auc=0.93, accuracy=0.85, f1=0.60, fpr=0.10),
    _result("tree", roc_auc=0.93, accuracy=0.85, f1=0.65, fpr=0.25),
]


def _names(ranked: list[dict]) -> list[str]:
    return [r["name"] for r in ranked]


def test_default_tie_breakers():
    assert DEFAULT_TIE_BREAKERS == ["accuracy", "f1", "balanced_accuracy", "mcc"]


def test_ties_broken_by_tie_breakers_in_order():
    ranked = rank_models(RESULTS, "roc_auc", ["accuracy", "f1"])
    # three tie on roc_auc .93; boost and tree tie on accuracy .85; tree wins on f1
    assert _names(ranked) == ["tree", "boost", "forest", "logreg"]
    assert [r["rank"] for r in ranked] == [1, 2, 3, 4]


def test_fpr_sorts_ascending():
    assert _names(rank_models(RESULTS, "fpr", [])) == ["boost", "logreg", "tree", "forest"]
    assert _names(rank_models(RESULTS, "roc_auc", ["fpr"])) == ["boost", "tree", "forest", "logreg"]


def test_fnr_sorts_ascending():
    results = [_result("a", fnr=0.4), _result("b", fnr=0.1)]
    assert _names(rank_models(results, "fnr", [])) == ["b", "a"]


def test_full_tie_falls_back_to_name():
    results = [_result("zeta", f1=0.5), _result("alpha", f1=0.5), _result("mid", f1=0.5)]
    assert _names(rank_models(results, "f1", [])) == ["alpha", "mid", "zeta"]


@pytest.mark.parametrize("metric", ["f1", "fpr"])
def test_nan_and_missing_sort_last(metric):
    results = [_result("nan", **{metric: math.nan}), _result("ok", **{metric: 0.5}), _result("missing")]
    ranked = rank_models(results, metric, [])
    assert _names(ranked) == ["ok", "missing", "nan"]  # NaN and missing tie, then by name


def test_nan_tie_breaker_sorts_last():
    results = [_result("a", auc=0.9, f1=math.nan), _result("b", auc=0.9, f1=0.1)]
    assert _names(rank_models(results, "auc", ["f1"])) == ["b", "a"]


@pytest.mark.parametrize(("primary", "tie_breakers"), [("rocauc", []), ("roc_auc", ["accuracy", "mccc"])])
def test_unknown_metric_lists_available(primary, tie_breakers):
    with pytest.raises(ValueError, match=r"available metrics are \['accuracy', 'f1', 'fpr', 'roc_auc'\]"):
        rank_models(RESULTS, primary, tie_breakers)


def test_input_not_mutated_and_copies_returned():
    before = copy.deepcopy(RESULTS)
    ranked = rank_models(RESULTS, "roc_auc", DEFAULT_TIE_BREAKERS[:2])
    assert RESULTS == before
    assert all("rank" not in r for r in RESULTS)
    ranked[0]["metrics"]["roc_auc"] = 0.0
    assert RESULTS == before


def test_empty_results_rank_to_empty():
    assert rank_models([], "f1", DEFAULT_TIE_BREAKERS) == []


def test_leaderboard_rows():
    ranked = rank_models(RESULTS[:2], "roc_auc", [])
    assert leaderboard_rows(ranked, ["roc_auc", "f1"]) == [
        {"rank": 1, "model": "forest", "roc_auc": 0.93, "f1": 0.71},
        {"rank": 2, "model": "logreg", "roc_auc": 0.90, "f1": 0.70},
    ]


def test_leaderboard_markdown_exact():
    ranked = rank_models([_result("logreg", f1=0.7, mcc=1 / 3), _result("forest", f1=0.75, mcc=0.123456)], "f1", [])
    assert leaderboard_markdown(ranked, ["f1", "mcc"]) == (
        "| rank | model | f1 | mcc |\n"
        "|---:|:---|---:|---:|\n"
        "| 1 | forest | 0.7500 | 0.1235 |\n"
        "| 2 | logreg | 0.7000 | 0.3333 |\n"
    )


def test_leaderboard_markdown_shows_missing_metric_as_nan():
    ranked = rank_models([_result("m", f1=0.5)], "f1", [])
    assert leaderboard_markdown(ranked, ["f1", "mcc"]).splitlines()[-1] == "| 1 | m | 0.5000 | nan |"


def test_ranking_by_cv_puts_the_cross_validated_mean_first_and_the_holdout_breaks_its_ties():
    """The stored AutoML-benchmark case: a linear model with the best holdout score but the worst CV mean."""
    results = [{**_result("logistic_regression", roc_auc=0.8521, accuracy=0.80), "cv_mean": 0.8357},
               {**_result("weighted_ensemble", roc_auc=0.8496, accuracy=0.81), "cv_mean": 0.8563},
               {**_result("lightgbm", roc_auc=0.8407, accuracy=0.79), "cv_mean": 0.8538},
               {**_result("xgboost", roc_auc=0.8440, accuracy=0.80), "cv_mean": 0.8538},
               {**_result("untuned", roc_auc=0.99, accuracy=0.90), "cv_mean": None}]
    assert _names(rank_models(results, "roc_auc", ["accuracy"], by="holdout"))[:2] == ["untuned", "logistic_regression"]
    # xgboost and lightgbm tie on CV: the holdout decides; a model without a CV score goes last
    assert _names(rank_models(results, "roc_auc", ["accuracy"], by="cv")) == [
        "weighted_ensemble", "xgboost", "lightgbm", "logistic_regression", "untuned"]
    # lower-is-better metrics rank a lower CV mean first
    briers = [{**_result("a", brier=0.10), "cv_mean": 0.20}, {**_result("b", brier=0.20), "cv_mean": 0.15}]
    assert _names(rank_models(briers, "brier", [], by="cv")) == ["b", "a"]
    with pytest.raises(ValueError, match="choose cv or holdout"):
        rank_models(results, "roc_auc", [], by="both")


@pytest.mark.parametrize("rank_by, primary, basis", [("auto", "roc_auc", "cv"), ("auto", "brier", "cv"), ("auto", "accuracy", "holdout"),
                                                     ("auto", "f1", "holdout"), ("holdout", "roc_auc", "holdout"), ("cv", "f1", "cv")])
def test_auto_ranks_threshold_free_metrics_by_cv_and_thresholded_ones_by_the_holdout(rank_by, primary, basis):
    from pipeline_core.modeling.selection import ranking_basis

    assert ranking_basis(rank_by, primary) == basis
