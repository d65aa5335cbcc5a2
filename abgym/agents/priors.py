"""Priors over arms' click rates, read from the arms' texts before any traffic is spent.

Thompson sampling starts from a Beta(alpha, beta) prior per arm. Where that prior comes from is pluggable: the
uniform Beta(1, 1) knows nothing; the ranker's ``RankerPrior`` (abgym.ranker.prior) predicts each headline's click
rate and turns it into pseudo-counts, so a good ranker lets the bandit skip part of the exploration.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class ArmPriorModel(Protocol):
    def beta_prior(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Beta pseudo-counts ``(alpha, beta)`` per arm, both positive, one entry per text."""


class UniformPrior:
    """Beta(alpha, beta) for every arm whatever its text; the default Beta(1, 1) is flat on [0, 1]."""

    def __init__(self, alpha: float = 1.0, beta: float = 1.0) -> None:
        if alpha <= 0 or beta <= 0:
            raise ValueError(f"Beta pseudo-counts must be positive, got alpha={alpha}, beta={beta}")
        self.alpha = float(alpha)
        self.beta = float(beta)

    def beta_prior(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        n = len(texts)
        return np.full(n, self.alpha), np.full(n, self.beta)

    def __repr__(self) -> str:
        return f"UniformPrior(alpha={self.alpha}, beta={self.beta})"


def checked_beta_prior(prior: ArmPriorModel, texts: list[str], n_arms: int) -> tuple[np.ndarray, np.ndarray]:
    """Call ``prior.beta_prior`` and check its answer, so that a faulty prior fails loudly, not as NaN samples."""
    alpha, beta = prior.beta_prior(list(texts))
    alpha = np.asarray(alpha, dtype=np.float64).reshape(-1)
    beta = np.asarray(beta, dtype=np.float64).reshape(-1)
    name = type(prior).__name__
    if alpha.shape != (n_arms,) or beta.shape != (n_arms,):
        raise ValueError(
            f"{name}.beta_prior returned shapes {alpha.shape} and {beta.shape}; expected ({n_arms},) each, "
            "one (alpha, beta) pair per arm text"
        )
    if not (np.all(np.isfinite(alpha)) and np.all(np.isfinite(beta)) and np.all(alpha > 0) and np.all(beta > 0)):
        raise ValueError(f"{name}.beta_prior must return finite, positive pseudo-counts; got alpha={alpha}, beta={beta}")
    return alpha, beta
