"""Insight, opportunity and novelty indices (eq. 17-22), impact bins, potentials: hand-made cases."""
import numpy as np
import pytest

from abgym.ranker.insights import (conversion_potential, impact_bins, insight_index, learning_potential, novelty,
                                   opportunity_index, rank_opportunities, top_drivers)


def test_insight_index_eq17_and_positive_drivers():
    gamma = np.array([2.0, -1.0, 0.5, 0.0])
    best = np.array([1.0, 1.0, 0.0, 5.0])
    worst = np.array([0.0, 0.0, 2.0, 0.0])
    index = insight_index(gamma, best, worst)   # contributions 2, -1, -1, 0 -> / 4
    np.testing.assert_allclose(index, [0.5, -0.25, -0.25, 0.0])
    assert top_drivers(index, k=3) == [0]                       # positivity filter drops the negatives
    assert top_drivers(index, k=2, positive_only=False) == [0, 3]
    np.testing.assert_array_equal(insight_index(gamma, best, best), np.zeros(4))


def test_opportunity_index_eq18_20_and_fallback():
    gamma = np.array([1.0, 2.0, -3.0])
    scale = np.array([1.0, 0.5, 1.0])
    arms = np.array([[0.1, 0.9, 0.0], [0.3, 0.2, 0.0]])
    targets = np.array([0.5, 0.5, 0.5])
    opportunity, importance, under = opportunity_index(gamma, scale, arms, targets)
    np.testing.assert_allclose(importance, [1.0, 1.0, 0.0])      # negative gamma: no opportunity in adding it
    np.testing.assert_allclose(under, [0.2, 0.0, 0.5])           # attribute 1 already expressed (0.9 > 0.5)
    np.testing.assert_allclose(opportunity, [0.2, 0.0, 0.0])
    assert rank_opportunities(opportunity, importance, k=2) == ([0], False)
    # Everything helpful is already expressed: fall back to the strongest positive attributes, flagged.
    saturated = opportunity_index(gamma, scale, np.array([[1.0, 1.0, 1.0]]), targets)
    assert rank_opportunities(saturated[0], saturated[1], k=2) == ([0, 1], True)


def test_novelty_eq21_22():
    arms = np.array([[1.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(novelty(np.array([[3.0, 0.0], [1.0, -1.0]]), arms), [0.0, 1 - np.sqrt(0.5)])


def test_impact_bins_by_tertiles_of_active_effects():
    bins = impact_bins(np.array([0.0, 0.1, -0.2, 0.3, 0.4, -0.5, 0.6]))
    assert bins[0] == "none"
    assert bins[-1] == "strong" and bins[1] == "weak"
    assert set(bins[1:]) == {"strong", "medium", "weak"}
    assert impact_bins(np.zeros(3)) == ["none"] * 3


def test_conversion_and_learning_potential():
    assert conversion_potential(np.array([0.0]), 1.0)[0] == pytest.approx(0.5)
    assert conversion_potential(np.array([2.0]), 1.0)[0] == pytest.approx(0.977, abs=1e-3)
    learning = learning_potential(np.array([0.5, 0.5, 0.0]), np.array([0.5, 0.99, 0.5]))
    assert learning[0] == pytest.approx(0.5) and learning[1] < 0.05 and learning[2] == 0
