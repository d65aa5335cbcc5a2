"""Evaluation policies as action distributions, the form every estimator in :mod:`abgym.ope.estimators` reads.

A policy is an array ``action_dist`` of the probability it gives each item: shape ``(n_rounds, n_actions,
len_list)`` (per row, item and position, as in OBP), or ``(n_rounds, n_actions)`` already taken at each row's logged
position. A first axis of length 1 stands for a context-free policy, the same at every row (broadcast, so that a
26-million-row log needs no 26-million-row copy).
"""
from __future__ import annotations

import numpy as np

__all__ = ["at_logged_position", "bernoulli_ts_action_dist", "check_action_dist", "greedy_action_dist",
           "uniform_action_dist"]


def uniform_action_dist(n_actions: int, len_list: int = 1) -> np.ndarray:
    """The uniform random policy: every item with probability 1/n_actions at every position."""
    if n_actions < 1 or len_list < 1:
        raise ValueError(f"n_actions and len_list must be >= 1, got {n_actions} and {len_list}")
    return np.full((1, n_actions, len_list), 1.0 / n_actions)


def bernoulli_ts_action_dist(alpha, beta, len_list: int = 3, n_sim: int = 100_000, seed: int = 0,
                             chunk: int = 10_000) -> np.ndarray:
    """Bernoulli Thompson sampling's probability of ranking each item at each position, by Monte Carlo.

    As OBD's authors do (``obp.policy.BernoulliTS.compute_batch_action_dist``): draw one Beta(alpha, beta) sample per
    item, rank the items by it, and count how often each item lands in each of the top ``len_list`` slots over
    ``n_sim`` draws. Result ``(1, n_actions, len_list)``: the policy does not depend on the user.
    """
    alpha, beta = np.asarray(alpha, np.float64), np.asarray(beta, np.float64)
    if alpha.ndim != 1 or alpha.shape != beta.shape:
        raise ValueError(f"alpha and beta must be 1-D of equal length, got shapes {alpha.shape} and {beta.shape}")
    if np.any(alpha <= 0) or np.any(beta <= 0):
        raise ValueError("alpha and beta must be > 0")
    n_actions = alpha.size
    if not 1 <= len_list <= n_actions:
        raise ValueError(f"len_list must be in [1, {n_actions}], got {len_list}")
    if n_sim < 1:
        raise ValueError(f"n_sim must be >= 1, got {n_sim}")
    rng = np.random.default_rng(seed)
    counts = np.zeros((n_actions, len_list))
    done = 0
    while done < n_sim:
        size = min(chunk, n_sim - done)
        draws = rng.beta(alpha, beta, size=(size, n_actions))
        top = np.argsort(-draws, axis=1, kind="stable")[:, :len_list]
        for slot in range(len_list):
            counts[:, slot] += np.bincount(top[:, slot], minlength=n_actions)
        done += size
    return (counts / n_sim)[None]


def greedy_action_dist(scores: np.ndarray) -> np.ndarray:
    """One-hot on each row's highest score (ties split evenly): ``(n_rounds, n_actions)``."""
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (n_rounds, n_actions), got shape {scores.shape}")
    best = scores >= scores.max(axis=1, keepdims=True) - 1e-12
    return best / best.sum(axis=1, keepdims=True)


def at_logged_position(action_dist: np.ndarray, position: np.ndarray) -> np.ndarray:
    """``action_dist`` at each row's logged position: ``(n_rounds or 1, n_actions)``.

    A 2-D array is returned as it is (it is already per row); a context-free ``(1, n_actions, len_list)`` array gives
    ``(n_rounds, n_actions)`` by picking each row's position column.
    """
    action_dist = np.asarray(action_dist, np.float64)
    if action_dist.ndim == 2:
        return action_dist
    if action_dist.ndim != 3:
        raise ValueError(f"action_dist must be (n_rounds, n_actions[, len_list]), got shape {action_dist.shape}")
    position = np.asarray(position, np.int64)
    if position.size and (position.min() < 0 or position.max() >= action_dist.shape[2]):
        raise ValueError(f"positions run to {position.max()}, action_dist has {action_dist.shape[2]} positions")
    if action_dist.shape[0] == 1:
        return action_dist[0].T[position]
    if action_dist.shape[0] != position.size:
        raise ValueError(f"action_dist has {action_dist.shape[0]} rows, the log {position.size}")
    return action_dist[np.arange(position.size), :, position]


def check_action_dist(action_dist: np.ndarray, n_rounds: int, n_actions: int) -> None:
    """Reject arrays that are not probability distributions over the log's items, naming the problem."""
    if action_dist.ndim != 2 or action_dist.shape[1] != n_actions or action_dist.shape[0] not in (1, n_rounds):
        raise ValueError(f"action_dist at the logged positions must be ({n_rounds} or 1, {n_actions}), "
                         f"got {action_dist.shape}")
    if np.any(action_dist < -1e-12) or not np.allclose(action_dist.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("action_dist must be non-negative and sum to 1 over the items at every row and position")
