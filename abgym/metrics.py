"""Ranking metrics for one relevant item (the held-out target) and confidence intervals over users.

A ranking is a sequence of candidate indices, best first. A target missing from it (an LLM answer that could not be
parsed, or that left the target out) has no rank: NDCG and hits are 0, as a user would see nothing useful.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import stats


def rank_of(ranking: Sequence[int], target: int) -> int | None:
    """0-based position of ``target`` in ``ranking``, or None if absent."""
    for position, index in enumerate(ranking):
        if int(index) == int(target):
            return position
    return None


def ndcg_at_k(ranking: Sequence[int], target: int, k: int = 10) -> float:
    """With one relevant item, DCG is 1/log2(rank + 2) and the ideal DCG is 1."""
    rank = rank_of(ranking, target)
    if rank is None or rank >= k:
        return 0.0
    return float(1.0 / np.log2(rank + 2))


def hit_at_k(ranking: Sequence[int], target: int, k: int = 1) -> float:
    rank = rank_of(ranking, target)
    return float(rank is not None and rank < k)


def ranking_metrics(ranking: Sequence[int], target: int) -> dict[str, float]:
    return {
        "ndcg@10": ndcg_at_k(ranking, target, 10),
        "hr@1": hit_at_k(ranking, target, 1),
        "hr@3": hit_at_k(ranking, target, 3),
    }


def expected_random_ndcg(n_candidates: int, k: int = 10) -> float:
    """NDCG@k of a uniformly random ranking of ``n_candidates`` (0.4544 for 10)."""
    ranks = np.arange(min(k, n_candidates))
    return float(np.sum(1.0 / np.log2(ranks + 2)) / n_candidates)


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and Student-t interval (low, high); with fewer than two values the interval is undefined (NaN)."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean()) if values.size else float("nan")
    if values.size < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + confidence / 2, values.size - 1) * stats.sem(values))
    return mean, mean - half, mean + half
