"""PromptPersonalization: PettingZoo and Gymnasium contracts, seeding, determinism, bad input."""
import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import parallel_api_test, parallel_seed_test

import abgym  # noqa: F401  (registers the ids)
from abgym.envs.prompt_personalization import (
    AGENTS,
    PromptPersonalizationEnv,
    PromptPersonalizationParallelEnv,
    parallel_env,
)

FAST = dict(dataset="synthetic", recommender="synthetic", embedder="hashing")


def test_parallel_api():
    parallel_api_test(parallel_env(FAST), num_cycles=30)


def test_parallel_seed():
    parallel_seed_test(lambda: parallel_env(FAST))


def test_gymnasium_check_env():
    env = gymnasium.make("abgym/PromptPersonalization-v0", config=FAST)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.action_space == gymnasium.spaces.MultiDiscrete([5, 3, 9, 5])


def test_movielens_with_popularity_passes_check_env():
    env = PromptPersonalizationEnv({"recommender": "popularity", "embedder": "hashing"})
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=0)
    assert obs["ranking"].shape == (10, 64)


def rollout(env, seed, actions):
    obs, info = env.reset(seed=seed)
    trace = [info["user_id"]]
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        trace.append((reward, info["ranking"], obs["ranking"].tobytes()))
    return trace, terminated


def test_same_seed_same_episode_and_termination_after_rounds():
    actions = [np.array([1, 0, 2, 3]), np.array([3, 2, 7, 1]), np.array([0, 1, 0, 0])]
    first, done = rollout(PromptPersonalizationEnv(FAST), 5, actions)
    again, _ = rollout(PromptPersonalizationEnv(FAST), 5, actions)
    assert first == again and done
    other = [rollout(PromptPersonalizationEnv(FAST), s, actions)[0][0] for s in range(6)]
    assert len(set(other)) > 1  # seeds pick different users


def test_reward_is_ndcg_and_best_known_prompt_ranks_target_first():
    env = parallel_env(FAST)
    obs, _ = env.reset(seed=0)
    assert set(obs) == set(AGENTS) and obs["role"]["round"][0] == 0.0 and not obs["role"]["ranking"].any()
    _, rewards, terms, truncs, infos = env.step(dict(zip(AGENTS, (3, 2, 7, 1))))
    assert set(rewards.values()) == {1.0}
    info = infos["format"]
    assert info["ranking"][0] == info["target_index"] and info["hr@1"] == 1.0
    assert not any(terms.values()) and not any(truncs.values())
    assert env.state().shape == env.state_space.shape


def test_options_choose_user_and_errors_are_clear():
    env = parallel_env({**FAST, "split": "test"})
    user = env.users[2].user_id
    env.reset(options={"user_id": user})
    assert env.case.user_id == user
    with pytest.raises(ValueError, match="missing"):
        env.step({"role": 0})
    with pytest.raises(ValueError, match="agent 'reasoning'"):
        env.step({"role": 0, "history": 0, "reasoning": 9, "format": 0})
    with pytest.raises(ValueError, match="agent 'role'"):
        env.step({"role": 1.5, "history": 0, "reasoning": 0, "format": 0})
    with pytest.raises(ValueError, match="not in split"):
        env.reset(options={"user_id": "nobody"})
    gym_env = PromptPersonalizationEnv(FAST)
    gym_env.reset(seed=0)
    with pytest.raises(ValueError, match="one integer per pattern"):
        gym_env.step(np.array([0, 0, 0]))


def test_config_errors():
    with pytest.raises(ValueError, match="unknown setting 'round' for PromptPersonalization-v0; did you mean 'rounds'"):
        PromptPersonalizationParallelEnv({**FAST, "round": 2})
    with pytest.raises(ValueError, match="unknown recommender"):
        PromptPersonalizationParallelEnv({**FAST, "recommender": "gpt"})
    with pytest.raises(FileNotFoundError, match="neither"):
        PromptPersonalizationParallelEnv({**FAST, "dataset": "/no/such/folder"})


def test_render_shows_the_prompt():
    env = PromptPersonalizationEnv(FAST, render_mode="ansi")
    env.reset(seed=0)
    env.step(np.array([0, 1, 0, 0]))
    text = env.render()
    assert "recommender system" in text and "Answer:" in text and "NDCG@10" in text


@pytest.mark.slow
def test_real_llm_and_embedder_episode():
    """The default env: ML-100K, MiniLM, SmolLM2 likelihood scoring (the set-up installs all three)."""
    env = gymnasium.make("abgym/PromptPersonalization-v0", config={"rounds": 1, "ranking_cache": False})
    obs, info = env.reset(seed=0)
    assert obs["user"].shape == (384,) and np.isclose(np.linalg.norm(obs["user"]), 1.0, atol=1e-4)
    obs, reward, terminated, _, info = env.step(np.array([0, 1, 0, 0]))
    assert terminated and sorted(info["ranking"]) == list(range(10)) and 0.0 < reward <= 1.0
