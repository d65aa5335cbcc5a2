"""Settings one way: every env takes them as keyword arguments and as config={...}, with one named error."""
from __future__ import annotations

import gymnasium as gym
import pytest

import abgym  # noqa: F401

RPP_FAST = {"dataset": "synthetic", "recommender": "synthetic", "embedder": "hashing"}
# env id -> (a setting and its non-default value, how to read it back, a misspelt key and the hint it gets)
CASES = {
    "abgym/ABTest-v0": ({"steps_per_episode": 7}, lambda env: env.unwrapped.config["steps_per_episode"],
                        "step_per_episode", "steps_per_episode"),
    "abgym/PersonalizedMarketing-v0": ({"horizon": 7, "drift": False},
                                       lambda env: env.unwrapped.config["horizon"], "horizn", "horizon"),
    "abgym/PromptPersonalization-v0": ({**RPP_FAST, "rounds": 7}, lambda env: env.unwrapped.parallel.rounds,
                                       "round", "rounds"),
}


@pytest.mark.parametrize("env_id", sorted(CASES))
def test_keywords_and_config_give_the_same_env(env_id):
    settings, read, _, _ = CASES[env_id]
    assert read(gym.make(env_id, **settings)) == 7
    assert read(gym.make(env_id, config=settings)) == 7
    first, *rest = settings.items()
    assert read(gym.make(env_id, config=dict(rest), **dict([first]))) == 7  # both at once


@pytest.mark.parametrize("env_id", sorted(CASES))
@pytest.mark.parametrize("how", ["keyword", "config"])
def test_an_unknown_setting_is_named_with_the_closest_one(env_id, how):
    settings, _, wrong, right = CASES[env_id]
    base = RPP_FAST if "Prompt" in env_id else {}
    given = {**base, wrong: 1}
    with pytest.raises(ValueError, match=f"unknown setting '{wrong}' for {env_id.split('/')[1]}; did you mean "
                                         f"'{right}'"):
        gym.make(env_id, **given) if how == "keyword" else gym.make(env_id, config=given)


def test_marketing_drift_false_as_a_keyword():
    env = gym.make("abgym/PersonalizedMarketing-v0", drift=False)
    assert env.unwrapped.config["drift"] is False
    vector = gym.make_vec("abgym/PersonalizedMarketing-v0", num_envs=2, vectorization_mode="vector_entry_point",
                          drift=False)
    assert vector.config["drift"] is False


def test_config_must_be_a_dict():
    with pytest.raises(ValueError, match="config must be a dict"):
        gym.make("abgym/ABTest-v0", config=["split", "test"])
