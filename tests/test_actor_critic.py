"""The SB3 actor-critic with per-variant attention scores: learning, any K, save/load/resume."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from abgym.agents.actor_critic import (ActorCriticAgent, VariantAttentionExtractor, estimator_path,
                                       transfer_policy_weights)


class ToyMarketingEnv(gym.Env):
    """A small stand-in with PersonalizedMarketing-v0's Dict observation, for fast tests only.

    Each user belongs to one of three segments with a hidden taste vector; a click comes with probability
    ``sigmoid(4 * taste . variant - 1)``. ``reveal_segment=False`` hides the segment from the portrait, so that only
    the memory (past variants shown to the user, with their clicks) tells the taste.
    """

    def __init__(self, n_variants=4, variant_dim=3, memory_len=6, reveal_segment=True, episode_length=200,
                 catalog_seed=0):
        catalog = np.random.default_rng(catalog_seed)
        self.tastes = catalog.normal(size=(3, variant_dim))
        self.tastes /= np.linalg.norm(self.tastes, axis=1, keepdims=True)
        self.variants = catalog.normal(size=(n_variants, variant_dim)).astype(np.float32)
        self.variants /= np.linalg.norm(self.variants, axis=1, keepdims=True)
        self.reveal_segment, self.memory_len, self.episode_length = reveal_segment, memory_len, episode_length
        self.observation_space = gym.spaces.Dict({
            "user": gym.spaces.Box(-1, 1, (3,), np.float32),
            "context": gym.spaces.Box(-1, 1, (2,), np.float32),
            "memory": gym.spaces.Box(-np.inf, np.inf, (memory_len, variant_dim + 2), np.float32),
            "variants": gym.spaces.Box(-np.inf, np.inf, (n_variants, variant_dim), np.float32),
        })
        self.action_space = gym.spaces.Discrete(n_variants)

    def click_probabilities(self, segment, variants):
        return 1 / (1 + np.exp(-(4 * variants @ self.tastes[segment] - 1)))

    def _arrival(self):
        self.segment = int(self.np_random.integers(3))
        self.expected = self.click_probabilities(self.segment, self.variants)
        history = self.np_random.normal(size=(self.memory_len, self.variants.shape[1]))
        history /= np.linalg.norm(history, axis=1, keepdims=True)
        clicks = self.np_random.random(self.memory_len) < self.click_probabilities(self.segment, history)
        memory = np.concatenate([history, clicks[:, None], np.zeros((self.memory_len, 1))], axis=1)
        user = np.eye(3)[self.segment] if self.reveal_segment else np.zeros(3)
        return {"user": user.astype(np.float32), "context": self.np_random.uniform(-1, 1, 2).astype(np.float32),
                "memory": memory.astype(np.float32), "variants": self.variants.copy()}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._arrival(), {}

    def step(self, action):
        reward = float(self.np_random.random() < self.expected[action])
        info = {"expected_rewards": self.expected, "oracle_action": int(np.argmax(self.expected))}
        self.t += 1
        return self._arrival(), reward, False, self.t >= self.episode_length, info


def mean_expected_reward(agent, env, n=300, seed=123):
    observation, _ = env.reset(seed=seed)
    total = 0.0
    for _ in range(n):
        action = agent.act(observation)
        total += env.expected[action]
        observation, *_ = env.step(action)
    return total / n


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("n_variants", [2, 5, 9])
def test_extractor_scores_each_variant_for_any_k(n_variants):
    env = ToyMarketingEnv(n_variants=n_variants)
    extractor = VariantAttentionExtractor(env.observation_space, hidden=16)
    observation, _ = env.reset(seed=0)
    batch = {key: torch.as_tensor(value).unsqueeze(0) for key, value in observation.items()}
    features = extractor(batch)
    assert features.shape == (1, n_variants + 32)
    # Permuting the variants permutes their scores: the score belongs to the variant, not to its slot.
    order = np.random.default_rng(0).permutation(n_variants)
    permuted = {**batch, "variants": batch["variants"][:, order]}
    torch.testing.assert_close(extractor(permuted)[0, :n_variants], features[0, order], atol=1e-5, rtol=1e-4)


@pytest.mark.slow  # a 3,000-step training run: about 20 s on an idle core
def test_ppo_learns_the_segment_preferences():
    env = ToyMarketingEnv()
    agent = ActorCriticAgent(env, "ppo", seed=0, hidden=32)
    before = mean_expected_reward(agent, ToyMarketingEnv())
    agent.learn(3000)
    after = mean_expected_reward(agent, ToyMarketingEnv())
    probe = ToyMarketingEnv()
    oracle = np.mean([probe.click_probabilities(s, probe.variants).max() for s in range(3)])
    uniform = np.mean([probe.click_probabilities(s, probe.variants).mean() for s in range(3)])
    assert after > uniform + 0.6 * (oracle - uniform), (before, after, uniform, oracle)


def test_a2c_trains_and_acts():
    agent = ActorCriticAgent(ToyMarketingEnv(), "a2c", seed=0, hidden=16)
    agent.learn(160)
    assert agent.model.num_timesteps == 160
    assert 0 <= agent.act(ToyMarketingEnv().reset(seed=0)[0]) < 4


def test_policy_transfers_to_more_variants():
    small = ActorCriticAgent(ToyMarketingEnv(n_variants=3), "ppo", seed=0, hidden=16)
    large = ActorCriticAgent(ToyMarketingEnv(n_variants=7), "ppo", seed=1, hidden=16)
    transfer_policy_weights(small.model.policy, large.model.policy)
    observation, _ = ToyMarketingEnv(n_variants=7).reset(seed=0)
    assert 0 <= large.act(observation) < 7


@pytest.mark.parametrize("estimator", [None, "both"])
def test_save_load_resumes_training(tmp_path, estimator):
    agent = ActorCriticAgent(ToyMarketingEnv(), "ppo", estimator=estimator, seed=0, hidden=16, n_steps=128)
    agent.learn(256)
    path = agent.save(tmp_path / "agent")
    assert path.name == "agent.zip" and path.exists()
    assert estimator_path(path).exists() == (estimator is not None)
    observation, _ = ToyMarketingEnv().reset(seed=5)

    restored = ActorCriticAgent.load(path, ToyMarketingEnv(), estimator=estimator)
    assert restored.algorithm == "ppo" and restored.model.num_timesteps == 256
    assert restored.settings["hidden"] == 16  # the saved configuration, not the constructor's default of 64
    for name, tensor in agent.model.policy.state_dict().items():
        torch.testing.assert_close(restored.model.policy.state_dict()[name], tensor)
    assert restored.act(observation) == agent.act(observation)
    if estimator:
        np.testing.assert_allclose(restored.reward_estimator.predict(observation),
                                   agent.reward_estimator.predict(observation), rtol=1e-6)
        assert restored.reward_estimator.n_seen == agent.reward_estimator.n_seen == 256
    restored.learn(128)
    assert restored.model.num_timesteps == 384  # the step count continues: nothing lost, nothing repeated


def test_bad_input_is_named(tmp_path):
    with pytest.raises(ValueError, match="unknown algorithm"):
        ActorCriticAgent(ToyMarketingEnv(), "dqn")
    with pytest.raises(FileNotFoundError, match="no actor-critic checkpoint"):
        ActorCriticAgent.load(tmp_path / "missing.zip", ToyMarketingEnv())
    (tmp_path / "junk.zip").write_bytes(b"junk")
    with pytest.raises(ValueError, match="has no manifest"):
        ActorCriticAgent.load(tmp_path / "junk.zip", ToyMarketingEnv())
    flat = gym.spaces.Dict({"user": gym.spaces.Box(0, 1, (2,))})
    with pytest.raises(KeyError, match="observation_type='dict'"):
        VariantAttentionExtractor(flat)
