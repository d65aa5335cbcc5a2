"""Env settings and actions are validated (issue 18, findings 5, 6 and 8): memory bounds that name the bytes, booleans
that are booleans, NaN refused, non-integer actions refused; and a bounded fuzz in which only ValueError escapes."""
from __future__ import annotations

import time

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import abgym  # noqa: F401
from abgym.envs import personalized_marketing as pm
from abgym.envs.ab_test import ABTestEnv
from abgym.envs.limits import check_memory, memory_limit_bytes
from abgym.envs.prompt_personalization import PromptPersonalizationEnv
from abgym.envs.prompt_personalization import make_config as rpp_config

SYNTHETIC_RPP = dict(dataset="synthetic", recommender="synthetic", embedder="hashing")


@pytest.mark.parametrize("override, words", [
    ({"n_segments": 10**6}, r"7\.3 TiB.*lower n_segments"),
    ({"population_size": 10**7}, r"GiB.*lower population_size"),
    ({"arrivals_per_day": 10**8, "horizon": 10}, r"lower arrivals_per_day"),
])
def test_settings_beyond_the_machine_are_refused_before_allocating(override, words):
    started = time.perf_counter()
    with pytest.raises(ValueError, match=words):
        pm.make_config(override)
    assert time.perf_counter() - started < 1  # refused from the estimate, nothing was allocated


def test_memory_limit_can_be_set(monkeypatch):
    monkeypatch.setenv("ABGYM_MEMORY_LIMIT_GB", "0.001")
    assert memory_limit_bytes() == int(0.001 * 2**30)
    with pytest.raises(ValueError, match="ABGYM_MEMORY_LIMIT_GB"):
        pm.make_config()  # the defaults need a few MiB
    monkeypatch.setenv("ABGYM_MEMORY_LIMIT_GB", "lots")
    with pytest.raises(ValueError, match="number of GiB"):
        check_memory("x", {"a": (1.0, "a")})


def test_vector_env_bound_counts_every_world(monkeypatch):
    one = sum(size for size, _ in __import__("abgym.envs.limits", fromlist=["x"]).marketing_memory_terms(
        pm.make_config(), 1).values())
    monkeypatch.setenv("ABGYM_MEMORY_LIMIT_GB", str(one * 50 / 2**30))
    with pytest.raises(ValueError, match="active_users"):
        pm.build_worlds(None, 10**6)


@pytest.mark.parametrize("override, words", [
    ({"drift": "no"}, "'drift' must be True or False"),
    ({"record_drift": 1}, "'record_drift' must be True or False"),
    ({"observe_campaign": "False"}, "'observe_campaign' must be True or False"),
    ({"reward_weights": {"click": float("nan")}}, "'reward_weights' 'click' must be a finite number"),
    ({"reward_weights": [1, 2]}, "must be a dict"),
    ({"variant_ctr": [float("nan")] * 4}, "'variant_ctr' must be a list of one click-through rate in"),
    ({"variant_ctr": [0.1, 1.5]}, "'variant_ctr'"),
    ({"population_seed": -1}, "'population_seed' must be a whole number >= 0"),
    ({"generator_seed": 1.5}, "'generator_seed'"),
])
def test_marketing_settings_name_the_option(override, words):
    with pytest.raises(ValueError, match=words):
        gym.make("abgym/PersonalizedMarketing-v0", config=override)


def test_marketing_step_refuses_infinity_and_fractions():
    env = gym.make("abgym/PersonalizedMarketing-v0")
    env.reset(seed=0)
    for action in (float("inf"), float("nan"), 1.5, -1, "1", None):
        with pytest.raises(ValueError, match="variant index"):
            env.step(action)
    env.step(1)


def test_ab_test_max_arms_is_bounded():
    with pytest.raises(ValueError, match=r"max_arms must be at most 4,096.*210,000,000 bytes"):
        ABTestEnv(max_arms=10**7)
    assert ABTestEnv(max_arms=64).action_space.n == 64


@pytest.mark.parametrize("override, words", [
    ({"rounds": "x"}, "'rounds' must be a whole number >= 1"),
    ({"rounds": True}, "'rounds'"),
    ({"max_users": -1}, "'max_users' must be a whole number >= 1 or None"),
    ({"max_users": 0}, "'max_users'"),
    ({"n_candidates": 1}, "'n_candidates'"),
    ({"ranking_cache": "no"}, "'ranking_cache' must be True or False"),
    ({"like_threshold": float("nan")}, "'like_threshold'"),
])
def test_prompt_settings_name_the_option(override, words):
    with pytest.raises(ValueError, match=words):
        rpp_config({**SYNTHETIC_RPP, **override})


def test_prompt_step_refuses_non_integer_actions():
    env = PromptPersonalizationEnv(SYNTHETIC_RPP)
    env.reset(seed=0)
    for action in ([1.5, 0, 0, 0], [np.inf, 0, 0, 0], [1.0, 0, 0, 0], [9, 0, 0, 0], [0, 0, 0]):
        with pytest.raises(ValueError, match="not in MultiDiscrete"):
            env.step(action)
    env.step([1, 0, 0, 0])


WEIRD = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([10**7, 10**12, 2**63, 2**70, 10**400]),
                  st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(["", "x", "no", "1", "dict"]),
                  st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=5),
                  st.dictionaries(st.sampled_from(["click", "conversion", "x"]), st.floats(), max_size=2))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(key=st.sampled_from(sorted(pm.default_config())), value=WEIRD)
def test_fuzzed_marketing_settings_raise_only_value_error(key, value):
    try:
        config = pm.make_config({key: value})
    except ValueError:
        return
    assert config[key] is value  # accepted as given, nothing coerced behind the user's back


@settings(max_examples=200, deadline=None, derandomize=True)
@given(key=st.sampled_from(["rounds", "max_users", "n_candidates", "min_history", "data_seed", "like_threshold",
                            "ranking_cache", "recommender", "embedder", "initial_actions"]), value=WEIRD)
def test_fuzzed_prompt_settings_raise_only_value_error(key, value):
    try:
        rpp_config({**SYNTHETIC_RPP, key: value})
    except ValueError:
        pass


ACTIONS = st.one_of(st.integers(-5, 20), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([None, "0", [0], np.int64(1), np.float32(2.0), np.array(1)]))


@pytest.fixture(scope="module")
def envs():
    marketing = gym.make("abgym/PersonalizedMarketing-v0").unwrapped
    ab_test = ABTestEnv(split="test")
    prompt = PromptPersonalizationEnv(SYNTHETIC_RPP)
    return marketing, ab_test, prompt


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(action=ACTIONS, vector=st.lists(ACTIONS, min_size=3, max_size=5))
def test_fuzzed_actions_raise_only_value_error(envs, action, vector):
    marketing, ab_test, prompt = envs
    for env, act in ((marketing, action), (ab_test, action), (prompt, vector)):
        env.reset(seed=0)
        try:
            env.step(act)
        except ValueError:
            pass
