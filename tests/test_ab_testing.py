"""Classical A/B tests: the statistics are right, and the tests keep their error rates in seeded simulations."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chi2_contingency

from abgym.agents.ab_testing import (
    FixedHorizonABTest,
    SequentialABTest,
    bonferroni,
    holm,
    msprt_likelihood_ratio,
    two_proportion_ztest,
)


def run_test(agent, rates, steps=100, batch=500, seed=0):
    """One experiment of ``steps`` batches; returns the agent after the episode."""
    rates = np.asarray(rates, dtype=float)
    rng = np.random.default_rng(seed)
    agent.reset(len(rates), {"action_mask": np.ones(len(rates), bool)}, seed=seed)
    for step in range(steps):
        arm = agent.act(None, {})
        clicks = rng.binomial(batch, rates[arm])
        agent.update(arm, clicks, None, {"impressions": batch, "traffic_used": (step + 1) / steps})
    return agent


def declare_rate(make, rates, runs, **kwargs):
    winners = [run_test(make(), rates, seed=seed, **kwargs).declared_winner() for seed in range(runs)]
    return np.mean([w is not None for w in winners]), winners


# ----------------------------------------------------------------------------- statistics
def test_ztest_agrees_with_the_chi_square_test():
    z, p = two_proportion_ztest(120, 5000, 90, 5100)
    chi2, p_chi2, _, _ = chi2_contingency([[120, 4880], [90, 5010]], correction=False)
    assert z**2 == pytest.approx(chi2)
    assert p == pytest.approx(p_chi2)
    assert z > 0


def test_ztest_without_data_is_not_significant():
    z, p = two_proportion_ztest([0, 5], [0, 100], [0, 0], [100, 100])
    assert np.all(p[0] == 1.0) and z[0] == 0.0
    assert p[1] < 0.05  # 5/100 against 0/100 is a real difference


def test_holm_steps_down_and_is_at_least_as_powerful_as_bonferroni():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    assert holm(p, 0.05).tolist() == [True, False, False, True]  # 0.005<=.0125, 0.01<=.0167, 0.03>.025 stops
    assert bonferroni(p, 0.05).tolist() == [True, False, False, True]
    assert holm([0.02, 0.04], 0.05).tolist() == [True, True]
    assert bonferroni([0.02, 0.04], 0.05).tolist() == [True, False]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=14), st.floats(0.001, 0.2))
def test_holm_rejects_a_superset_of_bonferroni(p_values, alpha):
    assert np.all(holm(p_values, alpha) >= bonferroni(p_values, alpha))


def test_msprt_ratio_grows_with_evidence_and_is_one_without_variance():
    small = msprt_likelihood_ratio(0.002, 1e-6, tau=0.004)
    large = msprt_likelihood_ratio(0.01, 1e-6, tau=0.004)
    assert large > small
    assert msprt_likelihood_ratio(0.01, 0.0, tau=0.004) == 1.0


# ----------------------------------------------------------------------------- fixed horizon
def test_fixed_horizon_declares_the_right_winner_on_a_large_gap_and_then_ships_it():
    agent = run_test(FixedHorizonABTest(), [0.02, 0.03])
    assert agent.declared_winner() == 1
    assert agent.stopped_at == 50  # test_share 0.5 of 100 steps
    assert agent.trials[0] == 25 * 500  # even split until the test, then everything on the winner


def test_fixed_horizon_finds_the_best_of_four_arms_with_holm():
    rates = [0.02, 0.021, 0.035, 0.019]
    for seed in range(5):
        assert run_test(FixedHorizonABTest(correction="holm"), rates, seed=seed).declared_winner() == 2


@pytest.mark.parametrize("n_arms", [2, 4])
def test_fixed_horizon_false_positive_rate_is_about_nominal_on_equal_arms(n_arms):
    rate, runs = declare_rate(lambda: FixedHorizonABTest(alpha=0.05), [0.02] * n_arms, runs=400, steps=20)
    if n_arms == 2:
        assert 0.025 <= rate <= 0.08, rate  # binomial sd at 400 runs is 0.011
    else:
        assert rate <= 0.07, rate  # leader-vs-all with Holm: at most alpha


def test_whole_episode_test_and_declares_none_on_equal_arms_mostly():
    rate, _ = declare_rate(lambda: FixedHorizonABTest(test_share=1.0), [0.03, 0.03], runs=50, steps=20)
    assert rate < 0.15


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="correction"):
        FixedHorizonABTest(correction="sidak")
    with pytest.raises(ValueError, match="test_share"):
        FixedHorizonABTest(test_share=0)
    with pytest.raises(ValueError, match="alpha"):
        SequentialABTest(alpha=1.5)


# ----------------------------------------------------------------------------- sequential
def test_msprt_stops_early_and_right_on_a_big_gap():
    for seed in range(5):
        agent = run_test(SequentialABTest(), [0.02, 0.04], seed=seed)
        assert agent.declared_winner() == 1
        assert agent.stopped_at is not None and agent.stopped_at < 25, agent.stopped_at


def test_msprt_stops_later_when_the_gap_is_smaller():
    big = np.mean([run_test(SequentialABTest(), [0.02, 0.04], seed=s).stopped_at for s in range(5)])
    small = [run_test(SequentialABTest(), [0.02, 0.026], seed=s).stopped_at for s in range(5)]
    small = np.mean([100 if s is None else s for s in small])
    assert small > big


@pytest.mark.parametrize("n_arms", [2, 3])
def test_msprt_keeps_its_false_positive_rate_under_continuous_peeking(n_arms):
    rate, _ = declare_rate(lambda: SequentialABTest(alpha=0.05), [0.02] * n_arms, runs=300, steps=60)
    assert rate <= 0.06, rate


def test_peeking_with_a_plain_z_test_would_not_keep_it():
    """The reason for mSPRT: the fixed-horizon z-test, repeated after every batch, stops on noise far too often."""
    false_stops = 0
    for seed in range(300):
        rng = np.random.default_rng(seed)
        clicks, trials = np.zeros(2), np.zeros(2)
        for _ in range(30):
            clicks += rng.binomial(500, 0.02, size=2)
            trials += 500
            if two_proportion_ztest(clicks[0], trials[0], clicks[1], trials[1])[1] < 0.05:
                false_stops += 1
                break
    assert false_stops / 300 > 0.12


def test_msprt_running_p_values_never_exceed_the_current_evidence():
    """The per-pair loop agrees with the vectorised formula: each running minimum is at most today's 1/Lambda."""
    agent = run_test(SequentialABTest(alpha=1e-9), [0.02, 0.022, 0.025, 0.03], seed=4)  # never stops
    rates, n, c = agent.means, agent.trials, agent.successes
    pooled = (c[:, None] + c[None, :]) / (n[:, None] + n[None, :])
    variance = pooled * (1 - pooled) * (1 / n[:, None] + 1 / n[None, :])
    p_now = np.minimum(1.0, 1.0 / msprt_likelihood_ratio(rates[:, None] - rates[None, :], variance, agent.tau))
    off_diagonal = ~np.eye(4, dtype=bool)
    assert np.all(agent.p_values[off_diagonal] <= p_now[off_diagonal] + 1e-12)
    assert agent.p_values[0, 3] < 0.01  # the clear pair has strong evidence, short of alpha=1e-9
