"""Synthetic logged bandit feedback with a known answer, to check estimators before trusting them on real logs.

Users come in ``n_user_types`` kinds; the click probability of item ``a`` at position ``k`` for a user of kind
``u`` is ``q[u, a] * position_decay[k]``; the logging policy is a softmax over a random score per (kind, item), so
that its propensities are far from uniform (which is where IPS and SNIPS differ). The log has the same fields as
the Open Bandit Dataset's (:class:`abgym.data.open_bandit.LoggedBanditFeedback`), so every estimator runs on both.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from abgym.data.open_bandit import LoggedBanditFeedback
from abgym.ope.policies import at_logged_position

__all__ = ["SyntheticLog", "synthetic_log", "true_policy_value"]


@dataclass(frozen=True)
class SyntheticLog:
    log: LoggedBanditFeedback
    expected_reward: np.ndarray   # (n_rounds, n_actions, len_list): the true click probability of every choice
    behavior_dist: np.ndarray     # (n_rounds, n_actions, len_list): the logging policy
    user_type: np.ndarray         # (n_rounds,)


def synthetic_log(n_rounds: int = 20_000, n_actions: int = 5, len_list: int = 2, n_user_types: int = 3,
                  temperature: float = 1.0, seed: int = 0) -> SyntheticLog:
    """A seeded synthetic log; ``temperature`` sets how far the logging policy is from uniform (larger: further)."""
    if min(n_rounds, n_actions, len_list, n_user_types) < 1:
        raise ValueError("n_rounds, n_actions, len_list and n_user_types must be >= 1")
    rng = np.random.default_rng(seed)
    q = rng.uniform(0.05, 0.5, size=(n_user_types, n_actions))
    decay = 1.0 / (1.0 + 0.5 * np.arange(len_list))
    logits = temperature * rng.standard_normal((n_user_types, n_actions))
    behavior = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    user = rng.integers(0, n_user_types, n_rounds)
    position = rng.integers(0, len_list, n_rounds)
    cumulative = behavior[user].cumsum(axis=1)
    action = np.minimum((rng.random(n_rounds)[:, None] > cumulative).sum(axis=1), n_actions - 1)
    expected = q[user][:, :, None] * decay[None, None, :]
    reward = (rng.random(n_rounds) < expected[np.arange(n_rounds), action, position]).astype(np.int64)
    log = LoggedBanditFeedback(
        action=action.astype(np.int64), position=position.astype(np.int64), reward=reward,
        pscore=behavior[user, action], context=np.eye(n_user_types)[user], affinity=np.zeros((n_rounds, n_actions)),
        item_features=np.arange(n_actions, dtype=np.float64)[:, None],
        timestamp=np.datetime64("2026-01-01") + np.arange(n_rounds).astype("timedelta64[s]"),
        n_actions=n_actions, len_list=len_list, behavior_policy="synthetic-softmax", campaign="synthetic",
        source=f"synthetic_log(seed={seed})")
    behavior_dist = np.repeat(behavior[user][:, :, None], len_list, axis=2)
    return SyntheticLog(log, expected, behavior_dist, user)


def true_policy_value(expected_reward: np.ndarray, action_dist: np.ndarray, position: np.ndarray) -> float:
    """The policy's expected reward on these rows' users and positions: mean_i sum_a pi(a | i) q(i, a)."""
    pi = at_logged_position(action_dist, position)
    q = at_logged_position(expected_reward, position)
    return float((np.broadcast_to(pi, q.shape) * q).sum(axis=1).mean())
