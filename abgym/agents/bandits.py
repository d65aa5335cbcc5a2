"""Multi-armed bandit baselines for ABTest-v0: random, epsilon-greedy, UCB1 and Bernoulli Thompson sampling.

Each step shows one arm to a batch of visitors; the agents count impressions as trials and clicks as successes,
so a batch of 500 impressions with 9 clicks is 500 Bernoulli draws, not one.
"""
from __future__ import annotations

import numpy as np

from abgym.agents.base import Agent
from abgym.agents.priors import ArmPriorModel, UniformPrior, checked_beta_prior


class RandomAgent(Agent):
    """Each batch goes to a valid arm drawn uniformly: the traffic split of a plain A/B/n test, with no test."""

    name = "random"

    def act(self, observation=None, info: dict | None = None) -> int:
        return self._random_arm()


class EpsilonGreedy(Agent):
    """Shows every arm once, then the best observed arm, except for a share ``epsilon`` of batches sent at random."""

    name = "epsilon-greedy"

    def __init__(self, epsilon: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.epsilon = float(epsilon)

    def act(self, observation=None, info: dict | None = None) -> int:
        untried = self.valid & (self.trials == 0)
        if untried.any():
            return int(np.flatnonzero(untried)[0])
        if self.rng.random() < self.epsilon:
            return self._random_arm()
        return self._argmax(self.means)


class UCB1(Agent):
    """Upper confidence bound (Auer et al., 2002): mean + sqrt(c * ln N / n_i), counting impressions as trials.

    The bonus does not scale with the click rate, so at web click rates (about 1 %) UCB1 explores for a long
    time; it is here as the textbook reference, not as a tuned competitor.
    """

    name = "ucb1"

    def __init__(self, c: float = 2.0) -> None:
        super().__init__()
        if c < 0:
            raise ValueError(f"the exploration constant c must be non-negative, got {c}")
        self.c = float(c)

    def act(self, observation=None, info: dict | None = None) -> int:
        untried = self.valid & (self.trials == 0)
        if untried.any():
            return int(np.flatnonzero(untried)[0])
        total = self.trials[self.valid].sum()
        bonus = np.sqrt(self.c * np.log(total) / np.maximum(self.trials, 1.0))
        return self._argmax(self.means + bonus)


class ThompsonSampling(Agent):
    """Bernoulli Thompson sampling with a Beta prior per arm.

    ``prior`` is any :class:`~abgym.agents.priors.ArmPriorModel`; at reset it is asked for each arm's
    Beta(alpha, beta) from the arms' texts (``info["arm_texts"]``). The default is Beta(1, 1) for every arm.
    """

    name = "thompson"

    def __init__(self, prior: ArmPriorModel | None = None) -> None:
        super().__init__()
        self.prior = prior if prior is not None else UniformPrior()
        self.alpha0 = np.zeros(0)
        self.beta0 = np.zeros(0)

    def reset(self, n_arms: int, info: dict | None = None, seed: int | None = None) -> None:
        super().reset(n_arms, info, seed)
        info = info or {}
        texts = info.get("arm_texts")
        if texts is None:
            if not isinstance(self.prior, UniformPrior):
                raise ValueError(
                    f"{type(self.prior).__name__} reads the arms' texts, but the env's reset info has no "
                    "'arm_texts'; use an environment that reports them (ABTest-v0 does) or the uniform prior"
                )
            texts = [""] * n_arms
        texts = list(texts)[:n_arms]
        if len(texts) < n_arms:
            raise ValueError(f"info['arm_texts'] has {len(texts)} texts for {n_arms} arms")
        self.alpha0, self.beta0 = checked_beta_prior(self.prior, texts, n_arms)

    @property
    def posterior(self) -> tuple[np.ndarray, np.ndarray]:
        return self.alpha0 + self.successes, self.beta0 + self.trials - self.successes

    def act(self, observation=None, info: dict | None = None) -> int:
        alpha, beta = self.posterior
        return self._argmax(self.rng.beta(alpha, beta))

    def declared_winner(self) -> int | None:
        """The arm with the highest posterior mean click rate."""
        alpha, beta = self.posterior
        return self._argmax(alpha / (alpha + beta))
