"""TensorBoard logging with the same scalars for bandit agents and for RL agents trained with Stable-Baselines3.

Both go through SB3's own logger (``stable_baselines3.common.logger.configure(folder, ["tensorboard", "csv"])``),
so a bandit baseline and a PPO run sit side by side in one TensorBoard, under the same tags, against the same
x axis (environment steps):

* ``episode/reward``, ``episode/regret``, ``episode/best_arm_share``, ``episode/winner_correct``
  (bandit runs also log ``episode/relative_regret``, which needs the env's true click rates).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

EPISODE_TAGS = ("episode/reward", "episode/regret", "episode/best_arm_share", "episode/winner_correct")


def configure_logger(logdir, run_name: str):
    """An SB3 logger writing TensorBoard events and progress.csv under ``logdir/run_name``."""
    from stable_baselines3.common.logger import configure

    folder = Path(logdir) / run_name
    folder.mkdir(parents=True, exist_ok=True)
    return configure(str(folder), ["tensorboard", "csv"])


def log_episode(logger, row: dict, step: int) -> None:
    """Write one finished episode (a row of the evaluation table) at ``step`` environment steps."""
    logger.record("episode/reward", float(row["reward"]))
    logger.record("episode/regret", float(row["regret"]))
    logger.record("episode/best_arm_share", float(row["best_arm_share"]))
    logger.record("episode/winner_correct", float(row["winner_correct"]))
    if np.isfinite(row.get("relative_regret", math.nan)):
        logger.record("episode/relative_regret", float(row["relative_regret"]))
    logger.dump(step=step)


def metrics_callback():
    """An SB3 callback that logs the episode tags of ABTest-v0 during training (averaged between dumps)."""
    from stable_baselines3.common.callbacks import BaseCallback

    from abgym.evaluation import EpisodeTracker

    class ABTestMetricsCallback(BaseCallback):
        """Tracks each sub-environment's episode from the step infos; SB3 dumps the means with its own logs."""

        def _on_training_start(self) -> None:
            self.trackers = [EpisodeTracker() for _ in range(self.training_env.num_envs)]

        def _on_step(self) -> bool:
            infos, rewards, dones = self.locals["infos"], self.locals["rewards"], self.locals["dones"]
            normalizer = self.model.get_vec_normalize_env()
            if normalizer is not None and normalizer.norm_reward:
                rewards = normalizer.get_original_reward()  # log clicks, not the scaled training reward
            for index, (info, reward, done) in enumerate(zip(infos, rewards, dones)):
                if "expected_regret" not in info:
                    continue  # not an A/B-test environment: SB3's own rollout/* tags only
                tracker = self.trackers[index]
                tracker.step(float(reward), info)
                if done:
                    self.logger.record_mean("episode/reward", tracker.reward)
                    self.logger.record_mean("episode/regret", tracker.regret)
                    self.logger.record_mean("episode/best_arm_share", tracker.best_arm_share)
                    # ABTest-v0's own call at the end: the arm with the best posterior mean after the episode.
                    self.logger.record_mean("episode/winner_correct", float(info.get("winner_is_best", False)))
                    self.trackers[index] = EpisodeTracker()
            return True

    return ABTestMetricsCallback()


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
