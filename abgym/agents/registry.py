"""Agent names, so that the command line and :func:`abgym.evaluate` can take ``--agent thompson``.

A name maps to a factory that builds a fresh agent; keyword arguments go to the agent's constructor.
"""
from __future__ import annotations

from typing import Callable

from abgym.agents.ab_testing import FixedHorizonABTest, SequentialABTest
from abgym.agents.bandits import UCB1, EpsilonGreedy, RandomAgent, ThompsonSampling
from abgym.agents.base import Agent


def _thompson_ranker(**kwargs) -> Agent:
    """Thompson sampling with the content ranker's prior (abgym.ranker), fitted on the Upworthy train split."""
    try:
        from abgym.ranker.prior import RankerPrior
    except ImportError as error:
        raise ValueError(
            "agent 'thompson-ranker' needs the content ranker (abgym.ranker.prior), which is not available: "
            f"{error}. Use 'thompson' for the uniform prior."
        ) from error
    agent = ThompsonSampling(prior=RankerPrior.default(), **kwargs)
    agent.name = "thompson-ranker"
    return agent


def _contextual(cls_name: str, **tuned):
    """A linear contextual bandit (abgym.agents.contextual) with the settings the marketing comparison tuned on seeds
    0-2 (a strong ridge penalty on the user-variant interactions; LinUCB's bonus was retuned for issue 17, see
    AGENTS); keyword arguments override them."""
    def factory(**kwargs):
        from abgym.agents import contextual

        return getattr(contextual, cls_name)(**{"interaction_l2": 3000.0, **tuned, **kwargs})

    factory.__doc__ = f"{cls_name} for PersonalizedMarketing-v0-style observations (user, context, memory, variants)"
    return factory


def _classical_ab(**kwargs):
    """Classical A/B test in the personalized setting: a uniform test of ``test_arrivals`` users, then its winner."""
    from abgym.agents.personalized_ab import ClassicalABTest

    return ClassicalABTest(**{"test_arrivals": 200, **kwargs})


AGENTS: dict[str, Callable[..., Agent]] = {
    "random": RandomAgent,
    "ab-test": FixedHorizonABTest,
    "msprt": SequentialABTest,
    "epsilon-greedy": EpsilonGreedy,
    "ucb1": UCB1,
    "thompson": ThompsonSampling,
    "thompson-ranker": _thompson_ranker,
    # Contextual agents for the marketing envs (PersonalizedMarketing-v0, CustomerJourney-v0).
    # LinUCB's bonus scale is 1.2 at K = 4 variants and grows as sqrt(K / 4) (1.2 * sqrt(K / 4) = 0.6 * sqrt(K): 2.08
    # at K = 12; abgym.agents.contextual.LinUCB says why); the constant was chosen on tuning seeds 1000-1039 at K = 4
    # and K = 12 (scripts/bench_bandits.py --tune, docs/marketing_agents.md). Before issue 17: a fixed alpha 0.5.
    "linucb": _contextual("LinUCB", alpha=1.2, reference_arms=4),
    "lints": _contextual("LinearThompson", v=0.5),
    "egreedy-linear": _contextual("LinearEpsilonGreedy", epsilon=0.05),
    "classical-ab": _classical_ab,
}
# Agents that read the marketing observation (user, context, memory, variants), not ABTest-v0's.
CONTEXTUAL = ("linucb", "lints", "egreedy-linear")
ALIASES = {"uniform": "random", "egreedy": "epsilon-greedy", "ucb": "ucb1", "ts": "thompson", "ab": "ab-test",
           "sequential": "msprt", "etc": "msprt", "classical_ab": "classical-ab", "linear-egreedy": "egreedy-linear",
           "linear-thompson": "lints"}
# The classical baselines that `abgym demo` compares (the ranker prior has its own command).
BASELINES = ("random", "ab-test", "msprt", "epsilon-greedy", "ucb1", "thompson")


def agent_names() -> list[str]:
    return list(AGENTS)


def register_agent(name: str, factory: Callable[..., Agent]) -> None:
    """Add an agent under ``name`` (for example a contextual agent from another module)."""
    AGENTS[name] = factory


def make_agent(name: str, **kwargs) -> Agent:
    key = ALIASES.get(name, name)
    if key not in AGENTS:
        raise ValueError(f"unknown agent {name!r}; known agents: {', '.join(AGENTS)}")
    try:
        agent = AGENTS[key](**kwargs)
    except TypeError as error:
        raise ValueError(f"agent {key!r} does not take these options {sorted(kwargs)}: {error}") from error
    agent.name = key  # the registered name, in tables and logs (the class's own may be shorter)
    return agent
