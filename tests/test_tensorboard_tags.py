"""One TensorBoard story: `abgym train` and `abgym evaluate --logdir` write the documented env/* and episode/*
tags on any env, and a model `abgym train` saved on the marketing env is evaluated there."""
from __future__ import annotations

import numpy as np

from abgym.cli import main
from abgym.tensorboard import EPISODE_COLUMN_TAGS, STEP_TAGS, read_scalars

PM = "abgym/PersonalizedMarketing-v0"


def test_train_on_the_marketing_env_logs_reward_and_regret_then_evaluates(tmp_path, one_torch_thread, capsys):
    assert main(["train", "--env", PM, "--steps", "512", "--n-steps", "64", "--n-envs", "2", "--logdir",
                 str(tmp_path), "--env-arg", "horizon=100", "--no-progress"]) == 0
    scalars = read_scalars(tmp_path / "ppo_seed0")
    assert {"env/reward", "env/regret", "env/ctr", "env/conversion_rate", "env/revenue",
            "env/cumulative_regret"} <= set(scalars)
    assert {tag for tag in scalars if tag.startswith("env/")} <= set(STEP_TAGS)  # only documented tags
    assert {"episode/reward", "episode/regret", "episode/length"} <= set(scalars)
    assert min(scalars["env/regret"]) >= 0 and scalars["episode/length"][0] == 100
    capsys.readouterr()
    assert main(["evaluate", "--env", PM, "--agent", "random", "--model", str(tmp_path / "ppo_seed0" / "model.zip"),
                 "--episodes", "1", "--env-arg", "horizon=100", "--no-progress", "--logdir",
                 str(tmp_path / "eval")]) == 0
    assert "ppo:ppo_seed0" in capsys.readouterr().out
    logged = read_scalars(tmp_path / "eval" / "ppo:ppo_seed0")
    assert {"episode/reward", "episode/regret", "episode/ctr", "episode/revenue"} <= set(logged)
    assert set(logged) <= set(EPISODE_COLUMN_TAGS.values())


def test_train_on_the_prompt_env_logs_ndcg(tmp_path, one_torch_thread):
    assert main(["train", "--env", "abgym/PromptPersonalization-v0", "--env-arg", "dataset=synthetic",
                 "--env-arg", "recommender=synthetic", "--env-arg", "embedder=hashing", "--steps", "96",
                 "--n-steps", "24", "--n-envs", "2", "--logdir", str(tmp_path), "--no-progress"]) == 0
    scalars = read_scalars(tmp_path / "ppo_seed0")
    assert {"env/reward", "env/ndcg@10", "episode/ndcg@10"} <= set(scalars)
    assert "env/regret" not in scalars  # this env has no oracle to regret against
    np.testing.assert_array_less(np.asarray(scalars["env/ndcg@10"]), 1.0 + 1e-9)
