import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from pipeline_core.modeling.metrics import OBJECTIVES, choose_threshold, classification_metrics, confusion

KEYS = {
    "accuracy", "precision", "recall", "f1", "specificity", "fpr", "fnr",
    "balanced_accuracy", "mcc", "roc_auc", "pr_auc", "brier", "ece",
}  # fmt: skip
Y = [1, 1, 0, 0, 1]
P = [0.9, 0.4, 0.6, 0.1, 0.8]


def _no_warnings(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kwargs)


def _sample(seed: int = 0, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(0.35 * y + rng.uniform(0, 0.65, n), 0, 1).round(2)  # rounding makes tied scores
    return y, p


def test_hand_computed_example():
    assert confusion(Y, [1, 0, 1, 0, 1]) == {"tn": 1, "fp": 1, "fn": 1, "tp": 2}
    m = classification_metrics(Y, P, threshold=0.5)
    assert set(m) == KEYS
    expected = {
        "accuracy": 3 / 5, "precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "specificity": 1 / 2,
        "fpr": 1 / 2, "fnr": 1 / 3, "balanced_accuracy": (2 / 3 + 1 / 2) / 2, "mcc": 1 / 6,
        "roc_auc": 5 / 6,  # 5 of the 6 positive/negative pairs are ordered correctly
        "pr_auc": (1 + 1 + 3 / 4) / 3,  # precision at each positive's rank: 1/1, 2/2, 3/4
        "brier": (0.01 + 0.36 + 0.36 + 0.01 + 0.04) / 5,  # mean squared distance of each probability from its label
        "ece": (0.1 + 0.6 + 0.6 + 0.1 + 0.2) / 5,  # each score alone in its tenth: |p - y| weighted by 1/5
    }  # fmt: skip
    assert m == pytest.approx(expected)
    assert all(type(v) is float for v in m.values())


def test_threshold_is_inclusive():
    m = classification_metrics([1, 0], [0.5, 0.49], threshold=0.5)
    assert m["recall"] == 1.0 and m["fpr"] == 0.0


_SKLEARN = {
    "accuracy": lambda y, p, yp: skm.accuracy_score(y, yp),
    "precision": lambda y, p, yp: skm.precision_score(y, yp),
    "recall": lambda y, p, yp: skm.recall_score(y, yp),
    "f1": lambda y, p, yp: skm.f1_score(y, yp),
    "specificity": lambda y, p, yp: skm.recall_score(y, yp, pos_label=0),
    "fpr": lambda y, p, yp: 1 - skm.recall_score(y, yp, pos_label=0),
    "fnr": lambda y, p, yp: 1 - skm.recall_score(y, yp),
    "balanced_accuracy": lambda y, p, yp: skm.balanced_accuracy_score(y, yp),
    "mcc": lambda y, p, yp: skm.matthews_corrcoef(y, yp),
    "roc_auc": lambda y, p, yp: skm.roc_auc_score(y, p),
    "pr_auc": lambda y, p, yp: skm.average_precision_score(y, p),
    "brier": lambda y, p, yp: skm.brier_score_loss(y, p),
}


def test_expected_calibration_error_matches_a_loop_over_bins():
    y, p = _sample(seed=3)
    edges = np.arange(11) / 10
    expected = 0.0
    for k in range(10):
        inside = (p >= edges[k]) & ((p < edges[k + 1]) if k < 9 else (p <= 1.0))
        if inside.any():
            expected += inside.mean() * abs(p[inside].mean() - y[inside].mean())
    assert classification_metrics(y, p)["ece"] == pytest.approx(expected, abs=1e-12)
    assert classification_metrics([0, 1, 1, 0], [0.0, 1.0, 1.0, 0.0])["ece"] == 0.0  # perfectly calibrated


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.62])
@pytest.mark.parametrize("name", sorted(_SKLEARN))
def test_each_metric_matches_sklearn_on_random_sample(name, threshold):
    y, p = _sample(seed=42)
    expected = _SKLEARN[name](y, p, (p >= threshold).astype(int))
    assert classification_metrics(y, p, threshold)[name] == pytest.approx(expected, abs=1e-12)


def test_model_predicting_only_negatives():
    m = _no_warnings(classification_metrics, [1, 0, 1, 0], [0.1, 0.2, 0.3, 0.4])
    assert m["precision"] == 0.0 and m["recall"] == 0.0 and m["f1"] == 0.0 and m["mcc"] == 0.0
    assert m["specificity"] == 1.0 and m["fpr"] == 0.0 and m["fnr"] == 1.0
    assert m["accuracy"] == 0.5 and m["balanced_accuracy"] == 0.5
    assert m["roc_auc"] == 0.25  # AUC still scores the ranking: 1 of 4 pairs ordered right


def test_model_predicting_only_positives():
    m = _no_warnings(classification_metrics, [1, 0, 1, 0], [0.9, 0.9, 0.9, 0.9])
    assert m == pytest.approx(
        {"accuracy": 0.5, "precision": 0.5, "recall": 1.0, "f1": 2 / 3, "specificity": 0.0, "fpr": 1.0,
         "fnr": 0.0, "balanced_accuracy": 0.5, "mcc": 0.0, "roc_auc": 0.5, "pr_auc": 0.5,
         "brier": (0.01 + 0.81 + 0.01 + 0.81) / 4, "ece": 0.4}  # one bin: mean probability 0.9, positive rate 0.5
    )  # fmt: skip


@pytest.mark.parametrize(
    ("y", "p", "expected"),
    [
        # all negatives, one false positive: recall/fnr have no positives (0.0), AUCs at no-skill
        ([0, 0, 0], [0.1, 0.7, 0.2], {"accuracy": 2 / 3, "precision": 0.0, "recall": 0.0, "f1": 0.0,
         "specificity": 2 / 3, "fpr": 1 / 3, "fnr": 0.0, "balanced_accuracy": 2 / 3, "mcc": 0.0,
         "roc_auc": 0.5, "pr_auc": 0.0, "brier": (0.01 + 0.49 + 0.04) / 3, "ece": (0.1 + 0.7 + 0.2) / 3}),
        # all negatives predicted negative: every label and prediction is one class
        ([0, 0, 0], [0.1, 0.2, 0.3], {"accuracy": 1.0, "precision": 0.0, "recall": 0.0, "f1": 0.0,
         "specificity": 1.0, "fpr": 0.0, "fnr": 0.0, "balanced_accuracy": 1.0, "mcc": 0.0,
         "roc_auc": 0.5, "pr_auc": 0.0, "brier": (0.01 + 0.04 + 0.09) / 3, "ece": (0.1 + 0.2 + 0.3) / 3}),
        # all positives, two missed: pr_auc is the positive rate 1.0
        ([1, 1, 1], [0.1, 0.7, 0.2], {"accuracy": 1 / 3, "precision": 1.0, "recall": 1 / 3, "f1": 0.5,
         "specificity": 0.0, "fpr": 0.0, "fnr": 2 / 3, "balanced_accuracy": 1 / 3, "mcc": 0.0,
         "roc_auc": 0.5, "pr_auc": 1.0, "brier": (0.81 + 0.09 + 0.64) / 3, "ece": (0.9 + 0.3 + 0.8) / 3}),
        ([1, 1], [0.9, 0.8], {"accuracy": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0,
         "specificity": 0.0, "fpr": 0.0, "fnr": 0.0, "balanced_accuracy": 1.0, "mcc": 0.0,
         "roc_auc": 0.5, "pr_auc": 1.0, "brier": (0.01 + 0.04) / 2, "ece": (0.1 + 0.2) / 2}),
    ],
)  # fmt: skip
def test_one_class_truth_gives_documented_values_without_warnings(y, p, expected):
    m = _no_warnings(classification_metrics, y, p)
    assert m == pytest.approx(expected)
    assert not any(np.isnan(v) for v in m.values())


@pytest.mark.parametrize(("y", "p"), [([], []), ([0, 1], [0.5]), ([[0, 1]], [0.5, 0.5])])
def test_bad_shapes_raise(y, p):
    with pytest.raises(ValueError, match="non-empty"):
        classification_metrics(y, p)


# y = [0, 1, 0, 1, 1] at descending scores .9(1) .7(1) .45(0) .2(1) .1(0):
#   threshold  FP FN  F1     cost(1,1)  cost(fn=10)
#   1.0        0  3   0      3          30
#   0.9        0  2   2/4    2          20
#   0.7        0  1   4/5    1          10
#   0.45       1  1   4/6    2          11
#   0.2        1  0   6/7    1           1
#   0.1        2  0   6/8    2           2
HY = [0, 1, 0, 1, 1]
HP = [0.1, 0.2, 0.45, 0.7, 0.9]


def test_f1_threshold_hand_checked():
    assert choose_threshold(HY, HP, "f1") == 0.2


def test_cost_threshold_hand_checked_and_moves_down_when_misses_cost_more():
    equal = choose_threshold(HY, HP, "cost")
    costly_misses = choose_threshold(HY, HP, "cost", fn_cost=10.0)
    assert equal == 0.7  # ties with 0.2 at cost 1; 0.7 is closer to 0.5
    assert costly_misses == 0.2
    assert costly_misses < equal
    assert choose_threshold(HY, HP, "cost", fp_cost=10.0) == 0.7  # costly false alarms: predict less


def test_costly_false_alarms_can_predict_nothing():
    assert choose_threshold([0, 0, 1], [0.8, 0.9, 0.3], "cost", fp_cost=5.0) == 1.0


def test_f1_tie_goes_to_threshold_closest_to_half():
    # F1 is 2/3 at 0.6 (1 hit, 1 miss) and at 0.05 (2 hits, 2 false alarms)
    assert choose_threshold([1, 0, 0, 1], [0.6, 0.55, 0.52, 0.05], "f1") == 0.6


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(("fp_cost", "fn_cost"), [(1.0, 1.0), (1.0, 5.0), (3.0, 1.0)])
def test_thresholds_are_optimal_against_brute_force(seed, fp_cost, fn_cost):
    y, p = _sample(seed, n=60)
    candidates = np.unique(p)
    preds = p[None, :] >= candidates[:, None]
    fp = (preds & (y == 0)).sum(axis=1)
    fn = (~preds & (y == 1)).sum(axis=1)
    best_cost = (fp_cost * fp + fn_cost * fn).min()
    chosen = choose_threshold(y, p, "cost", fp_cost, fn_cost)
    m = classification_metrics(y, p, chosen)
    assert m["fpr"] * (y == 0).sum() * fp_cost + m["fnr"] * (y == 1).sum() * fn_cost == pytest.approx(best_cost)
    best_f1 = max(skm.f1_score(y, row.astype(int)) for row in preds)
    assert classification_metrics(y, p, choose_threshold(y, p, "f1"))["f1"] == pytest.approx(best_f1)


def test_degenerate_truth_thresholds_without_warnings():
    assert _no_warnings(choose_threshold, [0, 0, 0], [0.1, 0.7, 0.2], "f1") == 0.5
    assert _no_warnings(choose_threshold, [0, 0, 0], [0.1, 0.7, 0.2], "cost") == 1.0
    assert _no_warnings(choose_threshold, [1, 1], [0.1, 0.7], "f1") == 0.1


def test_fixed_objective_returns_fixed():
    result = choose_threshold(HY, HP, "fixed", fixed=0.3)
    assert result == 0.3 and type(result) is float
    assert choose_threshold(HY, HP, "fixed") == 0.5


@pytest.mark.parametrize("objective", ["F1", "youden", ""])
def test_bad_objective_names_allowed_values(objective):
    with pytest.raises(ValueError, match="'f1', 'accuracy', 'balanced_accuracy', 'mcc', 'cost', 'fixed'"):
        choose_threshold(HY, HP, objective)
    assert OBJECTIVES == ("f1", "accuracy", "balanced_accuracy", "mcc", "cost", "fixed")


@pytest.mark.parametrize("metric", ["accuracy", "balanced_accuracy", "mcc", "f1"])
@pytest.mark.parametrize("seed", [0, 1])
def test_metric_objectives_find_the_best_threshold_a_brute_force_search_finds(metric, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 200)
    p = np.round(np.clip(0.3 * y + rng.normal(0.35, 0.2, 200), 0, 1), 2)  # rounded: many tied scores
    chosen = choose_threshold(y, p, metric)
    candidates = np.r_[np.unique(p), 1.0]
    best = max(classification_metrics(y, p, t)[metric] for t in candidates)
    assert classification_metrics(y, p, chosen)[metric] == pytest.approx(best)
    if metric != "f1":  # the F1 sweep is the precision-recall curve's; the others break ties towards 0.5 alike
        tied = [t for t in candidates if np.isclose(classification_metrics(y, p, t)[metric], best)]
        assert abs(chosen - 0.5) == pytest.approx(min(abs(t - 0.5) for t in tied))


def test_ranking_by_accuracy_compares_models_at_their_best_accuracy_thresholds():
    """The seed's rule: with accuracy primary, the threshold is chosen for accuracy, not F1."""
    from pipeline_core.modeling.metrics import threshold_objective

    assert threshold_objective("auto", "accuracy") == "accuracy"
    assert threshold_objective("auto", "mcc") == "mcc"
    assert threshold_objective("auto", "roc_auc") == "f1"
    assert threshold_objective("cost", "accuracy") == "cost"
    rng = np.random.default_rng(7)
    y = (rng.random(2000) < 0.2).astype(int)  # imbalanced: F1's threshold sits well below accuracy's
    p = np.clip(0.35 * y + rng.normal(0.3, 0.15, 2000), 0, 1)
    at_accuracy = classification_metrics(y, p, choose_threshold(y, p, "accuracy"))["accuracy"]
    at_f1 = classification_metrics(y, p, choose_threshold(y, p, "f1"))["accuracy"]
    assert at_accuracy > at_f1


@pytest.mark.parametrize("kwargs", [{"objective": "fixed", "fixed": 1.5}, {"objective": "cost", "fp_cost": -1.0}])
def test_bad_threshold_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        choose_threshold(HY, HP, **kwargs)


@pytest.mark.parametrize("objective", ["f1", "cost"])
def test_chosen_threshold_is_plain_float_in_unit_interval(objective):
    t = choose_threshold(*_sample(3), objective)
    assert type(t) is float and 0.0 <= t <= 1.0
