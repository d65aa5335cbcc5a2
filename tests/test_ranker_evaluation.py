"""Ranking metrics on hand-made cases, bootstrap intervals, leave-one-group-out."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from abgym.data.upworthy import Experiment
from abgym.ranker.evaluation import (bootstrap_ci, evaluate_predictions, leave_one_group_out, random_report,
                                     random_top1, spearman, top1)


def make(test_id, clicks, impressions=1000):
    n = len(clicks)
    return Experiment(test_id, 201401, tuple(f"{test_id}-{i}" for i in range(n)), ("",) * n, ("",) * n, ("",) * n,
                      np.full(n, impressions), np.asarray(clicks), np.zeros(n, bool))


def test_metrics_on_hand_made_cases():
    assert spearman([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman([3, 2, 1], [10, 20, 30]) == pytest.approx(-1.0)
    assert spearman([1, 1, 1], [10, 20, 30]) == 0.0         # no prediction made: no correlation
    assert top1([0.1, 0.9, 0.2], [5, 7, 6]) == 1.0
    assert top1([0.9, 0.1, 0.2], [5, 7, 6]) == 0.0
    assert top1([1, 1, 0], [5, 7, 6]) == 0.5                 # tie among predicted best: broken at random
    assert random_top1([5, 7, 6, 1]) == 0.25
    assert random_top1([7, 7, 6, 1]) == 0.5                  # two observed best arms


def test_evaluate_predictions_and_random_baseline():
    experiments = [make("a", [10, 20, 30]), make("b", [30, 20, 10, 0])]
    report = evaluate_predictions([np.array([1, 2, 3]), np.array([1, 2, 3, 4])], experiments)
    np.testing.assert_allclose(report.spearman, [1.0, -1.0])
    np.testing.assert_allclose(report.top1, [1.0, 0.0])
    np.testing.assert_allclose(report.random_top1, [1 / 3, 1 / 4])
    with pytest.raises(ValueError, match="predictions for"):
        evaluate_predictions([np.array([1, 2])], experiments[:1])
    many = [make(str(i), [10, 20, 30, 40]) for i in range(600)]
    summary = random_report(many, seed=3).summary()
    assert abs(summary["top1"] - 0.25) < 0.05 and abs(summary["spearman"]) < 0.05
    assert summary["random_top1"] == 0.25


@given(st.lists(st.floats(-1, 1), min_size=2, max_size=50), st.integers(0, 100))
@settings(max_examples=30, deadline=None)
def test_bootstrap_ci_brackets_the_mean_and_is_seeded(values, seed):
    low, high = bootstrap_ci(np.array(values), n_boot=300, seed=seed)
    assert low <= np.mean(values) + 1e-9 and np.mean(values) - 1e-9 <= high
    assert (low, high) == bootstrap_ci(np.array(values), n_boot=300, seed=seed)


@pytest.mark.parametrize("by", ["hash", "week"])
def test_leave_one_group_out_tests_every_experiment_once(by):
    experiments = [make(f"t{i}", [i % 7, 3, 5]) for i in range(50)]
    experiments = [Experiment(e.test_id, 201401 + i, *[getattr(e, f) for f in
                              ("headlines", "excerpts", "ledes", "eyecatcher_ids", "impressions", "clicks", "winner")])
                   for i, e in enumerate(experiments)]
    seen = []

    def fit_predict(train, test):
        assert not {e.test_id for e in train} & {e.test_id for e in test}
        seen.extend(e.test_id for e in test)
        return [np.arange(e.n_arms, dtype=float) for e in test]

    pooled, folds = leave_one_group_out(experiments, fit_predict, n_groups=5, by=by)
    assert sorted(seen) == sorted(e.test_id for e in experiments)
    assert pooled.n_experiments == 50 and len(folds) == 5
    with pytest.raises(ValueError, match="unknown grouping"):
        leave_one_group_out(experiments, fit_predict, by="month")


def test_chi_square_p_separates_real_differences_from_noise():
    from scipy.stats import chi2_contingency

    from abgym.ranker.evaluation import chi_square_p
    assert chi_square_p([100, 100], [1000, 1000]) == pytest.approx(1.0)
    assert chi_square_p([50, 100], [1000, 1000]) < 0.001
    clicks, impressions = np.array([30, 42, 37]), np.array([1000, 1100, 900])
    table = np.stack([clicks, impressions - clicks], axis=1)
    assert chi_square_p(clicks, impressions) == pytest.approx(chi2_contingency(table, correction=False).pvalue)
    assert chi_square_p([0, 0], [500, 500]) == 1.0            # no clicks: undefined, never "significant"


def test_pairwise_accuracy_counts_only_significant_pairs():
    from abgym.ranker.evaluation import significant_pairs
    clicks, impressions = np.array([10, 60, 61]), np.full(3, 1000)
    left, right = significant_pairs(clicks, impressions)
    assert sorted(zip(left.tolist(), right.tolist())) == [(0, 1), (0, 2)]   # 60 vs 61 is noise
    experiment = make("a", clicks)
    right_order = evaluate_predictions([np.array([0.0, 1.0, 0.5])], [experiment])  # wrong on the noisy pair only
    assert right_order.pairwise_accuracy()[0] == 1.0 and right_order.pairwise_accuracy()[2] == 2
    wrong = evaluate_predictions([np.array([2.0, 1.0, 0.5])], [experiment])
    assert wrong.pairwise_accuracy()[0] == 0.0
    tie = evaluate_predictions([np.zeros(3)], [experiment])
    assert tie.pairwise_accuracy()[0] == 0.5


def test_protocol_subsets_and_paired_table():
    from abgym.ranker.evaluation import paired_difference, protocol_table
    strong = [make(f"s{i}", [10, 40, 80]) for i in range(30)]      # p << 0.01
    weak = [make(f"w{i}", [50, 52, 51]) for i in range(30)]        # p ~ 1
    experiments = strong + weak
    good = evaluate_predictions([np.arange(3.0) for _ in experiments], experiments)
    bad = evaluate_predictions([-np.arange(3.0) for _ in experiments], experiments)
    protocol = good.protocol()
    assert protocol["all"]["n_experiments"] == 60 and protocol["p<0.01"]["n_experiments"] == 30
    assert protocol["p<0.01"]["spearman"] == pytest.approx(1.0)
    diff = paired_difference(good, bad, "spearman")
    assert diff["mean"] == pytest.approx(2 * good.spearman.mean()) and diff["ci"][0] > 0
    assert paired_difference(good, bad, "pair_accuracy")["mean"] == pytest.approx(1.0)
    table, figures = protocol_table({"good": good, "bad": bad}, baselines=("bad",))
    assert table.count("\n") == 2 + 6 - 1 and "Δ Spearman vs bad" in table
    assert figures["good"]["p<0.01"]["spearman_vs_bad"]["mean"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="same experiments"):
        paired_difference(good, good.subset(np.arange(60) < 30), "top1")
