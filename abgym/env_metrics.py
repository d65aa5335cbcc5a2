"""What one step's ``info`` says about the decision: reward, regret, clicks, conversions, revenue, NDCG.

Every abgym env reports its outcomes under the same info keys, so one reader serves the evaluator, the SB3
callback and the TensorBoard logs of every env, including ones written later:

* ``expected_rewards`` (each action's true expected reward now) gives the regret ``max - expected[action]`` and the
  oracle's expected reward (PersonalizedMarketing-v0, CustomerJourney-v0); ``expected_regret`` gives the regret
  directly (ABTest-v0, where a step is a batch of ``impressions`` visitors);
* ``click`` / ``conversion`` (one user per step) or ``clicks`` among ``impressions`` (a batch) give CTR and
  conversion rate; ``revenue`` the revenue;
* ``ndcg@10`` the ranking quality (PromptPersonalization-v0).

Keys an env does not report stay NaN, so a metric is only ever computed from what the env says.
"""
from __future__ import annotations

import math

import numpy as np

CURVE_POINTS = 101  # cumulative-regret curves are sampled at these shares of the episode's traffic


def step_regret(action, info: dict) -> tuple[float, float]:
    """(regret, oracle's expected reward) of one step; NaN where the env reports neither."""
    expected = info.get("expected_rewards")
    if expected is not None and action is not None:
        expected = np.asarray(expected, dtype=np.float64).ravel()
        index = int(np.asarray(action).reshape(-1)[0])
        best = float(expected.max())
        return best - float(expected[index]), best
    if "expected_regret" in info:
        return float(info["expected_regret"]), math.nan
    return math.nan, math.nan


class EpisodeTracker:
    """Accumulates one episode's outcomes from the env's step infos (evaluation, callbacks, TensorBoard)."""

    def __init__(self) -> None:
        self.reward = 0.0
        self.regret = 0.0
        self.oracle_reward = 0.0
        self.traffic = 0.0  # impressions: the batch sizes on ABTest-v0, one per step elsewhere
        self.best_traffic = 0.0
        self.clicks = 0.0
        self.conversions = 0.0
        self.revenue = 0.0
        self.ndcg = math.nan  # the last step's NDCG@10 (the final prompt's ranking)
        self.ndcg_sum, self.ndcg_steps = 0.0, 0
        self.steps = 0
        self.has = set()  # which outcome kinds the env reported: regret, oracle, clicks, conversions, revenue
        self.used: list[float] = [0.0]
        self.cumulative_regret: list[float] = [0.0]

    def step(self, reward: float, info: dict, action=None) -> dict:
        """Add one step; returns that step's outcomes (NaN where the env does not report them)."""
        impressions = float(info.get("impressions", 1))
        regret, oracle = step_regret(action, info)
        clicks = float(info["click"] if "click" in info else info.get("clicks", math.nan))
        conversions = float(info.get("conversion", math.nan))
        revenue = float(info.get("revenue", math.nan))
        self.reward += float(reward)
        self.traffic += impressions
        for kind, value in (("regret", regret), ("oracle", oracle), ("clicks", clicks),
                            ("conversions", conversions), ("revenue", revenue)):
            if not math.isnan(value):
                self.has.add(kind)
                setattr(self, {"oracle": "oracle_reward"}.get(kind, kind),
                        getattr(self, {"oracle": "oracle_reward"}.get(kind, kind)) + value)
        if not math.isnan(regret):
            # Zero expected regret means the step went to a best action (this also counts ties for best).
            self.best_traffic += impressions * (regret <= 1e-12)
        if "ndcg@10" in info:
            self.ndcg = float(info["ndcg@10"])
            self.ndcg_sum += self.ndcg
            self.ndcg_steps += 1
        self.steps += 1
        self.used.append(self.traffic)
        self.cumulative_regret.append(self.regret)
        return {"reward": float(reward), "regret": regret, "impressions": impressions, "clicks": clicks,
                "conversions": conversions, "revenue": revenue, "ndcg@10": float(info.get("ndcg@10", math.nan))}

    def total(self, kind: str) -> float:
        """The episode's total of ``kind`` (regret, clicks, conversions, revenue), NaN if the env never said."""
        value = self.oracle_reward if kind == "oracle" else getattr(self, kind)
        return value if kind in self.has else math.nan

    @property
    def ndcg_mean(self) -> float:
        """NDCG@10 averaged over the steps that reported one."""
        return self.ndcg_sum / self.ndcg_steps if self.ndcg_steps else math.nan

    @property
    def ctr(self) -> float:
        return self.total("clicks") / self.traffic if self.traffic else math.nan

    @property
    def conversion_rate(self) -> float:
        return self.total("conversions") / self.traffic if self.traffic else math.nan

    @property
    def best_arm_share(self) -> float:
        return self.best_traffic / self.traffic if self.traffic and "regret" in self.has else math.nan

    def curve(self, points: int = CURVE_POINTS) -> np.ndarray:
        """Cumulative regret at evenly spaced shares of the episode's traffic (0 to 1)."""
        used = np.asarray(self.used) / max(self.traffic, 1.0)
        return np.interp(np.linspace(0.0, 1.0, points), used, np.asarray(self.cumulative_regret))
