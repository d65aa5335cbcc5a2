"""beta' = Pi^T beta and the sign-constrained Lasso of eq. 11-12, including Lemma 4.1 (lambda -> 0)."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from abgym.ranker.impact import (ImpactModel, attribute_projection, naive_impact, pseudo_inverse_solution,
                                 sign_constrained_lasso)


def test_naive_impact_is_pi_transpose_beta_on_a_hand_case():
    projection = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])     # P: d=3 -> q=2
    vectors = np.array([[1.0, 0.0, 0.0], [0.0, 0.6, 0.8], [0.0, 0.0, 1.0]])  # V: 3 attributes
    beta = np.array([2.0, -1.0])
    np.testing.assert_allclose(attribute_projection(projection, vectors), [[1, 0, 0], [0, 0.6, 0]])
    np.testing.assert_allclose(naive_impact(projection, vectors, beta), [2.0, -0.6, 0.0])


@given(st.integers(0, 10_000))
@settings(max_examples=10, deadline=None)
def test_lemma_4_1_small_lambda_recovers_the_pseudo_inverse_solution(seed):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(80, 5))
    truth = rng.choice([-1, 1], size=5) * rng.uniform(0.5, 2.0, size=5)
    targets = scores @ truth + 3.0 + 0.05 * rng.normal(size=80)
    ols, ols_intercept = pseudo_inverse_solution(scores, targets)
    assert np.all(np.sign(ols) == np.sign(truth))  # the pseudo-inverse solution is sign-consistent here
    gamma, intercept, _ = sign_constrained_lasso(scores, targets, np.sign(truth), alpha=1e-9)
    np.testing.assert_allclose(gamma, ols, atol=1e-5)
    assert intercept == pytest.approx(ols_intercept, abs=1e-5)


def test_sign_constraint_zeroes_attributes_that_would_enter_with_the_wrong_sign():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(200, 3))
    targets = 2 * scores[:, 0] - 1 * scores[:, 1]
    gamma, _, _ = sign_constrained_lasso(scores, targets, np.array([1, 1, 1]), alpha=1e-6)
    assert gamma[0] > 1.9 and gamma[1] == 0.0            # attribute 1 wants a negative sign: kept at zero
    gamma, _, _ = sign_constrained_lasso(scores, targets, np.array([1, -1, 0]), alpha=1e-6)
    np.testing.assert_allclose(gamma[:2], [2, -1], atol=1e-3)
    assert gamma[2] == 0.0                                # sign 0: excluded


def test_cross_validated_lambda_gives_a_sparse_fit_of_a_sparse_truth():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(400, 20))
    truth = np.zeros(20)
    truth[[2, 7, 11]] = [1.5, -2.0, 1.0]
    targets = scores @ truth + 0.5 * rng.normal(size=400)
    signs = np.sign(scores.T @ targets)
    gamma, _, alpha = sign_constrained_lasso(scores, targets, signs, n_folds=5, seed=0)
    assert alpha > 0
    assert set(np.flatnonzero(np.abs(gamma) > 0.2)) == {2, 7, 11}
    assert (sign_constrained_lasso(scores, targets, signs, n_folds=5, seed=0)[0] == gamma).all()  # seeded


def test_impact_model_contributions_and_bad_shapes():
    model = ImpactModel(["a", "b"], np.array([2.0, -1.0]), 0.5, np.array([1.0, -1.0]), np.array([0.5, 2.0]), 0.1, 0.9)
    np.testing.assert_allclose(model.contributions([1.0, 1.0], [0.0, 3.0]), [2.0, 2.0])
    np.testing.assert_allclose(model.effect_per_sd, [1.0, -2.0])
    np.testing.assert_allclose(model.predict(np.array([1.0, 1.0])), [1.5])
    with pytest.raises(ValueError, match="shapes do not match"):
        sign_constrained_lasso(np.zeros((10, 2)), np.zeros(10), np.ones(3))
    with pytest.raises(ValueError, match="at least"):
        sign_constrained_lasso(np.zeros((2, 2)), np.zeros(2), np.ones(2))
