"""One TensorBoard tag scheme for every abgym env, agent and command (docs/CONTRACTS.md, "TensorBoard tags").

Everything goes through SB3's own logger (``stable_baselines3.common.logger.configure(folder, ["tensorboard",
"csv"])``), so a bandit baseline, an evaluation and a PPO run sit side by side in one TensorBoard, under the same
tags, against the same x axis (environment steps). The values come from the env's step infos
(:mod:`abgym.env_metrics`), so every env that reports the standard info keys gets them, and a tag whose key the env
does not report is simply absent:

* ``env/*``: means per environment step since the last write, during training (:class:`EnvMetricsCallback`):
  ``env/reward``, ``env/regret`` (against ``info["expected_rewards"]``' best action, or ABTest-v0's
  ``expected_regret``), ``env/ctr`` (clicks per impression), ``env/conversion_rate``, ``env/revenue``,
  ``env/ndcg@10``, and ``env/cumulative_regret`` (regret summed since the start, per sub-env);
* ``episode/*``: per finished episode (means of the episodes that ended since the last write): ``episode/reward``,
  ``episode/regret``, ``episode/length``, ``episode/ctr``, ``episode/conversion_rate``, ``episode/revenue``,
  ``episode/ndcg@10``, ``episode/best_arm_share``; ABTest-v0 adds ``episode/winner_correct`` and, in evaluations,
  ``episode/relative_regret``.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback  # the `rl` extra

from abgym.env_metrics import EpisodeTracker

EPISODE_TAGS = ("episode/reward", "episode/regret", "episode/best_arm_share", "episode/winner_correct")
STEP_TAGS = ("env/reward", "env/regret", "env/ctr", "env/conversion_rate", "env/revenue", "env/ndcg@10",
             "env/cumulative_regret")
# episode-table column -> tag, for evaluations (log_episode) and training (EnvMetricsCallback)
EPISODE_COLUMN_TAGS = {"reward": "episode/reward", "regret": "episode/regret", "steps": "episode/length",
                       "ctr": "episode/ctr", "conversion_rate": "episode/conversion_rate",
                       "revenue": "episode/revenue", "ndcg@10": "episode/ndcg@10",
                       "best_arm_share": "episode/best_arm_share", "winner_correct": "episode/winner_correct",
                       "relative_regret": "episode/relative_regret"}


def configure_logger(logdir, run_name: str):
    """An SB3 logger writing TensorBoard events and progress.csv under ``logdir/run_name``."""
    from stable_baselines3.common.logger import configure

    folder = Path(logdir) / run_name
    folder.mkdir(parents=True, exist_ok=True)
    return configure(str(folder), ["tensorboard", "csv"])


def log_episode(logger, row: dict, step: int) -> None:
    """Write one finished episode (a row of the evaluation table) at ``step`` environment steps."""
    for column, tag in EPISODE_COLUMN_TAGS.items():
        value = row.get(column, math.nan)
        if value is not None and np.isfinite(float(value)):
            logger.record(tag, float(value))
    logger.dump(step=step)


def _finite_mean(total: float, count: float) -> float | None:
    return total / count if count and math.isfinite(total) else None


class EnvMetricsCallback(BaseCallback):
    """SB3 callback: the ``env/*`` and ``episode/*`` tags of any abgym env, from the step infos.

    Works with every SB3 algorithm and vector env (``make_sb3_vec_env``, ``make_vec_env``, with or without
    ``VecNormalize``: the env's own reward is logged, not the normalised one). Step means are recorded at the end
    of each rollout and written with SB3's own logs.
    """

    def __init__(self, verbose: int = 0):
        super().__init__(verbose)
        self.trackers: list[EpisodeTracker] = []

    def _on_training_start(self) -> None:
        n = self.training_env.num_envs
        self.trackers = [EpisodeTracker() for _ in range(n)]
        self.cumulative_regret = np.zeros(n)
        self._window = EpisodeTracker()

    def _on_step(self) -> bool:
        infos, rewards, dones = self.locals["infos"], self.locals["rewards"], self.locals["dones"]
        actions = np.asarray(self.locals.get("actions", [None] * len(infos)))
        normalizer = self.model.get_vec_normalize_env()
        if normalizer is not None and normalizer.norm_reward:
            rewards = normalizer.get_original_reward()  # log the env's reward, not the scaled training reward
        for index, (info, reward, done) in enumerate(zip(infos, rewards, dones)):
            action = actions[index] if actions.ndim and len(actions) == len(infos) else None
            outcome = self.trackers[index].step(float(reward), info, action)
            self._window.step(float(reward), info, action)
            if not math.isnan(outcome["regret"]):
                self.cumulative_regret[index] += outcome["regret"]
            if done:
                self._log_episode(self.trackers[index], info)
                self.trackers[index] = EpisodeTracker()
        return True

    def _log_episode(self, tracker: EpisodeTracker, info: dict) -> None:
        values = {"reward": tracker.reward, "regret": tracker.total("regret"), "steps": tracker.steps,
                  "ctr": tracker.ctr, "conversion_rate": tracker.conversion_rate,
                  "revenue": tracker.total("revenue"), "ndcg@10": tracker.ndcg,
                  "best_arm_share": tracker.best_arm_share}
        if "winner_is_best" in info:  # ABTest-v0's own call at the end: the arm with the best posterior mean
            values["winner_correct"] = float(info["winner_is_best"])
        for column, value in values.items():
            if value is not None and math.isfinite(float(value)):
                self.logger.record_mean(EPISODE_COLUMN_TAGS[column], float(value))

    def _on_rollout_end(self) -> None:
        window = self._window
        if not window.steps:
            return
        means = {"env/reward": window.reward / window.steps,
                 "env/regret": _finite_mean(window.total("regret"), window.steps),
                 "env/ctr": _finite_mean(window.total("clicks"), window.traffic),
                 "env/conversion_rate": _finite_mean(window.total("conversions"), window.traffic),
                 "env/revenue": _finite_mean(window.total("revenue"), window.steps),
                 "env/ndcg@10": None if math.isnan(window.ndcg) else window.ndcg_mean}
        if "regret" in window.has:
            means["env/cumulative_regret"] = float(self.cumulative_regret.mean())
        for tag, value in means.items():
            if value is not None:
                self.logger.record_mean(tag, float(value))
        self._window = EpisodeTracker()


def metrics_callback() -> EnvMetricsCallback:
    """The callback ``abgym train`` uses (kept for callers of the earlier name)."""
    return EnvMetricsCallback()


def read_scalars(logdir) -> dict[str, list[float]]:
    """All scalar tags in the TensorBoard event files under ``logdir`` (for tests and quick checks)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars: dict[str, list[float]] = {}
    for events in sorted(Path(logdir).rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        for tag in accumulator.Tags().get("scalars", []):
            scalars.setdefault(tag, []).extend(e.value for e in accumulator.Scalars(tag))
    return scalars
