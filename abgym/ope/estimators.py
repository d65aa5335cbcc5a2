"""Off-policy estimators of a policy's expected reward per impression, with 95 % intervals.

Given a log of (context x_i, item a_i at position k_i, reward r_i, logging propensity p_i) and an evaluation policy
pi (its probability of each item at the row's position, :mod:`abgym.ope.policies`), with w_i = pi(a_i | x_i, k_i) / p_i:

- **IPS** (inverse propensity scoring): mean of w_i r_i. Unbiased when every item pi may show could be logged.
- **SNIPS** (self-normalized IPS): sum w_i r_i / sum w_i. Slightly biased, much smaller variance when weights are
  large.
- **DM** (direct method): mean over rows of sum_a pi(a | x_i, k_i) q(x_i, a, k_i) for a reward model q
  (:class:`abgym.ope.reward_model.RewardModel`). Low variance, biased by the model's error.
- **DR** (doubly robust, Dudik et al. 2011): DM plus the IPS-weighted residual w_i (r_i - q(x_i, a_i, k_i)).
  Unbiased when the propensities are right, whatever the model.

Every estimator is a ratio of per-row sums, sum(numerator) / sum(denominator) (the denominator is 1 per row except
in SNIPS), so that one bootstrap over rows serves all four: the same resampled rows for every estimator, which
keeps their replicates paired. Intervals are the bootstrap percentile interval (default, seeded; as OBP does) or
the normal approximation (delta method for SNIPS).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from abgym.ope.policies import at_logged_position, check_action_dist

__all__ = ["ESTIMATORS", "Estimate", "bootstrap_ratio", "estimate_policy_value", "on_policy_value", "refit_bootstrap",
           "round_terms"]

ESTIMATORS = ("ips", "snips", "dm", "dr")
NEEDS_REWARD_MODEL = ("dm", "dr")
CI_METHODS = ("bootstrap", "normal")


@dataclass(frozen=True)
class Estimate:
    """One estimator's value and its interval at level ``1 - alpha``."""

    estimator: str
    value: float
    ci: tuple[float, float]
    se: float
    n_rounds: int
    replicates: np.ndarray = field(default=None, repr=False, compare=False)  # bootstrap values, if bootstrapped

    def to_dict(self) -> dict:
        return {"estimate": self.value, "ci": [self.ci[0], self.ci[1]], "se": self.se}


def round_terms(estimator: str, reward, action, pscore, action_dist, estimated_rewards=None):
    """Per-row (numerator, denominator) whose sums' ratio is the estimate.

    ``action_dist`` and ``estimated_rewards`` are (n_rounds or 1, n_actions), at each row's logged position.
    """
    n = reward.size
    pi_logged = action_dist[np.arange(n) if action_dist.shape[0] > 1 else np.zeros(n, np.int64), action]
    weight = pi_logged / pscore
    ones = np.ones(n)
    if estimator == "ips":
        return weight * reward, ones
    if estimator == "snips":
        return weight * reward, weight
    if estimated_rewards is None:
        raise ValueError(f"the {estimator} estimator needs estimated_rewards (a reward model's predictions)")
    model_value = (np.broadcast_to(action_dist, estimated_rewards.shape) * estimated_rewards).sum(axis=1)
    if estimator == "dm":
        return model_value, ones
    if estimator == "dr":
        return model_value + weight * (reward - estimated_rewards[np.arange(n), action]), ones
    raise ValueError(f"unknown estimator {estimator!r}; choose from {list(ESTIMATORS)}")


def estimate_policy_value(log, action_dist, estimators=ESTIMATORS, estimated_rewards=None, *, ci: str = "bootstrap",
                          alpha: float = 0.05, n_bootstrap: int = 2000, seed: int = 0) -> dict[str, Estimate]:
    """Estimate the evaluation policy's value on ``log`` (a :class:`~abgym.data.open_bandit.LoggedBanditFeedback`
    or anything with ``reward``, ``action``, ``position``, ``pscore``, ``n_actions``).

    ``action_dist``: the policy, (n_rounds or 1, n_actions[, len_list]). ``estimated_rewards``: a reward model's
    predictions (n_rounds, n_actions[, len_list]), needed by DM and DR. The bootstrap draws the same resampled rows
    (from ``seed``) for every estimator, so their replicates are paired; ``Estimate.replicates`` keeps them.
    """
    reward = np.asarray(log.reward, np.float64)
    action, position, pscore = (np.asarray(log.action, np.int64), np.asarray(log.position, np.int64),
                                np.asarray(log.pscore, np.float64))
    n = reward.size
    if n == 0:
        raise ValueError("the log is empty")
    if ci not in CI_METHODS:
        raise ValueError(f"ci must be one of {list(CI_METHODS)}, got {ci!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    unknown = [name for name in estimators if name not in ESTIMATORS]
    if unknown:
        raise ValueError(f"unknown estimator(s) {unknown}; choose from {list(ESTIMATORS)}")
    if np.any(pscore <= 0):
        raise ValueError("propensities must be > 0: a row the logging policy could not have logged")
    dist = at_logged_position(action_dist, position)
    check_action_dist(dist, n, log.n_actions)
    q = None
    if estimated_rewards is not None:
        q = at_logged_position(estimated_rewards, position)
        if q.shape != (n, log.n_actions):
            raise ValueError(f"estimated_rewards must be ({n}, {log.n_actions}[, len_list]), got {np.shape(estimated_rewards)}")
    elif any(name in NEEDS_REWARD_MODEL for name in estimators):
        raise ValueError("dm and dr need estimated_rewards: fit abgym.ope.RewardModel on the log, or drop them")

    if ci == "bootstrap" and n_bootstrap < 2:
        raise ValueError(f"n_bootstrap must be >= 2, got {n_bootstrap}")
    results = {}
    for name in estimators:
        numerator, denominator = round_terms(name, reward, action, pscore, dist, q)
        value = float(numerator.sum() / denominator.sum())
        # Delta-method standard error of a ratio of means (for a plain mean, the usual standard error).
        influence = (numerator - value * denominator) / denominator.mean()
        se = float(influence.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
        replicates = None
        if ci == "bootstrap":
            replicates = bootstrap_ratio(numerator, denominator, n_bootstrap, seed)
            low, high = np.quantile(replicates, [alpha / 2, 1 - alpha / 2])
        else:
            z = stats.norm.ppf(1 - alpha / 2)
            low, high = value - z * se, value + z * se
        results[name] = Estimate(name, value, (float(low), float(high)), se, n, replicates)
    return results


def bootstrap_ratio(numerator: np.ndarray, denominator: np.ndarray, n_bootstrap: int, seed: int,
                    max_cells: int = 1_000_000) -> np.ndarray:
    """sum(numerator) / sum(denominator) over ``n_bootstrap`` resamples of the rows with replacement.

    The resamples depend only on ``seed``, ``n_bootstrap`` and the number of rows, so two calls with the same seed
    resample the same rows (paired replicates); they are drawn in batches of at most ``max_cells`` row indices
    (8 MB), so a log of millions of rows bootstraps in bounded memory.
    """
    n = numerator.size
    batch = max(1, min(n_bootstrap, max_cells // max(n, 1)))
    rng = np.random.default_rng(seed)
    out = np.empty(n_bootstrap)
    for start in range(0, n_bootstrap, batch):
        size = min(batch, n_bootstrap - start)
        rows = rng.integers(0, n, size=(size, n))
        den = denominator[rows].sum(axis=1)
        out[start:start + size] = np.divide(numerator[rows].sum(axis=1), den, out=np.zeros(size), where=den > 0)
    return out


def on_policy_value(reward, *, ci: str = "bootstrap", alpha: float = 0.05, n_bootstrap: int = 2000,
                    seed: int = 0) -> Estimate:
    """The logging policy's own value: the mean reward of its log, with the same kind of interval."""
    reward = np.asarray(reward, np.float64)
    n = reward.size
    if n < 2:
        raise ValueError(f"need at least 2 rows for an interval, got {n}")
    if ci not in CI_METHODS:
        raise ValueError(f"ci must be one of {list(CI_METHODS)}, got {ci!r}")
    value, se = float(reward.mean()), float(reward.std(ddof=1) / np.sqrt(n))
    replicates = None
    if ci == "bootstrap":
        replicates = bootstrap_ratio(reward, np.ones(n), n_bootstrap, seed)
        low, high = np.quantile(replicates, [alpha / 2, 1 - alpha / 2])
    else:
        z = stats.norm.ppf(1 - alpha / 2)
        low, high = value - z * se, value + z * se
    return Estimate("on_policy", value, (float(low), float(high)), se, n, replicates)


def refit_bootstrap(log, action_dist, reward_model, estimators=("dm", "dr"), *, n_refits: int = 200,
                    seed: int = 0) -> dict:
    """Bootstrap replicates of DM and DR that include the reward model's own estimation error.

    The plain bootstrap of :func:`estimate_policy_value` resamples rows with the model's predictions held fixed, so
    DM's interval there reflects only how the users vary, not how uncertain the model is (OBP's intervals have the
    same limitation). Here each of ``n_refits`` resamples of the log refits ``reward_model`` (an
    :class:`abgym.ope.RewardModel`) and recomputes the estimators: slower, honest. ``action_dist`` is one policy
    (returns ``{estimator: replicates}``) or a mapping ``{policy name: action_dist}`` valued on the same refits
    (returns ``{policy: {estimator: replicates}}``). Take the replicates' 2.5 and 97.5 % quantiles for a 95 % interval.
    """
    if n_refits < 2:
        raise ValueError(f"n_refits must be >= 2, got {n_refits}")
    single = not isinstance(action_dist, dict)
    policies = {"policy": action_dist} if single else action_dist
    dists = {name: at_logged_position(dist, log.position) for name, dist in policies.items()}
    values = {policy: {name: np.empty(n_refits) for name in estimators} for policy in policies}
    rng = np.random.default_rng(seed)
    for b in range(n_refits):
        rows = np.sort(rng.integers(0, log.n_rounds, log.n_rounds))
        sample = log.subset(rows)
        if sample.reward.min() == sample.reward.max():
            raise ValueError("a resample has no clicks: the log is too small for a refit bootstrap")
        q = reward_model.fit_predict(sample)
        for policy, dist in dists.items():
            sample_dist = dist if dist.shape[0] == 1 else dist[rows]
            for name in estimators:
                numerator, denominator = round_terms(name, sample.reward.astype(np.float64), sample.action,
                                                     sample.pscore, sample_dist, q)
                values[policy][name][b] = numerator.sum() / denominator.sum()
    return values["policy"] if single else values
