"""CustomerJourney-v0: the env contract, its dynamics, and the headroom that separates a myopic from a long-term policy."""
from __future__ import annotations

import json
import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import abgym  # noqa: F401  (registers the ids)
from abgym.envs.customer_journey import default_config
from abgym.studies.journey_headroom import headroom, run_policy

ENV_ID = "abgym/CustomerJourney-v0"
TRUST_OFF = {"bait_annoyance": 0.0, "trust_gain": 0.0, "trust_loss": 0.0}
SAME_USERS_NO_SATIATION = {"fatigue": 0.0, "churn_repeat": 0.0, "segment_scale": 0.0, "portrait_scale": 0.0,
                           "preference_scale": 0.0, "context_scale": 0.0, "conversion_scale": 0.0,
                           "interest_rate": 0.0}


def journeys(env, seed, n_episodes, action_seed=0):
    rng = np.random.default_rng(action_seed)
    env.reset(seed=seed)
    trace = []
    for _ in range(n_episodes):
        obs, _ = env.reset()
        done = False
        while not done:
            action = int(rng.integers(env.action_space.n))
            obs, reward, terminated, truncated, info = env.step(action)
            trace.append((obs["context"].copy(), action, reward, terminated, truncated, info["trust"]))
            done = terminated or truncated
    return trace


@pytest.mark.parametrize("observation_type", ["dict", "flat"])
def test_passes_gymnasium_check_env(observation_type):
    env = gym.make(ENV_ID, observation_type=observation_type)
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert info["test_id"] == "530e906bff24f84145000005"


def test_settings_as_keywords_or_config_are_the_same_and_bad_ones_are_named():
    a = gym.make(ENV_ID, max_visits=5).unwrapped
    b = gym.make(ENV_ID, config={"max_visits": 5}).unwrapped
    assert a.config == b.config and a.config["max_visits"] == 5
    with pytest.raises(ValueError, match="did you mean 'max_visits'"):
        gym.make(ENV_ID, max_visit=5)
    with pytest.raises(ValueError, match="trust_loss"):
        gym.make(ENV_ID, trust_loss=-1.0)
    with pytest.raises(ValueError, match="max_visits"):
        gym.make(ENV_ID, max_visits=0)
    with pytest.raises(ValueError, match="drift"):
        gym.make(ENV_ID, drift="no")


def test_an_episode_is_one_user_until_churn_or_max_visits():
    env = gym.make(ENV_ID, max_visits=6)
    obs, _ = env.reset(seed=3)
    lengths, visits = [], []
    for _ in range(50):
        obs, _ = env.reset()
        profile = int(env.unwrapped.worlds.state["profile"][0])
        for step in range(1, 7):
            obs, _, terminated, truncated, info = env.step(0)
            assert int(env.unwrapped.worlds.state["profile"][0]) == profile
            assert info["visit"] == step and obs["context"][-1] == pytest.approx(step / 6)
            if terminated or truncated:
                break
        assert truncated == (not terminated) and (truncated is False or step == 6)
        lengths.append(step)
        with pytest.raises(gym.error.ResetNeeded):
            env.step(0)
    assert min(lengths) < 6 and max(lengths) == 6  # some users churn, some stay to the end


def test_same_seed_same_journeys_and_other_seed_differs():
    a = journeys(gym.make(ENV_ID), 7, 20)
    b = journeys(gym.make(ENV_ID), 7, 20)
    c = journeys(gym.make(ENV_ID), 8, 20)
    assert len(a) == len(b) and all(np.array_equal(x[0], y[0]) and x[1:] == y[1:] for x, y in zip(a, b))
    assert [x[2:] for x in a] != [x[2:] for x in c]


def test_pickled_env_continues_identically():
    env = gym.make(ENV_ID)
    env.reset(seed=1)
    for _ in range(3):
        env.step(1)
    clone = pickle.loads(pickle.dumps(env))
    for action in (0, 2, 3):
        out_a, out_b = env.step(action), clone.step(action)
        assert out_a[1:4] == out_b[1:4]
        np.testing.assert_array_equal(out_a[0]["memory"], out_b[0]["memory"])
        if out_a[2] or out_a[3]:
            break


@pytest.mark.parametrize("mode", ["sync", "async", "vector_entry_point"])
def test_make_vec_in_every_mode(mode):
    envs = gym.make_vec(ENV_ID, num_envs=4, vectorization_mode=mode)
    obs, _ = envs.reset(seed=0)
    assert obs["user"].shape[0] == 4 and envs.single_observation_space.contains(
        {key: value[0] for key, value in obs.items()})
    ended = np.zeros(4, bool)
    for _ in range(40):
        obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
        assert reward.shape == (4,) and info["expected_rewards"].shape == (4, envs.single_action_space.n)
        ended |= terminated | truncated
    assert ended.all()  # every world finished at least one journey and went on with the next user
    envs.close()


def test_vector_env_autoresets_each_world_on_the_next_step():
    envs = gym.make_vec(ENV_ID, num_envs=8, vectorization_mode="vector_entry_point")
    envs.reset(seed=2)
    done_before = np.zeros(8, bool)
    for _ in range(60):
        obs, reward, terminated, truncated, info = envs.step(np.zeros(8, np.int64))
        assert np.all(reward[done_before] == 0) and not np.any((terminated | truncated)[done_before])
        assert np.all(obs["context"][done_before, -1] == 0)  # the next user starts at visit 0
        assert np.array_equal(info["_click"], ~done_before)
        done_before = terminated | truncated


def test_invalid_actions_are_rejected():
    env = gym.make(ENV_ID)
    env.reset(seed=0)
    for action in (-1, 4, 1.5, "a", None, float("inf"), True):
        with pytest.raises(ValueError, match="variant index"):
            env.unwrapped.step(action)
    envs = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="vector_entry_point")
    envs.reset(seed=0)
    with pytest.raises(ValueError, match="integer variant indices"):
        envs.step(np.array([0, 9]))


def test_first_visits_are_calibrated_to_the_recorded_ctr():
    env = gym.make(ENV_ID, population_size=4000)
    worlds = env.unwrapped.worlds
    from abgym.envs.customer_journey import build_journeys

    _, content, many = build_journeys({"population_size": 4000}, {}, 20000)
    many.seed(0)
    first_visit_ctr = many.response(many.state, None)[0].mean(axis=0)
    np.testing.assert_allclose(first_visit_ctr, content.target_ctr, rtol=0.06)
    assert worlds.n_variants == len(content.target_ctr)


def test_clickbait_loses_trust_and_users_while_honest_content_keeps_them():
    """The long-term mechanism itself: the most click-worthy variant shown every visit shortens journeys."""
    kwargs = dict(users=1500, seed=0, config={"fatigue": 0.0, "churn_repeat": 0.0})
    from abgym.envs.customer_journey import build_journeys

    _, _, worlds = build_journeys(kwargs["config"], {}, 1500)
    bait, honest = int(worlds.bait.argmax()), int(worlds.bait.argmin())
    baity = run_policy("fixed", fixed_variant=bait, worlds=worlds, users=1500)
    plain = run_policy("fixed", fixed_variant=honest, worlds=worlds, users=1500)
    assert baity["visits"].mean() < 0.8 * plain["visits"].mean()
    worlds.seed(0)
    first = worlds.expected_rewards()
    assert first[:, bait].mean() > first[:, honest].mean()  # ... although it wins the first visit


def test_headroom_gaps_at_default_settings():
    """Both 10% gaps, measured at a reduced size (the documented figures use 2,000 users, 32 rollouts)."""
    result = headroom(users=600, rollouts=8, seed=0)
    policies, gaps = result["policies"], result["gaps"]
    assert set(policies) == {"random", "best_fixed", "myopic_oracle", "longterm_oracle"}
    assert gaps["myopic_over_best_fixed"]["relative"] > 0.10
    assert gaps["longterm_over_myopic"]["relative"] > 0.10
    assert gaps["longterm_over_myopic"]["relative_ci"][0] > 0
    assert policies["longterm_oracle"]["visits"] > policies["myopic_oracle"]["visits"]


def test_long_term_gap_closes_without_the_trust_mechanism():
    gap = headroom(TRUST_OFF, users=600, rollouts=8, seed=0)["gaps"]["longterm_over_myopic"]
    assert abs(gap["relative"]) < 0.04 and gap["relative_ci"][0] < 0.02


def test_personalization_gap_closes_with_identical_users_and_no_satiation():
    gap = headroom({**TRUST_OFF, **SAME_USERS_NO_SATIATION, "drift": False}, users=400, rollouts=4,
                   seed=0)["gaps"]["myopic_over_best_fixed"]
    assert abs(gap["relative"]) < 0.01


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(max_visits=st.integers(1, 12), memory_len=st.integers(1, 6), n_regimes=st.integers(1, 4),
       trust_loss=st.floats(0, 3), bait_annoyance=st.floats(0, 1), drift=st.booleans())
def test_any_valid_setting_gives_observations_in_its_space(max_visits, memory_len, n_regimes, trust_loss,
                                                           bait_annoyance, drift):
    env = gym.make(ENV_ID, max_visits=max_visits, memory_len=memory_len, n_regimes=n_regimes, trust_loss=trust_loss,
                   bait_annoyance=bait_annoyance, drift=drift)
    obs, _ = env.reset(seed=0)
    for _ in range(2 * max_visits):
        assert env.observation_space.contains(obs)
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()


def test_render_ansi_describes_the_journey():
    env = gym.make(ENV_ID, render_mode="ansi")
    env.reset(seed=0)
    env.step(1)
    text = env.render()
    assert "visit 1/" in text and "trust" in text and "showed 1" in text


def test_default_config_documents_every_setting():
    config = default_config()
    assert config["max_visits"] == 30 and config["drift"] is True and "bait_annoyance" in config


def test_headroom_command_writes_the_documented_json(tmp_path, capsys):
    from abgym.cli import main

    path = tmp_path / "headroom.json"
    assert main(["marketing", "headroom", "--users", "200", "--rollouts", "4", "--json", str(path)]) == 0
    document = json.loads(path.read_text())
    assert document["users"] == 200 and set(document["policies"]) == {"random", "best_fixed", "myopic_oracle",
                                                                        "longterm_oracle"}
    for entry in document["policies"].values():
        assert entry["ltv_ci"][0] <= entry["ltv_mean"] <= entry["ltv_ci"][1]
    assert "longterm over myopic" in capsys.readouterr().out
    assert main(["marketing", "headroom", "--env-config", '{"max_visit": 3}']) == 2
    assert "did you mean 'max_visits'" in capsys.readouterr().err


def test_journey_comparison_runs_every_kind_of_agent_and_scores_headroom(tmp_path, one_torch_thread):
    from abgym.studies import journey_comparison as study

    config = study.JourneyComparisonConfig(
        agents=["classical_ab", "linucb", "ppo-lt", "ppo+mare-lt", "myopic_oracle", "longterm_oracle"],
        seeds=[100], users=40, drift=["on"], prior="off", rollouts=2, recovery_window=20, out=tmp_path,
        env_config={"max_visits": 10})
    result = study.run_comparison(config, log=lambda line: None)
    rows = {row["agent"]: row for row in result["rows"]}
    assert set(rows) == set(config.agents) and all(row["users"] == 40 for row in rows.values())
    assert rows["myopic_oracle"]["headroom_share"] == 0 and rows["longterm_oracle"]["headroom_share"] == 1
    assert rows["myopic_oracle"]["regret_per_visit"] == 0
    assert all(np.isfinite(row["headroom_share"]) and 1 <= row["visits"] <= 10 for row in rows.values())
    for name in ("summary.csv", "summary.md", "per_run.csv", "lifetime_reward.png"):
        assert (tmp_path / name).exists()
    assert "share of long-term headroom" in (tmp_path / "summary.md").read_text()


def test_mare_learns_the_journeys_discounted_lifetime_value():
    from abgym.agents.reward_estimator import RewardEstimatorWrapper

    env = RewardEstimatorWrapper(gym.make(ENV_ID, max_visits=4), use="input", target="lifetime", gamma=0.5,
                                 train_every=10_000)
    env.reset(seed=0)
    rewards = []
    for _ in range(4):
        _, reward, terminated, truncated, info = env.step(0)
        rewards.append(info["env_reward"])
        if terminated or truncated:
            break
    stored = env.estimator.buffer["reward"][:len(rewards)]
    expected = [sum(r * 0.5 ** j for j, r in enumerate(rewards[i:])) for i in range(len(rewards))]
    np.testing.assert_allclose(stored, expected, rtol=1e-6)
    assert env.estimator.n_seen == len(rewards)


def test_the_estimators_prior_fades_as_data_arrives():
    from abgym.agents.reward_estimator import OnlineRewardEstimator

    env = gym.make(ENV_ID)
    estimator = OnlineRewardEstimator(env.observation_space, train_every=10_000)
    obs, _ = env.reset(seed=0)
    untrained = estimator.predict(obs)
    estimator.set_prior([1.0, 2.0, 3.0, 4.0], strength=10)
    np.testing.assert_allclose(estimator.predict(obs), [1.0, 2.0, 3.0, 4.0])
    for _ in range(10):
        estimator.observe(obs, 0, 0.0)
    np.testing.assert_allclose(estimator.predict(obs), 0.5 * np.array([1.0, 2.0, 3.0, 4.0]) + 0.5 * untrained,
                               rtol=1e-5)
    with pytest.raises(ValueError, match="one per variant"):
        estimator.set_prior([1.0, 2.0])


def test_same_step_autoreset_hands_back_the_final_observation_and_the_next_user():
    from gymnasium.vector import AutoresetMode

    envs = gym.make_vec(ENV_ID, num_envs=6, vectorization_mode="vector_entry_point",
                        autoreset_mode=AutoresetMode.SAME_STEP, max_visits=4)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    obs, _ = envs.reset(seed=0)
    ended_any = False
    for _ in range(12):
        obs, reward, terminated, truncated, info = envs.step(np.ones(6, np.int64))
        ended = terminated | truncated
        if ended.any():
            ended_any = True
            assert np.array_equal(info["_final_obs"], ended)
            # gymnasium's SAME_STEP layout: final_info is a dict of batched arrays with their own masks.
            assert np.array_equal(info["final_info"]["_visit"], ended)
            assert np.all(info["final_info"]["visit"][ended] >= 1)
            for row in np.flatnonzero(ended):
                assert info["final_obs"][row]["context"][-1] > 0  # the journey's last visit
                assert obs["context"][row, -1] == 0  # ... and the next user at visit 0, in the same step
    assert ended_any
    with pytest.raises(ValueError, match="autoreset_mode"):
        gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="vector_entry_point", autoreset_mode="nope")


def test_sb3_ppo_trains_on_batched_journeys(one_torch_thread):
    from abgym.agents.actor_critic import ActorCriticAgent

    venv = abgym.make_sb3_vec_env(ENV_ID, n_envs=8, seed=0, max_visits=5)
    agent = ActorCriticAgent(venv, "ppo", seed=0, gamma=0.95, gae_lambda=0.95, n_steps=32)
    agent.learn(512)
    assert agent.model.num_timesteps == 512
    assert len(agent.model.ep_info_buffer) > 8  # journeys ended at different steps and SB3 saw each one


def test_journey_comparison_logs_the_projects_episode_tags(tmp_path):
    from abgym.studies import journey_comparison as study
    from abgym.tensorboard import read_scalars

    config = study.JourneyComparisonConfig(agents=["linucb"], seeds=[100], users=20, drift=["off"], prior="off",
                                           out=tmp_path, log_every=10, env_config={"max_visits": 5})
    study.run_comparison(config, log=lambda line: None)
    tags = read_scalars(tmp_path / "runs" / "drift-off" / "linucb" / "seed100")
    assert {"episode/reward", "episode/length", "episode/regret", "episode/ctr", "episode/churned"} <= set(tags)


@pytest.mark.slow
def test_quick_journey_comparison_through_the_cli(tmp_path):
    """The CI version of the journey comparison: every main agent, 2 seeds, through the CLI (prior off: no fit)."""
    import csv

    from abgym.cli import main
    from abgym.studies import journey_comparison as study

    out = tmp_path / "quick"
    assert main(["marketing", "compare", "--env", ENV_ID, "--quick", "--prior", "off", "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "per_run.csv").open()))
    assert {row["agent"] for row in rows} == set(study.MAIN_AGENTS)
    assert {row["seed"] for row in rows} == {"100", "101"} and all(int(row["users"]) == 150 for row in rows)
    ltv = {}
    for row in rows:
        ltv.setdefault(row["agent"], []).append(float(row["ltv_expected"]))
    assert np.mean(ltv["longterm_oracle"]) > np.mean(ltv["myopic_oracle"])
    assert (out / "lifetime_reward.png").stat().st_size > 0


def test_a_lifetime_estimate_cannot_shape_a_per_step_reward():
    from abgym.agents.reward_estimator import RewardEstimatorWrapper

    with pytest.raises(ValueError, match="use='input'"):
        RewardEstimatorWrapper(gym.make(ENV_ID), use="both", target="lifetime")


def test_the_estimators_ranker_prior_is_on_the_scale_of_its_target():
    from abgym.studies.journey_comparison import ranker_prior_values

    class FlatPrior:
        def ctr_prior(self, texts):
            return np.full(len(texts), 0.05), None

    env = gym.make(ENV_ID, max_visits=30, churn_base=0.05)
    immediate = ranker_prior_values(FlatPrior(), env, 0.0)
    lifetime = ranker_prior_values(FlatPrior(), env, 0.95)
    expected_visits = sum((0.95 * 0.95) ** t for t in range(30))
    np.testing.assert_allclose(lifetime, immediate * expected_visits)
