"""PersonalizedMarketing-v0 with its default content (a real Upworthy experiment, real sentence embeddings).

The content features are computed once and cached on disk (the first run on a cold cache embeds ~1,600 reference
headlines); every env here is then built without calling a model.
"""
from __future__ import annotations

import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import abgym  # noqa: F401  (registers the ids)
from abgym.envs.personalized_marketing import default_config

ENV_ID = "abgym/PersonalizedMarketing-v0"


def make(**config):
    return gym.make(ENV_ID, config=config)


def rollout(env, seed, steps, action_seed=0):
    """Observations, rewards and infos of ``steps`` random actions, resetting at the end of each episode."""
    rng = np.random.default_rng(action_seed)
    obs, _ = env.reset(seed=seed)
    trace = []
    for _ in range(steps):
        action = int(rng.integers(env.action_space.n))
        next_obs, reward, terminated, truncated, info = env.step(action)
        trace.append((obs, action, reward, truncated, info))
        obs = env.reset()[0] if terminated or truncated else next_obs
    return trace


def assert_traces_equal(a, b):
    assert len(a) == len(b)
    for (obs_a, act_a, r_a, tr_a, info_a), (obs_b, act_b, r_b, tr_b, info_b) in zip(a, b):
        for key in obs_a:
            np.testing.assert_array_equal(obs_a[key], obs_b[key])
        assert (act_a, r_a, tr_a) == (act_b, r_b, tr_b)
        np.testing.assert_array_equal(info_a["expected_rewards"], info_b["expected_rewards"])
        assert {k: v for k, v in info_a.items() if k != "expected_rewards"} == \
            {k: v for k, v in info_b.items() if k != "expected_rewards"}


@pytest.mark.parametrize("observation_type", ["dict", "flat"])
def test_passes_gymnasium_check_env(observation_type):
    env = make(observation_type=observation_type)
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert info["test_id"] == "530e906bff24f84145000005" and len(info["variant_texts"]) == env.action_space.n


def test_dict_observation_follows_the_contract():
    env = make()
    space = env.observation_space
    assert list(space.spaces) == ["user", "context", "memory", "variants"]
    n_variants = env.action_space.n
    assert space["variants"].shape[0] == n_variants
    cfg = default_config()
    assert space["memory"].shape == (cfg["memory_len"], cfg["embedding_dim"] + 2)
    # user: one-hots of segment, age band (5), device (3), channel (4), then the interest vector
    assert space["user"].shape == (cfg["n_segments"] + 5 + 3 + 4 + cfg["embedding_dim"],)
    # context: sin, cos, day of week (7), channel (4), campaign (n_regimes)
    assert space["context"].shape == (2 + 7 + 4 + cfg["n_regimes"],)
    obs, _ = env.reset(seed=1)
    user = obs["user"]
    assert user[:4].sum() == 1 and user[4:9].sum() == 1 and user[9:12].sum() == 1 and user[12:16].sum() == 1
    assert obs["context"][2:9].sum() == 1 and obs["context"][9:13].sum() == 1
    assert not obs["memory"].any()  # nobody has been shown anything yet


def test_flat_observation_is_the_dict_concatenated_in_order():
    dict_env, flat_env = make(), make(observation_type="flat")
    for (obs, *_), (flat, *_) in zip(rollout(dict_env, 5, 50), rollout(flat_env, 5, 50)):
        expected = np.concatenate([obs["user"], obs["context"], obs["memory"].ravel(), obs["variants"].ravel()])
        np.testing.assert_array_equal(flat, expected)


def test_same_seed_same_trajectory_and_other_seed_differs():
    config = dict(horizon=150)
    first, second = rollout(make(**config), 11, 400), rollout(make(**config), 11, 400)
    assert_traces_equal(first, second)
    other = rollout(make(**config), 12, 400)
    assert any(not np.array_equal(a[0]["user"], b[0]["user"]) for a, b in zip(first, other))


def test_pickled_env_continues_identically():
    env = make(horizon=100)
    rollout(env, 3, 37)
    clone = pickle.loads(pickle.dumps(env))
    rng = np.random.default_rng(9)
    for _ in range(150):
        action = int(rng.integers(env.action_space.n))
        a, b = env.step(action), clone.step(action)
        for key in a[0]:
            np.testing.assert_array_equal(a[0][key], b[0][key])
        assert a[1:4] == b[1:4]
        np.testing.assert_array_equal(a[4]["expected_rewards"], b[4]["expected_rewards"])  # fatigue survived too
        if a[3]:
            np.testing.assert_array_equal(env.reset()[0]["user"], clone.reset()[0]["user"])


@pytest.mark.parametrize("mode", ["sync", "async", "vector_entry_point"])
def test_make_vec_in_every_mode(mode):
    envs = gym.make_vec(ENV_ID, num_envs=3, vectorization_mode=mode, config=dict(horizon=4))
    try:
        obs, _ = envs.reset(seed=0)
        assert envs.observation_space.contains(obs)
        for step in range(6):
            obs, reward, terminated, truncated, info = envs.step(np.array([0, 1, 2]))
            assert reward.shape == (3,) and not terminated.any()
            assert envs.observation_space.contains(obs)
            if step == 3:
                assert truncated.all()
            if step < 4:
                assert info["expected_rewards"].shape == (3, envs.single_action_space.n)
                assert info["click"].dtype == bool
    finally:
        envs.close()


def test_vector_env_with_one_world_agrees_with_the_single_env():
    config = dict(horizon=60)
    single = make(**config)
    vector = gym.make_vec(ENV_ID, num_envs=1, vectorization_mode="vector_entry_point", config=config)
    obs_s, _ = single.reset(seed=21)
    obs_v, _ = vector.reset(seed=21)
    rng = np.random.default_rng(0)
    for _ in range(200):  # crosses three episode boundaries
        for key in obs_s:
            np.testing.assert_array_equal(obs_s[key], obs_v[key][0])
        action = int(rng.integers(single.action_space.n))
        obs_s, r_s, _, tr_s, info_s = single.step(action)
        obs_v, r_v, _, tr_v, info_v = vector.step(np.array([action]))
        assert r_s == r_v[0] and tr_s == tr_v[0]
        np.testing.assert_array_equal(info_s["expected_rewards"], info_v["expected_rewards"][0])
        assert info_s["oracle_action"] == info_v["oracle_action"][0] and info_s["click"] == info_v["click"][0]
        if tr_s:
            obs_s, _ = single.reset()
            obs_v, reward, *_ = vector.step(np.array([0]))  # next-step autoreset
            assert reward[0] == 0.0


def test_unknown_config_key_and_bad_values_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown setting 'horizn' for PersonalizedMarketing-v0; did you mean 'horizon'"):
        make(horizn=10)
    with pytest.raises(ValueError, match="'active_users'.*positive whole number"):
        make(active_users=0)
    with pytest.raises(ValueError, match="observation_type"):
        make(observation_type="image")
    with pytest.raises(ValueError, match="reward 'profit' is unknown"):
        make(reward="profit")
    with pytest.raises(ValueError, match="unknown setting 'horizn'"):
        gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="vector_entry_point", horizn=5)


def test_invalid_actions_are_rejected():
    env = make()
    env.reset(seed=0)
    for bad in (-1, env.action_space.n, 1.5, "two"):
        with pytest.raises(ValueError, match="variant index"):
            env.unwrapped.step(bad)
    vector = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="vector_entry_point")
    vector.reset(seed=0)
    with pytest.raises(ValueError, match="actions must be"):
        vector.step(np.array([0, 9]))


def test_vector_reset_info_carries_the_campaign_like_the_single_env():
    single_info = make().reset(seed=0)[1]
    vector = gym.make_vec(ENV_ID, num_envs=3, vectorization_mode="vector_entry_point")
    _, info = vector.reset(seed=0)
    assert info["variant_texts"] == single_info["variant_texts"] and info["n_arms"] == single_info["n_arms"]
    assert info["action_mask"].shape == (3, single_info["n_arms"])


def test_a_contextual_agent_with_a_prior_refuses_to_run_without_the_texts():
    from abgym.agents.contextual import LinUCB

    class FlatPrior:
        def ctr_prior(self, texts):
            return np.full(len(texts), 0.02), np.full(len(texts), 0.01)

    env = make()
    obs, _ = env.reset(seed=0)
    agent = LinUCB(prior=FlatPrior())
    with pytest.raises(KeyError, match="variant_texts"):
        agent.reset(env.action_space.n, {})


def test_each_variant_calibrates_to_its_recorded_ctr():
    """Always showing variant k to fresh, non-drifting users reproduces its recorded Upworthy CTR."""
    config = dict(drift=False, fatigue=0.0, loyalty_effect=0.0, population_size=1000, active_users=1000,
                  horizon=1000)
    envs = gym.make_vec(ENV_ID, num_envs=48, vectorization_mode="vector_entry_point", config=config)
    meta = envs.unwrapped.content.meta
    recorded = np.asarray(meta["clicks"]) / np.asarray(meta["impressions"])
    np.testing.assert_allclose(envs.unwrapped.content.target_ctr, recorded)
    for variant, target in enumerate(recorded):
        envs.reset(seed=100 + variant)
        clicks = impressions = 0
        actions = np.full(48, variant)
        for _ in range(1000):
            _, _, _, _, info = envs.step(actions)
            clicks += int(info["click"].sum())
            impressions += 48
        simulated = clicks / impressions
        standard_error = np.sqrt(target * (1 - target) / impressions)
        assert abs(simulated - target) < 4 * standard_error, (variant, simulated, target)


def test_expected_rewards_match_realised_rewards():
    env = make(reward="click", drift=False)
    env.reset(seed=4)
    expected, realised = [], []
    rng = np.random.default_rng(1)
    for _ in range(6000):
        action = int(rng.integers(env.action_space.n))
        _, reward, _, truncated, info = env.step(action)
        assert info["oracle_action"] == int(np.argmax(info["expected_rewards"]))
        assert reward == float(info["click"])
        expected.append(info["expected_rewards"][action])
        realised.append(reward)
        if truncated:
            env.reset()
    mean_p = np.mean(expected)
    assert abs(np.mean(realised) - mean_p) < 4 * np.sqrt(mean_p * (1 - mean_p) / len(realised))


def test_reward_modes_and_info_outcomes():
    env = make(reward="revenue", conversion_rate=0.9)
    env.reset(seed=2)
    conversions = 0
    for step in range(3000):
        _, reward, _, _, info = env.step(1)
        assert reward == pytest.approx(info["revenue"])
        assert info["conversion"] <= info["click"] and (info["revenue"] > 0) == info["conversion"]
        conversions += info["conversion"]
    assert conversions > 0


def test_memory_shows_what_a_returning_user_was_shown():
    env = make(horizon=2000)
    obs, _ = env.reset(seed=8)
    returning = 0
    for _ in range(1500):
        action = 2
        was_empty = not obs["memory"].any()
        obs, _, _, _, info = env.step(action)
        assert info["returning"] == (not was_empty)
        if info["returning"] and not info["churned"]:
            returning += 1
    assert returning > 500  # 200 active users, 1,500 arrivals: most arrivals are returning users
    # The newest memory row of a user shown variant 2 is variant 2's embedding (then click, conversion).
    worlds = env.unwrapped.worlds
    codes = worlds.codes[worlds.codes[:, 0] > 0, 0]
    variant = (codes - 1) // 3
    assert (variant == 2).all()


def test_drift_off_keeps_a_fixed_best_variant_per_segment_and_drift_on_changes_it():
    still = make(drift=False, horizon=3000)
    still.reset(seed=0)
    start = still.unwrapped.segment_expected_rewards()
    for _ in range(3000):
        *_, info = still.step(0)
        assert not info["regime_shift"]
    np.testing.assert_array_equal(still.unwrapped.segment_expected_rewards(), start)
    assert not still.unwrapped.drift_report()["preference_shift"].any()

    moving = make(drift=True, horizon=3000, regime_shift_prob=0.003, regime_scale=2.0, ou_sigma=0.1,
                  segment_trend=1.0, record_drift=True)
    moving.reset(seed=0)
    best = [moving.unwrapped.segment_expected_rewards().argmax(axis=1)]
    shifts = 0
    for step in range(3000):
        *_, info = moving.step(0)
        shifts += info["regime_shift"]
        if step % 100 == 99:
            best.append(moving.unwrapped.segment_expected_rewards().argmax(axis=1))
    assert shifts >= 1
    assert any((b != best[0]).any() for b in best[1:]), "the best variant of some segment must change"
    report = moving.unwrapped.drift_report()
    assert np.abs(report["preference_shift"]).sum() > 0
    history = moving.unwrapped.drift_history
    assert any(entry["regime_shift"] for entry in history) and history[-1]["t"] > 2900
    np.testing.assert_allclose(history[-1]["logit_shift"], report["logit_shift"])


def test_render_ansi_describes_the_arrival():
    env = gym.make(ENV_ID, render_mode="ansi")
    env.reset(seed=0)
    env.step(0)
    text = env.render()
    assert "arrival 1/1000" in text and "Matt Damon" in text


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_segments=st.integers(1, 6), memory_len=st.integers(1, 8), n_regimes=st.integers(1, 4),
       active_users=st.integers(1, 50), reward=st.sampled_from(["click", "conversion", "revenue", "weighted"]),
       seed=st.integers(0, 2**31))
def test_any_valid_config_gives_observations_in_its_space(n_segments, memory_len, n_regimes, active_users, reward,
                                                          seed):
    env = make(n_segments=n_segments, memory_len=memory_len, n_regimes=n_regimes, active_users=active_users,
               population_size=100, reward=reward, horizon=30, regime_shift_prob=0.2)
    obs, _ = env.reset(seed=seed)
    for step in range(40):
        assert env.observation_space.contains(obs)
        obs, reward_value, _, truncated, info = env.step(step % env.action_space.n)
        assert np.isfinite(reward_value) and reward_value >= 0
        if truncated:
            obs, _ = env.reset()


def test_calibration_is_exact_for_a_population_larger_than_one_block():
    from abgym.envs.users import CHUNK, population_average_ctr

    env = make(population_size=2 * CHUNK + 100, active_users=50)
    worlds = env.unwrapped.worlds
    achieved = population_average_ctr(worlds.population, worlds.population.quality, 0.7, 200)
    np.testing.assert_allclose(achieved, env.unwrapped.content.target_ctr, rtol=1e-6)
    assert worlds.segment_expected_rewards().shape == (4, env.action_space.n)


def test_non_numeric_settings_are_rejected():
    with pytest.raises(ValueError, match="'fatigue' must be a finite number"):
        make(fatigue="high")
    with pytest.raises(ValueError, match="'base_ctr' must be a probability"):
        make(base_ctr=1.5)


def test_repeating_one_variant_tires_users_and_drives_them_away():
    """Fatigue and churn: the same variant to everybody loses clicks on returning users and loses users."""
    def run(policy):
        envs = gym.make_vec(ENV_ID, num_envs=64, vectorization_mode="vector_entry_point",
                            config=dict(drift=False, horizon=600))
        envs.reset(seed=3)
        rng = np.random.default_rng(0)
        churned = first_ctr = returning_ctr = 0.0
        first = returning = 0
        for _ in range(600):
            actions = np.full(64, 1) if policy == "same" else rng.integers(envs.single_action_space.n, size=64)
            *_, info = envs.step(actions)
            churned += info["churned"].sum()
            p = info["expected_rewards"][np.arange(64), actions]
            first_ctr += p[~info["returning"]].sum()
            returning_ctr += p[info["returning"]].sum()
            first += (~info["returning"]).sum()
            returning += info["returning"].sum()
        return churned / 64, first_ctr / first, returning_ctr / returning

    same_churn, same_first, same_returning = run("same")
    random_churn, _, _ = run("random")
    assert same_churn > 1.5 * random_churn
    assert same_returning < 0.9 * same_first  # returning users have seen variant 1 before: fatigue


def world_state(worlds):
    """Every array of a world's state that a step changes, copied."""
    names = ("occupant", "next_profile", "exposures", "loyalty", "codes", "t", "time_index", "regime", "ou",
             "drift_logit", "slot", "profile", "channel", "p_click", "p_conversion", "expected")
    return {name: getattr(worlds, name).copy() for name in names} | {"since_walk": worlds._since_walk,
                                                                     "block_pos": worlds._block_pos}


SCALAR_PATH_CONFIGS = [
    dict(),  # the defaults: rare conversions, drift, churn
    # Frequent clicks and conversions (revenue, loyalty and its effect on clicks and churn), frequent regime shifts.
    dict(variant_ctr="high", conversion_rate=0.6, regime_shift_prob=0.05, drift_interval=3, active_users=20),
    # Two users seeing the same variant hundreds of times: exposures saturate at 255, fatigue and churn tables' ends.
    dict(active_users=2, population_size=3, churn_base=0.0, churn_per_repeat=0.0, churn_click_relief=0.0,
         loyalty_effect=0.0, drift=False, horizon=3000),
    dict(fatigue=0.0, loyalty_effect=0.0, loyalty_gain=0.0, n_regimes=1, memory_len=1, reward="revenue"),
]


@pytest.mark.parametrize("config", SCALAR_PATH_CONFIGS)
def test_single_world_scalar_step_is_the_vector_step_exactly(config):
    """The single env's scalar fast path (``step_one``) returns bit for bit what the N-world ``step`` returns with
    N = 1, and leaves every state array the same, step after step, across resets and a refill of the draws."""
    from abgym.envs.personalized_marketing import build_worlds

    config = dict(config, horizon=config.get("horizon", 300))
    if config.get("variant_ctr") == "high":
        config["variant_ctr"] = list(np.linspace(0.3, 0.6, make().action_space.n))
    _, _, vector = build_worlds(config, 1)
    _, _, scalar = build_worlds(config, 1)
    vector.seed(5)
    scalar.seed(5)
    rng = np.random.default_rng(1)
    counts = dict(click=0, conversion=0, churned=0, regime_shift=0)
    for step in range(2600):  # > 2 blocks of 1,024 draws
        action = 0 if config.get("active_users") == 2 else int(rng.integers(vector.n_variants))
        out = vector.step(np.array([action]))
        reward, truncated, info = scalar.step_one(action)
        assert reward == out["reward"][0] and type(reward) is float
        assert truncated == out["truncated"][0]
        np.testing.assert_array_equal(info["expected_rewards"], out["expected_rewards"][0])
        assert list(info) == ["expected_rewards", "oracle_action", "click", "conversion", "revenue", "segment",
                              "regime_shift", "returning", "churned"]
        for key in list(info)[1:]:
            assert info[key] == out[key][0], key
            counts[key] = counts.get(key, 0) + info[key]
        a, b = world_state(vector), world_state(scalar)
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=f"{name} at step {step}")
        for got, want in zip(scalar.observe_one(), vector.observe()):
            np.testing.assert_array_equal(got, want[0])
        if truncated:
            vector.reset_worlds(vector.rows)
            scalar.reset_worlds(scalar.rows)
    assert counts["click"] > 0 and counts["churned"] > 0 or config.get("active_users") == 2
    if "conversion_rate" in config:  # the branch this config is for was taken
        assert counts["conversion"] > 50 and counts["regime_shift"] > 20
    if config.get("active_users") == 2:
        assert scalar.exposures.max() == 255
