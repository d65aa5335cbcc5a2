"""abgym.wrappers.ValidActionWrapper: plain SB3 PPO and A2C train on ABTest-v0; MaskablePPO still sees the mask."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import abgym  # noqa: F401
from abgym.wrappers import ValidActionWrapper, valid_action


def test_valid_action_maps_every_action_onto_a_valid_one():
    mask = np.array([1, 0, 1, 1, 0], dtype=np.int8)
    assert [valid_action(a, mask) for a in range(7)] == [0, 2, 3, 0, 2, 3, 0]
    assert valid_action(np.int64(13), [True, True]) == 1
    with pytest.raises(ValueError, match="allows no action"):
        valid_action(0, [0, 0])


def test_unwrapped_env_rejects_a_padded_arm_and_the_wrapper_accepts_it():
    env = gym.make("abgym/ABTest-v0", split="test")
    _, info = env.reset(seed=0)
    padded = env.action_space.n - 1
    assert info["n_arms"] < env.action_space.n  # this experiment has padded arms
    with pytest.raises(ValueError, match="invalid action"):
        env.step(padded)
    wrapped = ValidActionWrapper(gym.make("abgym/ABTest-v0", split="test"))
    _, info = wrapped.reset(seed=0)
    _, _, _, _, step_info = wrapped.step(padded)
    assert step_info["impressions"] > 0
    np.testing.assert_array_equal(wrapped.action_masks(), info["action_mask"])


@pytest.mark.parametrize("algo", ["PPO", "A2C"])
def test_plain_sb3_trains_on_abtest_through_the_wrapper(algo, one_torch_thread):
    import stable_baselines3
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env(lambda: ValidActionWrapper(gym.make("abgym/ABTest-v0", split="train")), n_envs=2, seed=0)
    model = getattr(stable_baselines3, algo)("MultiInputPolicy", venv, n_steps=32, seed=0, verbose=0)
    model.learn(total_timesteps=256)  # unwrapped, the first padded arm it draws raises
    assert model.num_timesteps >= 256


def test_maskable_ppo_reads_the_mask_through_the_wrapper(one_torch_thread):
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import get_action_masks
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env(lambda: ValidActionWrapper(gym.make("abgym/ABTest-v0", split="train")), n_envs=2, seed=0)
    venv.reset()
    masks = get_action_masks(venv)
    assert masks.shape == (2, 14) and masks.any(axis=1).all() and not masks.all()
    MaskablePPO("MultiInputPolicy", venv, n_steps=32, batch_size=32, seed=0, verbose=0).learn(128)
