"""Bandit baselines on a tiny Bernoulli simulator (no environment needed): they learn, and they keep the contract."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abgym.agents.bandits import UCB1, EpsilonGreedy, RandomAgent, ThompsonSampling
from abgym.agents.priors import ArmPriorModel, UniformPrior
from abgym.agents.registry import BASELINES, agent_names, make_agent


def simulate(agent, rates, steps=100, batch=500, seed=0, mask=None):
    """Batches of Bernoulli visitors, like ABTest-v0: returns (expected regret, share of traffic on the best arm)."""
    rates = np.asarray(rates, dtype=float)
    rng = np.random.default_rng(seed)
    mask = np.ones(len(rates), bool) if mask is None else np.asarray(mask, bool)
    best = rates[mask].max()
    texts = [f"headline {i}" for i in range(len(rates))]
    agent.reset(len(rates), {"action_mask": mask, "arm_texts": texts, "n_arms": len(rates)}, seed=seed)
    regret, on_best = 0.0, 0
    for step in range(steps):
        arm = agent.act(None, {"action_mask": mask})
        assert mask[arm], f"{agent.name} chose masked arm {arm}"
        clicks = rng.binomial(batch, rates[arm])
        regret += batch * (best - rates[arm])
        on_best += batch * (rates[arm] == best)
        info = {"impressions": batch, "clicks": clicks, "action_mask": mask, "traffic_used": (step + 1) / steps}
        agent.update(arm, clicks, None, info)
    return regret, on_best / (steps * batch)


def mean_regret(make, rates, runs=20, **kwargs):
    return np.mean([simulate(make(), rates, seed=s, **kwargs)[0] for s in range(runs)])


CLEAR_GAP = [0.02, 0.04]


def test_thompson_regret_far_below_uniform_on_a_clear_gap():
    thompson = mean_regret(ThompsonSampling, CLEAR_GAP)
    uniform = mean_regret(RandomAgent, CLEAR_GAP)
    assert thompson < 0.15 * uniform, (thompson, uniform)


@pytest.mark.parametrize("make", [UCB1, lambda: EpsilonGreedy(0.1)], ids=["ucb1", "epsilon-greedy"])
def test_ucb1_and_epsilon_greedy_beat_random(make):
    rates = [0.02, 0.03, 0.05]
    assert mean_regret(make, rates) < 0.7 * mean_regret(RandomAgent, rates)


def test_thompson_puts_most_traffic_on_the_best_of_many_arms_and_declares_it():
    rates = [0.01, 0.012, 0.015, 0.03, 0.011, 0.014]
    agent = ThompsonSampling()
    _, share = simulate(agent, rates, steps=200, seed=3)
    assert share > 0.7
    assert agent.declared_winner() == 3


def test_agents_never_choose_masked_arms():
    rates = [0.5, 0.01, 0.02, 0.9]
    mask = [False, True, True, False]  # the best arms are masked out (padding arms of a 2-arm experiment)
    for name in BASELINES:
        agent = make_agent(name)
        simulate(agent, rates, steps=30, mask=mask)
        assert agent.declared_winner() in (None, 1, 2)


@pytest.mark.parametrize("name", BASELINES)
def test_same_seed_same_actions(name):
    def actions(seed):
        agent = make_agent(name)
        rng = np.random.default_rng(1)
        agent.reset(3, {"action_mask": np.ones(3, bool), "arm_texts": ["a", "b", "c"]}, seed=seed)
        chosen = []
        for step in range(40):
            arm = agent.act(None, {})
            chosen.append(arm)
            agent.update(arm, rng.binomial(200, 0.05), None, {"impressions": 200, "traffic_used": step / 40})
        return chosen

    assert actions(7) == actions(7)


class RecordingPrior:
    """A prior that believes the second arm is far better, and records what it was asked."""

    def __init__(self):
        self.seen = None

    def beta_prior(self, texts):
        self.seen = list(texts)
        alpha = np.full(len(texts), 1.0)
        beta = np.full(len(texts), 99.0)
        alpha[1], beta[1] = 50.0, 950.0  # confident 5% against an uncertain 1%
        return alpha, beta


def test_thompson_asks_its_prior_about_the_arm_texts_and_uses_it():
    prior = RecordingPrior()
    assert isinstance(prior, ArmPriorModel)
    agent = ThompsonSampling(prior=prior)
    agent.reset(3, {"arm_texts": ["first", "second", "third"], "action_mask": np.ones(3, bool)}, seed=0)
    assert prior.seen == ["first", "second", "third"]
    first_pulls = [agent.act(None, {}) for _ in range(50)]
    assert np.mean(np.equal(first_pulls, 1)) > 0.8
    assert agent.declared_winner() == 1


def test_informative_prior_lowers_regret_when_it_is_right():
    rates = [0.01, 0.05, 0.01]
    informed = mean_regret(lambda: ThompsonSampling(prior=RecordingPrior()), rates, runs=10)
    flat = mean_regret(ThompsonSampling, rates, runs=10)
    assert informed < flat


@pytest.mark.parametrize(
    "bad, message",
    [
        (lambda texts: (np.ones(len(texts) + 1), np.ones(len(texts))), "shapes"),
        (lambda texts: (np.zeros(len(texts)), np.ones(len(texts))), "positive"),
        (lambda texts: (np.full(len(texts), np.nan), np.ones(len(texts))), "positive"),
    ],
)
def test_faulty_prior_fails_with_a_clear_error(bad, message):
    class Bad:
        def beta_prior(self, texts):
            return bad(texts)

    with pytest.raises(ValueError, match=message):
        ThompsonSampling(prior=Bad()).reset(2, {"arm_texts": ["a", "b"]}, seed=0)


def test_text_prior_without_texts_is_a_clear_error():
    with pytest.raises(ValueError, match="arm_texts"):
        ThompsonSampling(prior=RecordingPrior()).reset(2, {}, seed=0)


def test_bad_feedback_and_arms_are_rejected():
    agent = EpsilonGreedy()
    agent.reset(2, {}, seed=0)
    with pytest.raises(ValueError, match="out of range"):
        agent.update(5, 1, None, {"impressions": 10})
    with pytest.raises(ValueError, match="clicks"):
        agent.update(0, 11, None, {"impressions": 10})
    with pytest.raises(ValueError, match="epsilon"):
        EpsilonGreedy(1.5)
    with pytest.raises(ValueError, match="positive"):
        UniformPrior(0, 1)


def test_registry_knows_every_baseline_and_rejects_unknown_names():
    assert set(BASELINES) <= set(agent_names())
    assert make_agent("ts").name == "thompson"
    assert make_agent("epsilon-greedy", epsilon=0.3).epsilon == 0.3
    with pytest.raises(ValueError, match="known agents"):
        make_agent("nonsense")
    with pytest.raises(ValueError, match="does not take"):
        make_agent("ucb1", epsilon=0.3)


@settings(max_examples=30, deadline=None)
@given(
    n_arms=st.integers(2, 14),
    name=st.sampled_from(BASELINES),
    seed=st.integers(0, 2**16),
    batch=st.integers(1, 2000),
)
def test_any_arm_count_and_batch_size_keeps_counts_consistent(n_arms, name, seed, batch):
    rng = np.random.default_rng(seed)
    rates = rng.uniform(0, 0.1, size=n_arms)
    mask = np.ones(n_arms, bool)
    if n_arms > 2:
        mask[rng.choice(n_arms, size=rng.integers(0, n_arms - 1), replace=False)] = False
    agent = make_agent(name)
    simulate(agent, rates, steps=20, batch=batch, seed=seed, mask=mask)
    assert agent.trials.sum() == 20 * batch
    assert agent.trials[~mask].sum() == 0
    assert np.all(agent.successes <= agent.trials)
    winner = agent.declared_winner()
    assert winner is None or mask[winner]
