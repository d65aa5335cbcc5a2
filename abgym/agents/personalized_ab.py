"""Classical A/B testing in the personalized setting: a uniform test period, then the winner for everyone.

This is what most marketing teams do, and the baseline the paper (arXiv 2506.06316) compares against: every
variant is shown uniformly at random to the first ``test_fraction`` of the arrival budget (or ``test_arrivals``
users), the variant with the best mean reward wins, and every later user gets it, whoever they are. It ignores the
user, so it pays for the test period and for every user whose best variant is not the average winner.

Same interface as :mod:`abgym.agents.contextual`: ``reset``, ``act(observation, info)``,
``update(action, reward, observation, info)``, ``declared_winner``, ``save``/``load``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from abgym.paths import atomic_write


class ClassicalABTest:
    """Uniform allocation for ``test_arrivals`` decisions, then the arm with the best mean reward, forever."""

    name = "classical_ab"

    def __init__(self, test_arrivals: int = 1000, seed: int | None = None):
        if test_arrivals < 1:
            raise ValueError(f"test_arrivals must be >= 1, got {test_arrivals}")
        self.test_arrivals = int(test_arrivals)
        self.seed = seed
        self.reset(0)

    def reset(self, n_arms: int, info: dict | None = None, seed: int | None = None) -> None:
        if seed is not None:
            self.seed = seed
        self.rng = np.random.default_rng(self.seed)
        self.n_arms = int(n_arms)
        self.pulls = np.zeros(self.n_arms, dtype=np.int64)
        self.reward_sums = np.zeros(self.n_arms)
        self.t = 0
        self.winner: int | None = None

    def act(self, observation=None, info: dict | None = None) -> int:
        if self.n_arms == 0:
            if not isinstance(observation, dict) or "variants" not in observation:
                raise ValueError("call reset(n_arms, info) first, or pass the env's Dict observation")
            self.reset(len(observation["variants"]), info)
        if self.winner is not None:
            return self.winner
        # Balanced uniform: a random permutation per block of n_arms users keeps the arms' counts equal.
        block = self.t % self.n_arms
        if block == 0:
            self._permutation = self.rng.permutation(self.n_arms)
        return int(self._permutation[block])

    def update(self, action: int, reward: float, observation=None, info: dict | None = None) -> None:
        if not 0 <= action < self.n_arms:
            raise ValueError(f"action {action} out of range for {self.n_arms} variants")
        self.t += 1
        if self.winner is not None:
            return
        self.pulls[action] += 1
        self.reward_sums[action] += float(reward)
        if self.t >= self.test_arrivals:
            means = self.reward_sums / np.maximum(self.pulls, 1)
            best = np.flatnonzero(means >= means.max())
            self.winner = int(self.rng.choice(best))

    def declared_winner(self) -> int | None:
        return self.winner

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        state = {"class": type(self).__name__, "test_arrivals": self.test_arrivals, "seed": self.seed,
                 "n_arms": self.n_arms, "pulls": self.pulls.tolist(), "reward_sums": self.reward_sums.tolist(),
                 "t": self.t, "winner": self.winner, "rng_state": self.rng.bit_generator.state,
                 "permutation": getattr(self, "_permutation", np.zeros(0, int)).tolist()}
        with atomic_write(path, "w") as handle:
            json.dump(state, handle)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "ClassicalABTest":
        path = Path(path)
        try:
            state = json.loads(path.read_text())
            if state.get("class") != cls.__name__:
                raise ValueError(f"holds a {state.get('class')!r}")
        except (OSError, ValueError) as error:
            raise ValueError(f"{path} is not a ClassicalABTest checkpoint: {error}") from error
        agent = cls(test_arrivals=state["test_arrivals"], seed=state["seed"])
        agent.reset(state["n_arms"])
        agent.pulls = np.array(state["pulls"], dtype=np.int64)
        agent.reward_sums = np.array(state["reward_sums"], dtype=np.float64)
        agent.t, agent.winner = state["t"], state["winner"]
        agent.rng.bit_generator.state = state["rng_state"]
        agent._permutation = np.array(state["permutation"], dtype=np.int64)
        return agent
