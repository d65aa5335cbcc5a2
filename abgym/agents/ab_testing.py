"""Classical A/B testing: a fixed-horizon test with a z-test, and explore-then-commit with an always-valid test.

Both split traffic evenly while testing (each batch goes to the arm with the fewest impressions so far). They
differ in when they look at the data:

* :class:`FixedHorizonABTest` looks once, after a planned share of the traffic, with a two-proportion z-test of
  the leading arm against every other arm, Holm- or Bonferroni-corrected for more than two arms. It declares the
  leader the winner only if it beats every other arm; then it ships the winner, or keeps the even split if none.
* :class:`SequentialABTest` (explore-then-commit) looks after every batch with the mixture sequential probability
  ratio test (mSPRT, Johari, Pekelis and Walsh, 2017), whose always-valid p-values keep the false-positive rate
  at ``alpha`` however often one peeks, so it may stop, and commit to the winner, as soon as the evidence is in.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

from abgym.agents.base import Agent

CORRECTIONS = ("holm", "bonferroni")


# ---------------------------------------------------------------------------------------------- statistics
def two_proportion_ztest(clicks_a, trials_a, clicks_b, trials_b) -> tuple[np.ndarray, np.ndarray]:
    """Pooled two-proportion z-test of rate a == rate b; returns ``(z, two-sided p-value)`` (p = 1 without data).

    Vectorised over arrays of counts.
    """
    clicks_a, trials_a, clicks_b, trials_b = np.broadcast_arrays(
        *(np.asarray(x, dtype=np.float64) for x in (clicks_a, trials_a, clicks_b, trials_b))
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        rate_a = clicks_a / trials_a
        rate_b = clicks_b / trials_b
        pooled = (clicks_a + clicks_b) / (trials_a + trials_b)
        se = np.sqrt(pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b))
        z = (rate_a - rate_b) / se
    defined = (trials_a > 0) & (trials_b > 0) & (se > 0)
    z = np.where(defined, z, 0.0)
    p_value = np.where(defined, 2 * norm.sf(np.abs(z)), 1.0)
    return z, p_value


def holm(p_values, alpha: float) -> np.ndarray:
    """Holm's step-down procedure: which hypotheses are rejected with family-wise error at most ``alpha``."""
    p_values = np.asarray(p_values, dtype=np.float64)
    m = len(p_values)
    order = np.argsort(p_values, kind="stable")
    thresholds = alpha / (m - np.arange(m))
    passed = p_values[order] <= thresholds
    # Reject the smallest p-values up to (not including) the first that fails its threshold.
    n_rejected = m if passed.all() else int(np.argmin(passed))
    rejected = np.zeros(m, dtype=bool)
    rejected[order[:n_rejected]] = True
    return rejected


def bonferroni(p_values, alpha: float) -> np.ndarray:
    p_values = np.asarray(p_values, dtype=np.float64)
    return p_values <= alpha / max(len(p_values), 1)


def msprt_likelihood_ratio(difference, variance, tau: float) -> np.ndarray:
    """Mixture likelihood ratio of an observed difference with a N(0, tau^2) mixture over the true difference.

    ``variance`` is the variance of the observed difference; Lambda = sqrt(V / (V + tau^2)) *
    exp(tau^2 d^2 / (2 V (V + tau^2))). Where V is 0 (no clicks yet) there is no evidence: Lambda = 1.
    """
    difference = np.asarray(difference, dtype=np.float64)
    variance = np.asarray(variance, dtype=np.float64)
    tau2 = float(tau) ** 2
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_ratio = 0.5 * np.log(variance / (variance + tau2)) + tau2 * difference**2 / (
            2 * variance * (variance + tau2)
        )
    return np.where(variance > 0, np.exp(np.minimum(log_ratio, 700.0)), 1.0)


# ---------------------------------------------------------------------------------------------- agents
class _EvenSplitTest(Agent):
    """Shared parts: even allocation while testing, then commitment to the declared winner."""

    def __init__(self, alpha: float = 0.05) -> None:
        super().__init__()
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        self.alpha = float(alpha)
        self.winner: int | None = None
        self.concluded = False
        self.stopped_at: int | None = None  # step at which the test concluded

    def reset(self, n_arms: int, info: dict | None = None, seed: int | None = None) -> None:
        super().reset(n_arms, info, seed)
        self.winner = None
        self.concluded = False
        self.stopped_at = None

    def act(self, observation=None, info: dict | None = None) -> int:
        if self.winner is not None:
            return self.winner
        return self._least_tried_arm()

    def declared_winner(self) -> int | None:
        return self.winner

    def _conclude(self, winner: int | None) -> None:
        self.winner = winner
        self.concluded = True
        self.stopped_at = self.t


class FixedHorizonABTest(_EvenSplitTest):
    """Even split for a planned share of the episode's traffic, then one significance test.

    ``test_share`` is the share of the episode's traffic spent on the test (1.0: the whole episode, as in the
    recorded Upworthy tests; the default 0.5 tests on half and ships the winner to the other half). The progress
    comes from ABTest-v0's ``observation["traffic_left"]`` (or the steps taken against the reset info's
    ``"horizon"``; see :func:`traffic_used`). ``correction`` is ``"holm"`` or ``"bonferroni"`` over the leader's
    comparisons with the other arms.
    """

    name = "ab-test"

    def __init__(self, alpha: float = 0.05, test_share: float = 0.5, correction: str = "holm") -> None:
        super().__init__(alpha)
        if not 0.0 < test_share <= 1.0:
            raise ValueError(f"test_share must be in (0, 1], got {test_share}")
        if correction not in CORRECTIONS:
            raise ValueError(f"unknown correction {correction!r}; choose one of {', '.join(CORRECTIONS)}")
        self.test_share = float(test_share)
        self.correction = correction
        self.p_values: np.ndarray | None = None
        self.horizon: int | None = None

    def reset(self, n_arms: int, info: dict | None = None, seed: int | None = None) -> None:
        super().reset(n_arms, info, seed)
        self.p_values = None
        self.horizon = (info or {}).get("horizon")

    def update(self, action: int, reward: float, observation=None, info: dict | None = None) -> None:
        super().update(action, reward, observation, info)
        if self.concluded:
            return
        used = traffic_used(observation, info or {}, steps_taken=self.t, horizon=self.horizon)
        if used >= self.test_share - 1e-6:  # traffic_left is float32
            self._conclude(self.test())

    def test(self) -> int | None:
        """Run the corrected z-tests on the counts so far; the winner, or None if the leader does not beat all."""
        if len(self.valid_arms) < 2:
            return int(self.valid_arms[0])
        leader = self._argmax(np.where(self.trials > 0, self.means, -np.inf))
        others = self.valid_arms[self.valid_arms != leader]
        z, p_values = two_proportion_ztest(
            self.successes[leader], self.trials[leader], self.successes[others], self.trials[others]
        )
        self.p_values = p_values
        rejected = (holm if self.correction == "holm" else bonferroni)(p_values, self.alpha)
        return leader if bool(np.all(rejected & (z > 0))) else None


class SequentialABTest(_EvenSplitTest):
    """Explore-then-commit with mSPRT: even split, an always-valid test after every batch, commit on a winner.

    ``tau`` is the standard deviation of the mixture over the true click-rate difference; by default it is
    ``relative_effect`` times the pooled click rate, fixed once every arm has ``burn_in`` impressions (the
    pooled rate carries no information about which arm is better). Pairs are Bonferroni-corrected: the leader
    must beat each of the other k-1 arms with always-valid p-value below alpha / (k-1).
    """

    name = "msprt"

    def __init__(
        self, alpha: float = 0.05, tau: float | None = None, relative_effect: float = 0.2, burn_in: int = 200
    ) -> None:
        super().__init__(alpha)
        if tau is not None and tau <= 0:
            raise ValueError(f"tau must be positive, got {tau}")
        if relative_effect <= 0:
            raise ValueError(f"relative_effect must be positive, got {relative_effect}")
        self.fixed_tau = tau
        self.relative_effect = float(relative_effect)
        self.burn_in = int(burn_in)
        self.tau: float | None = tau
        self.p_values = np.ones((0, 0))

    def reset(self, n_arms: int, info: dict | None = None, seed: int | None = None) -> None:
        super().reset(n_arms, info, seed)
        self.tau = self.fixed_tau
        self._armed = False  # burn-in over, p-values being tracked
        self.p_values = np.ones((n_arms, n_arms))  # always-valid p-value per pair, running minimum

    def update(self, action: int, reward: float, observation=None, info: dict | None = None) -> None:
        super().update(action, reward, observation, info)
        if self.concluded:
            return
        valid = self.valid_arms
        if len(valid) < 2:
            self._conclude(int(valid[0]))
            return
        if self.tau is None or not self._armed:
            if self.trials[valid].min() < max(self.burn_in, 1):
                return
            if self.tau is None:
                pooled = self.successes[valid].sum() / self.trials[valid].sum()
                if pooled <= 0:
                    return  # no click yet: nothing to scale the mixture by
                self.tau = self.relative_effect * pooled
            self._armed = True
            rows = valid.tolist()
        else:
            # Only the pairs with the arm just shown have new data; the others' running minimum still holds.
            rows = [int(action)]
        self._update_p_values(rows, valid.tolist())
        means = self.means
        leader = self._argmax(np.where(self.trials > 0, means, -np.inf))
        threshold = self.alpha / (len(valid) - 1)
        if all(means[leader] > means[j] and self.p_values[leader, j] <= threshold for j in valid if j != leader):
            self._conclude(leader)

    def _update_p_values(self, rows: list[int], arms: list[int]) -> None:
        """Lower the always-valid p-values of the pairs (row, arm) to 1 / Lambda at the current counts.

        Plain Python over at most 14 arms: this runs after every batch, and numpy's per-call overhead on
        such tiny arrays made it the slowest agent (same formula as :func:`msprt_likelihood_ratio`).
        """
        trials, clicks = self.trials.tolist(), self.successes.tolist()
        tau2 = self.tau**2
        p_values = self.p_values
        for a in rows:
            n_a, c_a = max(trials[a], 1.0), clicks[a]
            for b in arms:
                if b == a:
                    continue
                n_b, c_b = max(trials[b], 1.0), clicks[b]
                pooled = (c_a + c_b) / (n_a + n_b)
                variance = pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b)
                if variance <= 0.0:
                    continue  # no evidence yet (Lambda = 1)
                difference = c_a / n_a - c_b / n_b
                log_ratio = 0.5 * math.log(variance / (variance + tau2)) + tau2 * difference * difference / (
                    2.0 * variance * (variance + tau2)
                )
                p_now = math.exp(-log_ratio) if log_ratio > 0.0 else 1.0
                if p_now < p_values[a, b]:
                    p_values[a, b] = p_values[b, a] = p_now


def traffic_used(observation, info: dict, steps_taken: int = 0, horizon: int | None = None) -> float:
    """Share of the episode's traffic already shown.

    Read from, in order: ``info["traffic_used"]`` or ``info["traffic_left"]`` (simulators that report it),
    ABTest-v0's ``observation["traffic_left"]``, or the steps taken against the reset info's ``horizon``.
    """
    if "traffic_used" in info:
        return float(info["traffic_used"])
    if "traffic_left" in info:
        return 1.0 - float(np.asarray(info["traffic_left"]).reshape(-1)[0])
    if isinstance(observation, dict) and "traffic_left" in observation:
        return 1.0 - float(np.asarray(observation["traffic_left"]).reshape(-1)[0])
    if horizon:
        return steps_taken / float(horizon)
    raise ValueError(
        "the fixed-horizon A/B test cannot tell how much of the episode's traffic is used: the environment reports "
        "neither info['traffic_used'/'traffic_left'], observation['traffic_left'] nor a reset info['horizon']"
    )
