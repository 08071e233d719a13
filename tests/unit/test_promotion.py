"""The gate's evidence: a paired bootstrap of the primary metric, and the line of champions a rollback walks back."""

import numpy as np
import pytest

from pipeline_core.modeling.promotion import Evidence, gate_decision, paired_bootstrap
from pipeline_io.registry import champion_line


@pytest.fixture(scope="module")
def holdout():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 2000)
    signal = y + rng.normal(0, 1.0, y.size)
    sharp = 1 / (1 + np.exp(-2.0 * (signal - 0.5)))
    blurred = 1 / (1 + np.exp(-2.0 * (signal + rng.normal(0, 1.5, y.size) - 0.5)))
    return y, sharp, blurred


def test_a_clearly_better_model_has_an_interval_above_zero(holdout):
    from sklearn.metrics import roc_auc_score

    y, sharp, blurred = holdout
    ev = paired_bootstrap(y, sharp, blurred, "roc_auc", (0.5, 0.5), confidence=0.95, resamples=400, seed=1)
    assert ev.delta == pytest.approx(roc_auc_score(y, sharp) - roc_auc_score(y, blurred))
    assert 0 < ev.low < ev.delta < ev.high
    promote, why = gate_decision({"roc_auc": 0.9}, {"roc_auc": 0.8}, "roc_auc", {}, ev, min_improvement=0.0)
    assert promote and why.startswith(f"roc_auc {ev.delta:+.4f} against the champion (95% interval")
    # the same evidence does not clear a bar above its interval
    promote, why = gate_decision({"roc_auc": 0.9}, {"roc_auc": 0.8}, "roc_auc", {}, ev, min_improvement=ev.high)
    assert not promote and "not better by more than" in why
    worse = paired_bootstrap(y, blurred, sharp, "roc_auc", (0.5, 0.5), resamples=400, seed=1)
    assert worse.high < 0 and worse.delta == pytest.approx(-ev.delta)


def test_lower_is_better_metrics_count_a_drop_as_improvement(holdout):
    y, sharp, blurred = holdout
    ev = paired_bootstrap(y, sharp, blurred, "brier", (0.5, 0.5), resamples=300, seed=2)
    assert ev.delta > 0 and ev.low > 0  # sharp has the lower Brier score: positive is better
    assert ev.describe().startswith(f"brier improvement {ev.delta:+.4f} against the champion")  # not read as a higher Brier score


def test_identical_models_and_a_small_noisy_edge_are_not_promoted(holdout):
    y, sharp, _ = holdout
    same = paired_bootstrap(y, sharp, sharp, "f1", (0.4, 0.4), resamples=200)
    assert (same.delta, same.low, same.high) == (0.0, 0.0, 0.0)
    assert not gate_decision({"f1": 0.7}, {"f1": 0.7}, "f1", {}, same)[0]
    rng = np.random.default_rng(9)
    nudged = np.clip(sharp + rng.normal(0, 0.002, sharp.size), 0, 1)  # better or worse by chance only
    noise = paired_bootstrap(y, nudged, sharp, "roc_auc", (0.5, 0.5), resamples=400, seed=4)
    assert noise.low <= 0 <= noise.high
    assert not gate_decision({"roc_auc": 0.81}, {"roc_auc": 0.80}, "roc_auc", {}, noise)[0]


def test_without_evidence_the_plain_comparison_decides():
    assert gate_decision({"roc_auc": 0.82}, {"roc_auc": 0.81}, "roc_auc", {})[0]
    assert isinstance(Evidence("roc_auc", 0.1, 0.05, 0.15, 0.9, 100).describe(), str)


@pytest.mark.parametrize("moves, line", [
    ([], []),
    ([("champion", "1"), ("challenger", "2"), ("champion", "2")], ["1", "2"]),
    ([("champion", "1"), ("champion", "2"), ("champion", "3"), ("champion", "2", "3")], ["1", "2"]),
    ([("champion", "1"), ("champion", "2"), ("champion", "3"), ("champion", "2", "3"), ("champion", "1", "2")], ["1"]),
    ([("champion", "1"), ("champion", "2"), ("champion", "1", "2"), ("champion", "4")], ["1", "4"]),
    ([("champion", "1"), ("champion", "2"), ("champion", "1")], ["1", "2", "1"]),  # a manual promotion back is a new step
    ([("champion", "1"), ("champion", "1")], ["1"]),
])
def test_the_line_of_champions_undoes_rollbacks(moves, line):
    history = [{"alias": m[0], "version": m[1], **({"rollback_of": m[2]} if len(m) > 2 else {})} for m in moves]
    assert champion_line(history) == line


def test_a_model_of_another_target_or_positive_label_is_not_compared():
    from pipeline_core.modeling.promotion import incomparable, predicted_class

    meta = {"preprocessing": {"target": "default"}, "positive_label": 1}
    assert predicted_class(meta) == {"target": "default", "positive_label": "1"}
    assert predicted_class({"preprocessing": {}, "positive_label": 1}) == {}  # metadata of an older release: nothing to compare
    assert incomparable("m", "3", predicted_class(meta), {"target": "default", "positive_label": "1"}) is None
    why = incomparable("m", "3", predicted_class(meta), {"target": "default", "positive_label": "0"})
    assert why.startswith("the champion (m v3) predicts default = 1, this model default = 0: their scores cannot be compared")


def test_a_champion_split_otherwise_is_judged_only_on_rows_its_holdout_held():
    import numpy as np

    from pipeline_core.modeling.promotion import split_tags, unseen_by_both
    from pipeline_core.modeling.training import keyed_split

    keys = np.arange(10_000) * 7 + 3
    y = (np.arange(10_000) % 4 == 0).astype(int)
    train, test = keyed_split(keys, y, 0.2, 7)  # this run's holdout
    champion = split_tags(42, 0.2, keyed=True)
    shared = unseen_by_both(keys, y, test, champion, seed=7, test_size=0.2)
    champion_train, champion_test = keyed_split(keys, y, 0.2, 42)
    assert set(test[shared]) == set(test) & set(champion_test)  # exactly the rows both holdouts hold
    assert not set(test[shared]) & set(champion_train)
    assert 300 < len(shared) < 500  # about a fifth of a fifth of the rows
    assert unseen_by_both(keys, y, test, split_tags(7, 0.2, keyed=True), seed=7, test_size=0.2) is None  # split alike
    assert unseen_by_both(keys, y, test, split_tags(42, 0.2, keyed=False), seed=7, test_size=0.2) is None  # a random split
    assert unseen_by_both(keys, y, test, {}, seed=7, test_size=0.2) is None  # recorded before splits were
    wider = unseen_by_both(keys, y, keyed_split(keys, y, 0.3, 42)[1], champion, seed=42, test_size=0.3)
    assert len(wider) == len(champion_test)  # same seed, larger share: the champion's holdout is inside this one
