"""``abgym/OpenBanditReplay-v0``: the gymnasium contract and the rejection-sampling replay's bookkeeping."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import abgym  # noqa: F401  (registers the ids)
from abgym.data.open_bandit import load_open_bandit
from abgym.envs.registration import env_ids

ENV_ID = "abgym/OpenBanditReplay-v0"


@pytest.mark.parametrize("settings", [{}, {"observation_type": "flat", "start": "random", "episode_length": 300,
                                           "campaign": "men"}])
def test_passes_gymnasiums_env_checker(settings):
    env = gym.make(ENV_ID, **settings)
    check_env(env.unwrapped, skip_render_check=True)
    assert ENV_ID in env_ids()


def test_playing_the_logged_item_matches_every_event_and_earns_the_logged_clicks():
    env = gym.make(ENV_ID, campaign="women", episode_length=2_000).unwrapped
    log = env.log
    _, info = env.reset(seed=0)
    total, steps, truncated = 0.0, 0, False
    while not truncated:
        _, reward, terminated, truncated, info = env.step(int(log.action[env._index]))
        total += reward
        steps += 1
        assert not terminated
    assert steps == 2_000 and info["matches"] == 2_000 and info["match_rate"] == 1.0
    assert total == info["clicks"] == log.reward[:2_000].sum()
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(0)


def test_a_fixed_item_matches_only_where_it_was_logged():
    env = gym.make(ENV_ID).unwrapped
    log = env.log
    env.reset(seed=0)
    rewards, matched = [], []
    for _ in range(log.n_rounds):
        _, reward, _, truncated, info = env.step(7)
        rewards.append(reward)
        matched.append(info["matched"])
    assert truncated
    assert np.array_equal(matched, log.action == 7)
    assert sum(rewards) == log.reward[log.action == 7].sum()
    assert info["match_rate"] == pytest.approx(np.mean(log.action == 7))
    # A uniform logging policy over 80 items: about 1 event in 80 matches any fixed item.
    assert 0.005 < info["match_rate"] < 0.025


def test_random_start_is_seeded():
    env = gym.make(ENV_ID, start="random", episode_length=100).unwrapped
    starts = [env.reset(seed=3)[1]["start_index"] for _ in range(2)]
    assert starts[0] == starts[1] and env.reset(seed=4)[1]["start_index"] != starts[0]


def test_bad_settings_and_actions_are_refused():
    with pytest.raises(ValueError, match="uniform-random log"):
        gym.make(ENV_ID, log=load_open_bandit("bts", "men"))
    with pytest.raises(ValueError, match="unknown setting 'campain'"):
        gym.make(ENV_ID, campain="men")
    with pytest.raises(ValueError, match="episode_length"):
        gym.make(ENV_ID, episode_length=0)
    env = gym.make(ENV_ID).unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match="not an item id"):
        env.step(80)
