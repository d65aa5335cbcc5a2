"""The Memory-Augmented Reward Estimator: it learns rewards, reads the memory, tracks drift, resumes exactly."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from abgym.agents.reward_estimator import OnlineRewardEstimator, RewardEstimatorWrapper
from test_actor_critic import ToyMarketingEnv


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def feed(estimator, env, n, seed=0):
    """Show uniformly random variants to ``n`` users and let the estimator learn from the clicks."""
    rng = np.random.default_rng(seed)
    observation, _ = env.reset(seed=seed)
    for _ in range(n):
        action = int(rng.integers(env.action_space.n))
        next_observation, reward, _, truncated, _ = env.step(action)
        estimator.observe(observation, action, reward)
        observation = next_observation if not truncated else env.reset()[0]


def estimation_error(estimator, env, n=300, seed=99):
    """Mean squared error of the estimates against the true click probabilities of every variant."""
    observation, _ = env.reset(seed=seed)
    errors = []
    for _ in range(n):
        errors.append(np.mean((estimator.predict(observation) - env.expected) ** 2))
        observation, *_ = env.step(0)
    return float(np.mean(errors))


def constant_error(env, n=300, seed=99):
    observation, _ = env.reset(seed=seed)
    values = []
    for _ in range(n):
        values.append(env.expected.copy())
        env.step(0)
    values = np.array(values)
    return float(np.mean((values - values.mean()) ** 2))


def test_estimator_learns_the_click_probabilities():
    env = ToyMarketingEnv(episode_length=10_000)
    estimator = OnlineRewardEstimator(env.observation_space, hidden=32, seed=0)
    feed(estimator, env, 3000)
    assert estimation_error(estimator, env) < 0.25 * constant_error(env)


def test_memory_attention_recovers_a_hidden_taste():
    """With the segment hidden from the portrait, only the memory of past clicks tells the user's taste."""
    errors = {}
    for use_memory in (True, False):
        env = ToyMarketingEnv(reveal_segment=False, episode_length=10_000)
        estimator = OnlineRewardEstimator(env.observation_space, hidden=32, use_memory=use_memory, seed=0)
        feed(estimator, env, 4000)
        errors[use_memory] = estimation_error(estimator, env)
    assert errors[True] < 0.8 * errors[False], errors


def test_sliding_window_tracks_a_regime_shift():
    env = ToyMarketingEnv(episode_length=100_000)
    estimator = OnlineRewardEstimator(env.observation_space, hidden=32, window=1024, seed=0)
    feed(estimator, env, 2500)
    env.tastes = -env.tastes  # every segment's taste flips
    shifted = estimation_error(estimator, env)
    feed(estimator, env, 2500, seed=1)
    assert estimation_error(estimator, env) < 0.5 * shifted


def test_save_load_resumes_training_exactly(tmp_path):
    env = ToyMarketingEnv(episode_length=10_000)
    straight = OnlineRewardEstimator(env.observation_space, hidden=16, seed=3, train_every=16)
    feed(straight, env, 600, seed=0)
    feed(straight, env, 400, seed=1)

    first = OnlineRewardEstimator(env.observation_space, hidden=16, seed=3, train_every=16)
    feed(first, env, 600, seed=0)
    first.save(tmp_path / "mare.pt")
    resumed = OnlineRewardEstimator.load(tmp_path / "mare.pt")
    feed(resumed, env, 400, seed=1)
    for name, tensor in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], tensor)
    assert resumed.n_seen == 1000


def test_wrapper_adds_estimates_and_shapes_the_reward():
    env = RewardEstimatorWrapper(ToyMarketingEnv(), use="both", beta=0.25, hidden=16)
    observation, _ = env.reset(seed=0)
    assert env.observation_space["estimates"].shape == (4,) and observation["estimates"].shape == (4,)
    expected_estimate = float(observation["estimates"][2])
    _, reward, _, _, info = env.step(2)
    assert info["reward_estimate"] == pytest.approx(expected_estimate, rel=1e-6)
    assert reward == pytest.approx(0.75 * info["env_reward"] + 0.25 * expected_estimate)
    plain = RewardEstimatorWrapper(ToyMarketingEnv(), use="shaping", hidden=16)
    assert "estimates" not in plain.observation_space.spaces


def test_bad_input_is_named(tmp_path):
    with pytest.raises(ValueError, match="use must be one of"):
        RewardEstimatorWrapper(ToyMarketingEnv(), use="critic")
    with pytest.raises(FileNotFoundError, match="no reward-estimator checkpoint"):
        OnlineRewardEstimator.load(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a checkpoint"):
        OnlineRewardEstimator.load(tmp_path / "junk.pt")
