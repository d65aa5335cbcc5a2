"""abgym.make_sb3_vec_env: SB3's VecEnv contract over the batched simulator, and PPO training on it with the env
scalars of abgym.tensorboard in the TensorBoard event file."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import abgym
from abgym.tensorboard import read_scalars

ENV_ID = "abgym/PersonalizedMarketing-v0"
SMALL = {"horizon": 50}  # short episodes, so that the tests see several autoresets


def test_batched_env_is_an_sb3_vec_env_over_the_vector_entry_point():
    from stable_baselines3.common.vec_env import VecEnv

    from abgym.sb3 import BatchedVecEnv

    venv = abgym.make_sb3_vec_env(ENV_ID, 8, seed=0, config=SMALL)
    assert isinstance(venv, VecEnv) and isinstance(venv.unwrapped, BatchedVecEnv)
    assert venv.num_envs == 8 and venv.observation_space == gym.make(ENV_ID).observation_space
    obs = venv.reset()
    assert set(obs) == {"user", "context", "memory", "variants"} and obs["user"].shape[0] == 8
    assert all(a.flags.writeable for a in obs.values())  # no read-only broadcast views reach SB3
    reset_infos = venv.unwrapped.reset_infos  # SB3's VecMonitor keeps its own (empty) list
    assert len(reset_infos) == 8 and reset_infos[3]["n_arms"] == 4


def test_autoreset_matches_gymnasiums_reset_step_and_flags_the_time_limit():
    """The terminal observation is the batched env's last one, and the observation returned with it is the one
    gymnasium's own NEXT_STEP reset step gives (same seed, same actions)."""
    venv = abgym.make_sb3_vec_env(ENV_ID, 4, seed=1, config=SMALL)
    reference = gym.make_vec(ENV_ID, num_envs=4, vectorization_mode="vector_entry_point", config=SMALL)
    obs = venv.reset()
    expected, _ = reference.reset(seed=1)
    rng = np.random.default_rng(0)
    for step in range(SMALL["horizon"]):
        actions = rng.integers(4, size=4)
        obs, rewards, dones, infos = venv.step(actions)
        expected, expected_rewards, _, truncated, _ = reference.step(actions)
        np.testing.assert_array_equal(rewards, expected_rewards.astype(np.float32))
        assert rewards.shape == (4,) and len(infos) == 4 and infos[2]["expected_rewards"].shape == (4,)
        assert dones.all() == truncated.all() == (step == SMALL["horizon"] - 1)
        if not dones.any():
            assert "terminal_observation" not in infos[0]
            for key in obs:
                np.testing.assert_array_equal(obs[key], expected[key])
    for index, info in enumerate(infos):
        assert info["TimeLimit.truncated"] is True and info["episode"]["l"] == SMALL["horizon"]
        for key in obs:
            np.testing.assert_array_equal(info["terminal_observation"][key], expected[key][index])
    after_reset, *_ = reference.step(np.zeros(4, dtype=np.int64))  # gymnasium's reset step
    for key in obs:
        np.testing.assert_array_equal(obs[key], after_reset[key])
    assert not np.array_equal(obs["context"], expected["context"])  # a new episode, not the terminal state


def test_seed_reproduces_and_differs_across_seeds():
    def rewards(seed):
        venv = abgym.make_sb3_vec_env(ENV_ID, 4, config=SMALL)
        venv.seed(seed)
        venv.reset()
        return np.concatenate([venv.step(np.arange(4) % 4)[1] for _ in range(30)])

    np.testing.assert_array_equal(rewards(3), rewards(3))
    assert not np.array_equal(rewards(3), rewards(4))


def test_env_without_vector_entry_point_gets_sb3s_dummy_vec_env():
    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = abgym.make_sb3_vec_env("abgym/ABTest-v0", 2, seed=0, split="test")
    assert isinstance(venv, DummyVecEnv) and venv.num_envs == 2


def test_bad_arguments_name_the_problem():
    with pytest.raises(ValueError, match="unknown environment"):
        abgym.make_sb3_vec_env("abgym/NoSuchEnv-v0", 2)
    with pytest.raises(ValueError, match="n_envs"):
        abgym.make_sb3_vec_env(ENV_ID, 0)


def test_ppo_trains_on_the_batched_env_and_logs_env_scalars(tmp_path, one_torch_thread):
    from stable_baselines3 import PPO
    from stable_baselines3.common.logger import configure

    from abgym.tensorboard import EnvMetricsCallback

    venv = abgym.make_sb3_vec_env(ENV_ID, 16, seed=0, config={"horizon": 100})
    model = PPO("MultiInputPolicy", venv, n_steps=64, batch_size=256, n_epochs=2, seed=0, verbose=0)
    model.set_logger(configure(str(tmp_path), ["tensorboard"]))
    model.learn(total_timesteps=4096, callback=EnvMetricsCallback())
    scalars = read_scalars(tmp_path)
    for tag in ("env/reward", "env/regret", "env/ctr", "env/conversion_rate", "env/revenue",
                "env/cumulative_regret", "episode/reward", "episode/regret", "episode/length", "rollout/ep_rew_mean"):
        assert scalars.get(tag), f"{tag} missing from {sorted(scalars)}"
    assert all(value >= 0 for value in scalars["env/regret"])
    assert all(0 <= value <= 1 for value in scalars["env/ctr"])
    assert scalars["episode/length"][-1] == 100
    assert np.diff(scalars["env/cumulative_regret"]).min() >= 0  # summed regret only grows
