"""The speed paths of issue 17 change no behaviour: gymnasium's checks still run (once, inside the env), and
CustomerJourney-v0's scalar step (JourneyWorlds.step_one) equals the vectorized step it replaces for one world."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import abgym  # noqa: F401
from abgym.envs.registration import CHECKED_INSIDE, ENV_SPECS

SIMULATORS = ("abgym/ABTest-v0", "abgym/PersonalizedMarketing-v0", "abgym/CustomerJourney-v0")


@pytest.mark.parametrize("env_id", SIMULATORS)
def test_make_adds_no_per_step_wrapper_and_the_env_refuses_a_step_before_reset(env_id):
    assert all(ENV_SPECS[env_id.split("/")[1]][key] == value for key, value in CHECKED_INSIDE.items())
    env = gym.make(env_id)
    assert env.unwrapped is env  # no PassiveEnvChecker, no OrderEnforcing around it
    with pytest.raises(gym.error.ResetNeeded, match="reset"):  # as OrderEnforcing raised it
        env.step(0)
    env.reset(seed=0)
    assert env._reset_checked
    env.step(0)
    assert env._step_checked


@pytest.mark.parametrize("env_id", SIMULATORS)
def test_render_before_reset_is_refused_as_order_enforcing_did(env_id):
    env = gym.make(env_id, render_mode="ansi")
    try:
        env.render()
    except gym.error.ResetNeeded as error:
        assert "reset" in str(error)
    else:  # ABTest-v0 renders a "not reset yet" line instead, which is as clear
        assert env_id == "abgym/ABTest-v0"
    env.reset(seed=0)
    assert isinstance(env.render(), str)


@pytest.mark.parametrize("env_id", SIMULATORS)
def test_the_first_reset_and_step_still_get_gymnasiums_passive_checks(env_id, monkeypatch):
    """An observation outside the space is reported on the first reset and the first step, as PassiveEnvChecker
    would, and not again: the check costs nothing per step afterwards."""
    env = gym.make(env_id)
    warnings = []
    monkeypatch.setattr(gym.logger, "warn", lambda message, *args, **kwargs: warnings.append(str(message)))
    inner_reset, inner_step = type(env).reset, type(env).step

    def bad(observation):  # NaN in every float array: outside the space
        if isinstance(observation, dict):
            return {key: value * np.nan if value.dtype.kind == "f" else value for key, value in observation.items()}
        return observation * np.nan

    monkeypatch.setattr(type(env), "reset", lambda self, **kw: (lambda out: (bad(out[0]), out[1]))(
        inner_reset(self, **kw)) if self._reset_checked else inner_reset(self, **kw))
    env.reset(seed=0)
    assert any("reset" in message for message in warnings), warnings
    monkeypatch.setattr(type(env), "step", lambda self, action: (lambda out: (bad(out[0]), *out[1:]))(
        inner_step(self, action)) if self._step_checked else inner_step(self, action))
    count = len(warnings)
    env.step(0)
    assert any("step" in message for message in warnings[count:]), warnings
    count = len(warnings)
    env.step(0)
    env.step(0)
    assert len(warnings) == count  # checked once


def assert_same_observation(got, want):
    if isinstance(want, dict):
        assert sorted(got) == sorted(want)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])
    else:
        np.testing.assert_array_equal(got, want)


def first_world(batch):
    return batch[0] if not isinstance(batch, dict) else {key: value[0] for key, value in batch.items()}


@pytest.mark.parametrize("settings", [{}, {"observation_type": "flat", "max_visits": 9, "regime_shift_prob": 0.05},
                                      {"drift": False, "fatigue": 0.0, "interest_rate": 0.0},
                                      {"trust_gain": 3.0, "clickbait": 2.5, "churn_base": 0.3, "reward": "revenue"},
                                      # logits beyond +-709: exp overflows, scipy's expit gives exactly 0 (or 1)
                                      {"trust_click_effect": 400.0, "trust_conversion_effect": 400.0,
                                       "bait_annoyance": 20.0, "churn_base": 0.01}])
def test_journey_scalar_step_equals_the_vectorized_step_of_one_world(settings):
    """Single env (step_one) and the N = 1 vector env (JourneyWorlds.step, SAME_STEP autoreset, which starts the next
    user exactly as the single env's reset does) on the same seed and actions: the same observations, rewards,
    flags and infos, bit for bit, through one journey after another."""
    single = gym.make("abgym/CustomerJourney-v0", **settings)
    vector = gym.make_vec("abgym/CustomerJourney-v0", num_envs=1, vectorization_mode="vector_entry_point",
                          autoreset_mode="SameStep", **settings)
    rng = np.random.default_rng(1)
    observation, _ = single.reset(seed=4)
    batched, _ = vector.reset(seed=4)
    journeys = 0
    for _ in range(150):
        assert_same_observation(observation, first_world(batched))
        action = int(rng.integers(single.action_space.n))
        observation, reward, terminated, truncated, info = single.step(action)
        batched, rewards, terminateds, truncateds, infos = vector.step(np.array([action]))
        assert (reward, terminated, truncated) == (rewards[0], terminateds[0], truncateds[0])
        assert sorted(info) == sorted(key for key in infos if not key.startswith("_") and "final" not in key)
        for key, value in info.items():
            np.testing.assert_array_equal(value, infos[key][0])
        assert type(info["click"]) is bool and type(info["visit"]) is int and type(info["trust"]) is float
        if terminated or truncated:
            journeys += 1
            assert_same_observation(observation, infos["final_obs"][0])
            observation, _ = single.reset()  # the next user, on the same world clock
    assert journeys >= 3


@pytest.mark.parametrize("n_worlds", [1, 3, 300])
def test_the_drift_kept_in_parts_equals_the_product_of_the_preference_shift(n_worlds):
    """The drift's logit, kept as regime, walk and trend parts each multiplied by the content once (issue 17's
    batched speed-up), is the preference shift times the content, to rounding, in every world and segment, after
    walks and frequent regime shifts; and CustomerJourney-v0's scalar path reads the same parts."""
    from abgym.envs.users import content_product

    settings = dict(regime_shift_prob=0.2, drift_interval=3, horizon=500)
    pm = gym.make_vec("abgym/PersonalizedMarketing-v0", num_envs=n_worlds, vectorization_mode="vector_entry_point",
                      config=settings)
    pm.reset(seed=3)
    rng = np.random.default_rng(0)
    worlds = pm.worlds
    for step in range(60):  # ... until a walk has just refreshed every world's drift (at the step's t)
        pm.step(rng.integers(pm.single_action_space.n, size=n_worlds))
        if step >= 40 and worlds._since_walk == 0:
            break
    assert worlds.regime.any() and worlds.ou.any()
    direct = worlds.preference_shift() @ worlds.content_matrix.T
    np.testing.assert_allclose(worlds.drift_logit.reshape(direct.shape), direct, rtol=1e-12, atol=1e-15)

    cj = gym.make_vec("abgym/CustomerJourney-v0", num_envs=n_worlds, vectorization_mode="vector_entry_point",
                      regime_shift_prob=0.2, drift_interval=3)
    cj.reset(seed=3)
    shifts = 0
    for _ in range(40):
        shifts += cj.step(rng.integers(cj.single_action_space.n, size=n_worlds))[4]["regime_shift"].sum()
    drift = cj.worlds.drift
    assert shifts and drift.ou.any()
    shift = (drift.regime_offsets[np.arange(n_worlds), drift.regime] + drift.ou
             + drift.trend * cj.worlds.clock.astype(np.float64)[:, None, None])
    direct = shift @ drift.content_matrix.T
    np.testing.assert_allclose(drift.logit, direct, rtol=1e-12, atol=1e-15)
    segments = rng.integers(drift.n_segments, size=n_worlds)
    np.testing.assert_array_equal(drift.segment_logit(None, segments), drift.logit[np.arange(n_worlds), segments])
    x = rng.normal(size=(70_000, drift.content_matrix.shape[1]))  # above the one-matmul size: K products
    np.testing.assert_allclose(content_product(x, drift.content_matrix), x @ drift.content_matrix.T, rtol=1e-12,
                               atol=1e-13)


def _episode(env, seed: int, steps: int) -> list:
    """(reward, terminated, truncated, info values, observation bytes) of ``steps`` steps after reset(seed)."""
    observation, _ = env.reset(seed=seed)
    rng, record = np.random.default_rng(seed), []
    for _ in range(steps):
        observation, reward, terminated, truncated, info = env.step(int(rng.integers(env.action_space.n)))
        record.append((reward, terminated, truncated, repr(info),
                       b"".join(np.ascontiguousarray(part).tobytes() for part in observation.values())))
        if terminated or truncated:
            observation, _ = env.reset()
    return record


@pytest.mark.parametrize("env_id", ["abgym/PersonalizedMarketing-v0", "abgym/CustomerJourney-v0"])
def test_a_reseeded_env_replays_a_fresh_env_exactly(env_id):
    """The compiled single steps hold the simulators' arrays, which a reseed now rewrites in place (journeys) or
    replaces (marketing): an env used for a while and then reseeded must step exactly as a fresh env of that seed,
    across the block of pre-drawn uniforms and the drift's walks (drift_interval 3), through several journeys."""
    settings = dict(drift_interval=3, regime_shift_prob=0.05)
    used = gym.make(env_id, **settings)
    _episode(used, seed=1, steps=250)
    assert _episode(used, seed=7, steps=400) == _episode(gym.make(env_id, **settings), seed=7, steps=400)


@pytest.mark.parametrize("env_id", ["abgym/PersonalizedMarketing-v0", "abgym/CustomerJourney-v0"])
def test_the_compiled_state_holds_each_array_under_its_own_name(env_id):
    """The compiled steps' state is made from tuples in a declared order (a cached compiled constructor): every
    field must be the very array (same memory) that state_parts names, and every constant its value."""
    from abgym.envs import journey_step, marketing_step

    module = marketing_step if "Marketing" in env_id else journey_step
    env = gym.make(env_id)
    env.reset(seed=0)
    worlds = env.unwrapped.worlds
    arrays, constants = module.state_parts(worlds)
    assert set(arrays) == set(module.ARRAYS) and set(constants) == set(module.CONSTANTS)
    from numba import njit

    names = module.ARRAYS + module.CONSTANTS
    source = {}
    exec("def fields(s):\n    return (" + ", ".join(f"s.{name}" for name in names) + ",)", source)  # by name
    fields = dict(zip(names, njit(source["fields"])(worlds._state)))
    for name in module.ARRAYS:
        assert np.shares_memory(fields[name], arrays[name]) and fields[name].shape == arrays[name].shape, name
    for name in module.CONSTANTS:
        assert fields[name] == constants[name], name


def test_an_array_of_another_dtype_is_refused_with_the_fix():
    """numpy 1.x on Windows makes default integers 32-bit; the compiled state declares int64 and must say so."""
    from abgym.envs import marketing_step

    env = gym.make("abgym/PersonalizedMarketing-v0")
    env.reset(seed=0)
    arrays, constants = marketing_step.state_parts(env.unwrapped.worlds)
    arrays = {**arrays, "slot": arrays["slot"].astype(np.int32)}
    with pytest.raises(TypeError, match=r"slot is int32.*int64.*numpy>=2"):
        marketing_step.build_state(marketing_step._new_state, (arrays, constants), marketing_step.ARRAY_TYPES,
                                   marketing_step.CONSTANT_TYPES, "MarketingWorlds")
