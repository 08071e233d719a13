"""The time budget's rungs: which models are tuned, and when a fold may still start."""

import math
import time

import pytest

from pipeline_core.config import TrainingConfig
from pipeline_core.modeling.budget import deadline, promising, refit_reserve, stall_patience, stalled, tuning_schedule
from pipeline_core.modeling.tuning import FINAL_FIT_FOLDS, TimeBudget, trial_cap


def test_the_best_defaults_are_tuned_as_many_as_run_at_once_and_at_most_half():
    scores = {"logistic_regression": 0.79, "lightgbm": 0.80, "xgboost": 0.795, "random_forest": 0.78}
    assert promising(scores, slots=2, metric="roc_auc") == ["lightgbm", "xgboost"]
    assert promising(scores, slots=8, metric="roc_auc") == ["lightgbm", "xgboost"]  # half of four
    assert promising(scores, slots=1, metric="roc_auc") == ["lightgbm"]
    assert promising({"a": 0.7}, slots=4, metric="roc_auc") == ["a"]
    assert promising({}, slots=2, metric="roc_auc") == []


def test_lower_is_better_metrics_and_failed_scores_rank_correctly():
    assert promising({"a": 0.3, "b": 0.1, "c": 0.2}, slots=2, metric="fnr") == ["b", "c"]
    assert promising({"a": math.nan, "b": 0.6, "c": 0.5}, slots=2, metric="roc_auc") == ["b", "c"]
    assert promising({"b": 0.6, "a": 0.6}, slots=1, metric="roc_auc") == ["a"]  # ties: by name, so runs repeat


def test_a_study_stalls_when_its_recent_trials_gain_no_more_than_the_tolerance():
    flat = [0.80, 0.83, 0.8301, 0.8302, 0.8300, 0.8305]
    assert stalled(flat, patience=4, minimize=False)  # best of the last four: +0.0005 over 0.83
    assert not stalled(flat, patience=5, minimize=False)  # the 0.80 -> 0.83 step is inside the window
    assert not stalled(flat[:4], patience=4, minimize=False)  # not yet more trials than the patience
    assert not stalled([0.80, 0.81, 0.812, 0.813, 0.8112], patience=3, minimize=False)  # +0.003: a real gain
    assert stalled([0.50, 0.40, 0.4005, 0.41], patience=2, minimize=True)  # loss: lower is better, 0.4005 is no gain
    assert not stalled([0.50, 0.40, 0.398, 0.41], patience=2, minimize=True)
    assert stall_patience(2) == 10 and stall_patience(7) == 35  # more trials for larger search spaces


def test_freed_slots_tune_the_next_models_and_the_deadlines_keep_room_for_the_final_fits_behind_them():
    scores = {"logistic_regression": 0.79, "lightgbm": 0.80, "xgboost": 0.795, "random_forest": 0.78}
    fits = {"logistic_regression": 2.0, "lightgbm": 4.0, "xgboost": 6.0, "random_forest": 10.0}
    plan = tuning_schedule(scores, fits, slots=2, metric="roc_auc", ends=1000.0, queue_tunes=True)
    # best defaults first; the two waiting models' fits (2 + 10 s) are shared by the two slots
    assert plan == [("lightgbm", True, 994.0), ("xgboost", True, 994.0),
                    ("logistic_regression", True, 995.0), ("random_forest", True, 1000.0)]
    # with a trial cap (or no deadline) the waiting models keep their defaults and go first: their fits are quick
    assert tuning_schedule(scores, fits, slots=2, metric="roc_auc", ends=1000.0, queue_tunes=False) == [
        ("logistic_regression", False, 1000.0), ("random_forest", False, 1000.0), ("lightgbm", True, 1000.0), ("xgboost", True, 1000.0)]
    assert tuning_schedule(scores, fits, slots=1, metric="roc_auc", ends=None, queue_tunes=True)[0] == ("xgboost", False, None)
    one = tuning_schedule({"a": 0.7}, {"a": 1.0}, slots=2, metric="roc_auc", ends=50.0, queue_tunes=True)
    assert one == [("a", True, 50.0)]


def test_the_refit_on_all_rows_is_reserved_for_every_model_on_the_larger_row_count():
    # an ensemble may refit every model, one after another, each on training + holdout rows
    assert refit_reserve({"lightgbm": 6.0, "logistic_regression": 2.0}, test_size=0.2) == pytest.approx(10.0)
    assert refit_reserve({"xgboost": 3.0}, test_size=0.5) == pytest.approx(6.0)
    assert refit_reserve({}, test_size=0.2) == 0.0
    # without an ensemble only the chosen model is refitted: at most the slowest one
    assert refit_reserve({"lightgbm": 6.0, "logistic_regression": 2.0}, test_size=0.2, ensemble=False) == pytest.approx(7.5)
    assert refit_reserve({}, test_size=0.2, ensemble=False) == 0.0


def test_a_fold_starts_only_while_it_and_the_final_fit_still_fit():
    budget = TimeBudget(time.time() + 10)
    assert budget.allows_fold()  # no fold seen yet
    budget.record_fold(3.0)
    assert budget.allows_fold()  # 3 s + 1.5 x 3 s = 7.5 s <= 10 s
    budget.record_fold(5.0)  # mean 4 s: 4 + 6 = 10 s > what is left
    assert not budget.allows_fold()
    assert FINAL_FIT_FOLDS == 1.5
    assert TimeBudget(None).allows_fold() and deadline(None) is None
    assert deadline(60, now=1000.0) == 1060.0


@pytest.mark.parametrize("n_trials, ends, expected", [(None, 123.0, None), (None, None, 20), (7, 123.0, 7), (7, None, 7)])
def test_trials_are_bounded_by_the_cap_or_the_deadline(n_trials, ends, expected):
    cfg = TrainingConfig.model_validate({"tuning": {"n_trials": n_trials}})
    assert trial_cap(cfg, ends) == expected


def test_presets_set_what_the_config_leaves_unset():
    fast = TrainingConfig.model_validate({"preset": "fast"})
    assert (fast.tuning.enabled, fast.time_budget_seconds, fast.ensemble) == (False, 60.0, True)
    mine = TrainingConfig.model_validate({"preset": "fast", "time_budget_seconds": 30, "tuning": {"cv_folds": 3}})
    assert (mine.time_budget_seconds, mine.tuning.cv_folds, mine.tuning.enabled) == (30.0, 3, False)  # the config's keys win
    best = TrainingConfig.model_validate({"preset": "best"})
    assert best.time_budget_seconds == 600 and {"hist_gradient_boosting", "extra_trees", "lightgbm"} <= set(best.models)
    assert TrainingConfig.model_validate({}).model_dump() == TrainingConfig.model_validate({"preset": "balanced"}).model_dump()


def test_an_unknown_preset_names_the_allowed_ones():
    from pipeline_core.config import parse_config
    from pipeline_core.errors import ConfigError

    with pytest.raises(ConfigError, match="training.preset.*'fast', 'balanced' or 'best'"):
        parse_config({"dataset": {"name": "d", "source": "x.csv", "target": "y"}, "training": {"preset": "turbo"}})
