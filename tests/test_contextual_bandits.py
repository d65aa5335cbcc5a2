"""Contextual bandits and the classical A/B test on small linear problems whose best arm is known."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abgym.agents.contextual import (LinearBanditAgent, LinearEpsilonGreedy, LinearThompson, LinUCB,
                                     RidgePosterior, make_contextual_agent)
from abgym.agents.features import FeatureMap, memory_summary
from abgym.agents.personalized_ab import ClassicalABTest


class LinearProblem:
    """Users with a random portrait; reward = portrait . theta_arm (disjoint) or user^T W v_arm (shared) + noise."""

    def __init__(self, kind="disjoint", n_arms=4, user_dim=5, variant_dim=3, noise=0.1, seed=0):
        self.rng = np.random.default_rng(seed)
        self.kind, self.n_arms, self.noise = kind, n_arms, noise
        self.user_dim = user_dim
        self.theta = self.rng.normal(size=(n_arms, user_dim + 1))
        self.W = self.rng.normal(size=(user_dim + 1, variant_dim + 1))
        self.variants = self.rng.normal(size=(n_arms, variant_dim))

    def observe(self):
        user = self.rng.normal(size=self.user_dim)
        self.obs = {"user": user, "context": np.zeros(2), "memory": np.zeros((3, 4)), "variants": self.variants}
        x = np.concatenate([[1.0], user])
        if self.kind == "disjoint":
            self.expected = self.theta @ x
        else:
            self.expected = np.array([x @ self.W @ np.concatenate([[1.0], v]) for v in self.variants])
        return self.obs

    def reward(self, action):
        return self.expected[action] + self.noise * self.rng.normal()


def run(agent, problem, steps):
    agent.reset(problem.n_arms, {}, seed=1)
    regret = np.zeros(steps)
    for t in range(steps):
        obs = problem.observe()
        action = agent.act(obs, {})
        regret[t] = problem.expected.max() - problem.expected[action]
        agent.update(action, problem.reward(action), obs, {})
    return regret


def features(model):
    return FeatureMap(model=model, use_memory=False)


@pytest.mark.parametrize("make", [
    lambda m: LinUCB(alpha=0.5, features=features(m)),
    lambda m: LinearThompson(v=0.2, features=features(m)),
    lambda m: LinearEpsilonGreedy(epsilon=0.05, features=features(m)),
], ids=["linucb", "lints", "egreedy"])
@pytest.mark.parametrize("model", ["disjoint", "shared"])
def test_agents_find_the_best_arm_of_a_linear_problem(make, model):
    problem = LinearProblem(kind=model, seed=3)
    agent = make(model)
    regret = run(agent, problem, 1500)
    random_regret = np.mean([problem.expected.max() - problem.expected.mean() for _ in range(200)
                             if problem.observe() is not None])
    # Learnt: the last 500 decisions lose under a tenth of what uniform choice loses per user.
    assert regret[-500:].mean() < 0.1 * random_regret
    # The optimistic and the sampling agents stop exploring: the second half costs much less than the first.
    # (Epsilon-greedy explores at a constant rate, so its regret grows linearly at about epsilon * uniform.)
    if not isinstance(agent, LinearEpsilonGreedy):
        assert regret[750:].sum() < 0.5 * regret[:750].sum()


def test_linucb_regret_stays_within_a_bound():
    problem = LinearProblem(seed=11)
    regret = run(LinUCB(alpha=0.5, features=features("disjoint")), problem, 2000)
    assert regret.sum() < 60.0  # uniform choice pays about 2000 * 1.9 here


def test_shared_model_makes_a_new_variant_warm():
    """The shared model predicts a never-shown variant's reward from its features; the disjoint one cannot."""
    problem = LinearProblem(kind="shared", n_arms=6, seed=5)
    agent = LinUCB(alpha=0.5, features=features("shared"))
    run(agent, problem, 1500)
    new_variant = problem.rng.normal(size=(1, problem.variants.shape[1]))
    obs = problem.observe()
    obs = {**obs, "variants": np.concatenate([problem.variants, new_variant])}
    x = np.concatenate([[1.0], obs["user"]])
    truth = x @ problem.W @ np.concatenate([[1.0], new_variant[0]])
    predicted = agent.expected_rewards(obs)
    assert abs(predicted[-1] - truth) < 0.1 * (1 + abs(truth))


def test_sherman_morrison_matches_the_direct_solution():
    rng = np.random.default_rng(0)
    posterior = RidgePosterior(n_heads=2, dim=4, l2=2.0)
    X, y = rng.normal(size=(50, 4)), rng.normal(size=50)
    for x, r in zip(X, y):
        posterior.update(1, x, r)
    A = 2.0 * np.eye(4) + X.T @ X
    np.testing.assert_allclose(posterior.A_inv[1], np.linalg.inv(A), atol=1e-10)
    np.testing.assert_allclose(posterior.theta[1], np.linalg.solve(A, X.T @ y), atol=1e-10)
    np.testing.assert_allclose(posterior.theta[0], 0.0)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), name=st.sampled_from(["linucb", "lints", "egreedy"]),
       model=st.sampled_from(["disjoint", "shared"]))
def test_same_seed_same_decisions(seed, name, model):
    def decisions():
        problem = LinearProblem(kind=model, seed=seed)
        agent = make_contextual_agent(name, features=features(model), seed=seed)
        agent.reset(problem.n_arms, {})
        out = []
        for _ in range(30):
            obs = problem.observe()
            out.append(agent.act(obs, {}))
            agent.update(out[-1], problem.reward(out[-1]), obs, {})
        return out
    assert decisions() == decisions()


@pytest.mark.parametrize("name", ["linucb", "lints", "egreedy"])
@pytest.mark.parametrize("model", ["disjoint", "shared"])
def test_save_load_resumes_exactly(tmp_path, name, model):
    """Half the run, a checkpoint, the other half from the checkpoint == the whole run at once."""
    def steps(agent, problem, n):
        out = []
        for _ in range(n):
            obs = problem.observe()
            out.append(agent.act(obs, {}))
            agent.update(out[-1], problem.reward(out[-1]), obs, {})
        return out

    straight = make_contextual_agent(name, features=features(model), seed=4)
    straight.reset(4, {})
    reference = steps(straight, LinearProblem(kind=model, seed=9), 300)

    first = make_contextual_agent(name, features=features(model), seed=4)
    first.reset(4, {})
    problem = LinearProblem(kind=model, seed=9)
    resumed = steps(first, problem, 150)
    first.save(tmp_path / "agent.npz")
    second = LinearBanditAgent.load(tmp_path / "agent.npz")
    assert type(second) is type(first)
    resumed += steps(second, problem, 150)
    assert resumed == reference
    np.testing.assert_array_equal(second.posterior.theta, straight.posterior.theta)


def test_load_rejects_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no bandit checkpoint"):
        LinearBanditAgent.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a bandit checkpoint"):
        LinearBanditAgent.load(tmp_path / "junk.npz")
    agent = LinUCB()
    agent.reset(3, {})
    agent.save(tmp_path / "ucb.npz")
    with pytest.raises(ValueError, match="holds a LinUCB"):
        LinearThompson.load(tmp_path / "ucb.npz")


class FixedPrior:
    def __init__(self, by_text):
        self.by_text = by_text

    def ctr_prior(self, texts):
        mean = np.array([self.by_text[text] for text in texts])
        return mean, np.full(len(texts), 0.01)


def test_a_good_prior_lowers_early_regret():
    """With the true arm means as the prior, the first decisions are already good."""
    problem = LinearProblem(seed=2, noise=0.5)
    texts = [f"variant {a}" for a in range(problem.n_arms)]
    problem.observe()
    means = problem.theta[:, 0]  # the arms' mean reward over users (portraits have mean zero)
    prior = FixedPrior(dict(zip(texts, means)))
    info = {"variant_texts": texts}

    def early_regret(agent):
        agent.reset(problem.n_arms, info, seed=0)
        total = 0.0
        for _ in range(40):
            obs = problem.observe()
            action = agent.act(obs, info)
            total += problem.expected.max() - problem.expected[action]
            agent.update(action, problem.reward(action), obs, info)
        return total

    with_prior = np.mean([early_regret(LinUCB(alpha=0.5, features=features("disjoint"), prior=prior))
                          for _ in range(5)])
    without = np.mean([early_regret(LinUCB(alpha=0.5, features=features("disjoint"))) for _ in range(5)])
    assert with_prior < without


def test_prior_needs_variant_texts():
    agent = LinUCB(prior=FixedPrior({}))
    with pytest.raises(KeyError, match="variant_texts"):
        agent.reset(3, {"n_arms": 3})


def test_bad_input_is_named():
    with pytest.raises(TypeError, match="observation_type='dict'"):
        LinUCB().act(np.zeros(5), {})
    with pytest.raises(KeyError, match="memory"):
        LinUCB().act({"user": np.zeros(2), "context": np.zeros(1), "variants": np.zeros((2, 2))}, {})
    with pytest.raises(ValueError, match="unknown contextual agent"):
        make_contextual_agent("ucb2")
    with pytest.raises(ValueError, match="model must be"):
        FeatureMap(model="hybrid")
    agent = LinUCB()
    with pytest.raises(RuntimeError, match="before act"):
        agent.update(0, 1.0)


def test_memory_summary_reads_clicked_embeddings():
    memory = np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    summary = memory_summary(memory)
    np.testing.assert_allclose(summary[:4], [0.5, 0.5, 0.5, 0.0])  # mean over the two filled rows
    np.testing.assert_allclose(summary[4:], [1.0, 0.0])  # the one clicked embedding


def test_classical_ab_tests_uniformly_then_ships_the_winner(tmp_path):
    rng = np.random.default_rng(0)
    means = np.array([0.1, 0.3, 0.2])
    agent = ClassicalABTest(test_arrivals=300, seed=0)
    agent.reset(3, {})
    actions = []
    for t in range(600):
        action = agent.act(None, {})
        actions.append(action)
        agent.update(action, float(rng.random() < means[action]), None, {})
        if t == 400:
            agent.save(tmp_path / "ab.json")
    assert np.bincount(actions[:300], minlength=3).tolist() == [100, 100, 100]
    assert agent.declared_winner() == 1 and set(actions[300:]) == {1}
    restored = ClassicalABTest.load(tmp_path / "ab.json")
    assert restored.declared_winner() == 1 and restored.t == 401


def test_linucb_bonus_grows_as_the_square_root_of_the_number_of_arms(tmp_path):
    """With reference_arms, the disjoint LinUCB's bonus is alpha at that K and alpha * sqrt(K / reference) elsewhere;
    the shipped agent (the registry's) uses it, a fixed-alpha LinUCB and the shared model do not scale."""
    from abgym.agents.registry import make_agent

    scaled = LinUCB(alpha=1.2, reference_arms=4, features=features("disjoint"))
    assert scaled.bonus_scale(4) == pytest.approx(1.2)
    assert scaled.bonus_scale(12) == pytest.approx(1.2 * np.sqrt(3))
    assert scaled.bonus_scale(1) == pytest.approx(0.6)
    assert LinUCB(alpha=1.2, features=features("disjoint")).bonus_scale(12) == pytest.approx(1.2)
    assert LinUCB(alpha=1.2, reference_arms=4, features=features("shared")).bonus_scale(12) == pytest.approx(1.2)
    shipped = make_agent("linucb")
    assert (shipped.alpha, shipped.reference_arms, shipped.model) == (1.2, 4, "disjoint")
    assert shipped.bonus_scale(12) == pytest.approx(0.6 * np.sqrt(12))

    # The scores use it: before any data every arm has the prior's variance 1 / l2 on the bias alone.
    problem = LinearProblem(n_arms=12, seed=2)
    scaled.reset(12, {})
    scaled.act(problem.observe(), {})
    X = scaled.features.arm_features(problem.obs, 12)
    mean, variance = scaled._posterior_moments(X)
    np.testing.assert_allclose(scaled.scores(X), mean + 1.2 * np.sqrt(3) * np.sqrt(variance))
    fixed = LinUCB(alpha=1.2, features=features("disjoint"))
    fixed.reset(12, {})
    fixed.act(problem.obs, {})
    assert not np.allclose(fixed.scores(X), scaled.scores(X))

    # Saved and loaded with its setting.
    scaled.save(tmp_path / "scaled.npz")
    assert LinearBanditAgent.load(tmp_path / "scaled.npz").bonus_scale(12) == pytest.approx(1.2 * np.sqrt(3))
    with pytest.raises(ValueError, match="reference_arms"):
        LinUCB(reference_arms=0)
