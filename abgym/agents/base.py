"""The interface every A/B-test agent follows, and the bookkeeping they all share.

An agent sees ABTest-v0 the way an experimenter sees a live test: each step it chooses the arm shown to the next
batch of visitors, then learns how many of them saw it (``info["impressions"]``) and how many clicked (``reward``).
Agents keep their own per-arm counts from that feedback rather than reading them off the observation, so they
work on any environment that reports batches the same way (and on the tiny simulators in the tests).

Contract (docs/CONTRACTS.md)::

    agent.reset(n_arms, info, seed)        # info: the env's reset info (action_mask, arm_texts, ...)
    arm = agent.act(observation, info)
    agent.update(arm, reward, observation, info)   # info["impressions"] trials, reward clicks
    agent.declared_winner() -> int | None
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np


class Agent(ABC):
    """Base class: per-arm trial and success counts, the valid-arm mask and a seeded generator."""

    name: str = "agent"

    def __init__(self) -> None:
        self.n_arms = 0
        self.trials = np.zeros(0, dtype=np.float64)
        self.successes = np.zeros(0, dtype=np.float64)
        self.valid = np.zeros(0, dtype=bool)
        self.rng = np.random.default_rng()
        self.t = 0  # steps taken in this episode

    # ------------------------------------------------------------------ contract
    def reset(self, n_arms: int, info: dict | None = None, seed: int | None = None) -> None:
        """Start a new experiment with ``n_arms`` arms; the mask in ``info`` (if any) marks which are real."""
        n_arms = int(n_arms)
        if n_arms < 1:
            raise ValueError(f"{self.name}: n_arms must be at least 1, got {n_arms}")
        info = info or {}
        self.n_arms = n_arms
        self.trials = np.zeros(n_arms, dtype=np.float64)
        self.successes = np.zeros(n_arms, dtype=np.float64)
        self.valid = self._mask_from(info, n_arms)
        if not self.valid.any():
            raise ValueError(f"{self.name}: the action mask allows no arm at all")
        self.rng = np.random.default_rng(seed)
        self.t = 0

    @abstractmethod
    def act(self, observation, info: dict | None = None) -> int:
        """The arm shown to the next batch of visitors."""

    def update(self, action: int, reward: float, observation=None, info: dict | None = None) -> None:
        """Record one batch: ``info["impressions"]`` visitors saw ``action`` and ``reward`` of them clicked."""
        action = self._check_arm(action)
        trials = float((info or {}).get("impressions", 1))
        clicks = float(reward)
        if trials < 0 or clicks < 0 or clicks > trials:
            raise ValueError(
                f"{self.name}: a batch needs 0 <= clicks <= impressions, got reward {clicks} for {trials} "
                "impressions (info['impressions'], 1 if absent); these agents expect click counts as rewards, "
                "as ABTest-v0 gives"
            )
        self.trials[action] += trials
        self.successes[action] += clicks
        self.t += 1

    def declared_winner(self) -> int | None:
        """The arm this agent would ship: by default the best observed click rate among the arms it tried."""
        return self._empirical_best()

    # ------------------------------------------------------------------ helpers for subclasses
    @property
    def means(self) -> np.ndarray:
        """Observed click rate per arm (0 for arms never shown)."""
        return np.divide(self.successes, self.trials, out=np.zeros_like(self.successes), where=self.trials > 0)

    @property
    def valid_arms(self) -> np.ndarray:
        return np.flatnonzero(self.valid)

    def _empirical_best(self) -> int | None:
        tried = self.valid & (self.trials > 0)
        if not tried.any():
            return None
        return self._argmax(np.where(tried, self.means, -np.inf))

    def _argmax(self, scores: np.ndarray) -> int:
        """Argmax over valid arms, ties broken at random (with the agent's generator) so no arm is favoured."""
        scores = np.where(self.valid, scores, -np.inf)
        best = np.flatnonzero(scores == scores.max())
        return int(best[0] if len(best) == 1 else self.rng.choice(best))

    def _random_arm(self) -> int:
        return int(self.rng.choice(self.valid_arms))

    def _least_tried_arm(self) -> int:
        """Round-robin allocation that stays balanced when batch sizes differ: the valid arm with fewest trials."""
        trials = np.where(self.valid, self.trials, np.inf)
        return int(np.flatnonzero(trials == trials.min())[0])

    def _check_arm(self, action) -> int:
        arm = int(action)
        if not 0 <= arm < self.n_arms:
            raise ValueError(f"{self.name}: arm {arm} is out of range for {self.n_arms} arms (was reset called?)")
        return arm

    @staticmethod
    def _mask_from(info: dict, n_arms: int) -> np.ndarray:
        mask = info.get("action_mask")
        if mask is None:
            return np.ones(n_arms, dtype=bool)
        mask = np.asarray(mask, dtype=bool)[:n_arms]
        if len(mask) < n_arms:
            raise ValueError(f"action_mask has {len(mask)} entries for {n_arms} arms")
        return mask.copy()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
