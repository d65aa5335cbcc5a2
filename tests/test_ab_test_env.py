"""abgym/ABTest-v0: the Gymnasium contract, masking, determinism, pickling, vectorisation and its bookkeeping."""
from __future__ import annotations

import pickle
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

import abgym  # noqa: F401  (registers the ids)
from abgym.data.upworthy import load_experiments
from abgym.envs.ab_test import ARM_FEATURES, ABTestEnv, default_config

ENV_ID = "abgym/ABTest-v0"
HEADER = "clickability_test_id,test_week,headline,excerpt,lede,eyecatcher_id,impressions,clicks,significance,winner"


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory):
    """Three experiments: a clear two-arm gap, a three-arm test, and a four-arm test."""
    rows = [
        "gap,201401,Weak headline,,,i1,10000,100,1,False",
        "gap,201401,Strong headline,,,i2,10000,500,99,True",
        "three,201402,A,,,i3,3000,30,1,False",
        "three,201402,B,,,i4,3000,60,1,False",
        "three,201402,C,,,i5,3000,45,1,False",
        "four,201403,W,,,i6,2000,10,1,False",
        "four,201403,X,,,i7,2000,20,1,False",
        "four,201403,Y,,,i8,2000,30,1,False",
        "four,201403,Z,,,i9,2000,40,1,False",
    ]
    path = tmp_path_factory.mktemp("data") / "small.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def run_episode(env, seed, policy_seed=0, options=None):
    """Play one episode with a seeded random valid policy; return everything observed."""
    rng = np.random.default_rng(policy_seed)
    obs, info = env.reset(seed=seed, options=options)
    trace = [(obs, info)]
    done = False
    while not done:
        obs, reward, terminated, truncated, step_info = env.step(int(rng.integers(info["n_arms"])))
        trace.append((obs, reward, terminated, truncated, step_info))
        done = terminated or truncated
    return trace


def assert_same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


# ----------------------------------------------------------------------------------------------- the contract
def test_check_env_passes():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no checker warning either
        check_env(gym.make(ENV_ID).unwrapped)
        check_env(gym.make(ENV_ID, ctr_source="posterior").unwrapped)


def test_spaces_and_an_episode(small_csv):
    env = gym.make(ENV_ID, data_path=str(small_csv), max_arms=5)
    assert env.action_space.n == 5
    assert env.observation_space["arms"].shape == (5, len(ARM_FEATURES))
    trace = run_episode(env, seed=0, options={"experiment_id": "three"})
    obs, info = trace[0]
    assert info["n_arms"] == 3 and info["test_id"] == "three" and info["arm_texts"] == ["A", "B", "C"]
    assert info["action_mask"].tolist() == [True, True, True, False, False]
    assert obs["action_mask"].tolist() == [1, 1, 1, 0, 0] and obs["traffic_left"].tolist() == [1.0]
    np.testing.assert_allclose(obs["arms"][:3, 3], 0.5)
    assert info["traffic"] == 9000 and info["batch_size"] == 90 and info["horizon"] == 100
    steps = trace[1:]
    assert len(steps) == 100 and all(not s[2] for s in steps[:-1]) and steps[-1][2] and not steps[-1][3]
    assert sum(s[4]["impressions"] for s in steps) == 9000
    for obs, reward, _, _, step_info in steps:
        assert env.observation_space.contains(obs)
        assert reward == step_info["clicks"] <= step_info["impressions"]
        assert step_info["best_arm"] == 1 and step_info["expected_regret"] >= 0
        assert np.all(obs["arms"][3:] == 0)  # padded arms stay zero
    final_obs, final_info = steps[-1][0], steps[-1][4]
    assert final_obs["traffic_left"][0] == 0 and final_obs["arms"][:3, 0].sum() == pytest.approx(1.0)
    assert final_obs["arms"][:3, 1].sum() == 9000 and final_obs["arms"][:3, 2].sum() == sum(s[1] for s in steps)
    means = (1 + final_obs["arms"][:3, 2]) / (2 + final_obs["arms"][:3, 1])
    assert final_info["declared_winner"] == int(np.argmax(means))
    assert final_info["winner_is_best"] == (final_info["declared_winner"] == 1)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)


def test_regret_is_zero_on_the_best_arm_and_the_gap_otherwise(small_csv):
    env = ABTestEnv(data_path=small_csv, experiment_id="gap")
    env.reset(seed=1)
    best = env.step(1)[4]
    assert best["expected_regret"] == 0.0
    worst = env.step(0)[4]
    assert worst["expected_regret"] == pytest.approx(worst["impressions"] * (0.05 - 0.01))
    while True:
        *_, terminated, _, info = env.step(1)
        if terminated:
            break
    assert info["declared_winner"] == 1 and info["winner_is_best"] is True


def test_batch_size_sets_the_episode_length(small_csv):
    env = ABTestEnv(data_path=small_csv, experiment_id="four", batch_size=3000)
    trace = run_episode(env, seed=0)
    assert [s[4]["impressions"] for s in trace[1:]] == [3000, 3000, 2000]
    env = ABTestEnv(data_path=small_csv, experiment_id="four", steps_per_episode=10)
    assert len(run_episode(env, seed=0)) == 11


def test_action_space_samples_only_valid_arms(small_csv):
    env = ABTestEnv(data_path=small_csv, experiment_id="three")
    env.reset(seed=0)
    env.action_space.seed(0)
    assert {int(env.action_space.sample()) for _ in range(200)} == {0, 1, 2}
    assert env.action_masks().tolist() == [True] * 3 + [False] * 11


# ------------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("action", [3, 13, 14, -1, 1.0, "1", None, np.array([1])])
def test_invalid_actions_raise_and_name_the_valid_arms(small_csv, action):
    env = ABTestEnv(data_path=small_csv, experiment_id="three")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"invalid action .*three has 3 arms.*0\.\.2"):
        env.step(action)


def test_numpy_integer_actions_are_accepted(small_csv):
    env = ABTestEnv(data_path=small_csv, experiment_id="three")
    env.reset(seed=0)
    env.step(np.int64(2))
    env.step(np.array(1))


def test_unknown_options_are_named():
    with pytest.raises(ValueError, match="unknown setting 'bach_size' for ABTest-v0; did you mean 'batch_size'"):
        gym.make(ENV_ID, bach_size=10)
    env = ABTestEnv()
    with pytest.raises(ValueError, match="unknown option.*seedling"):
        env.reset(options={"seedling": 1})


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(ctr_source="bayes"), "ctr_source"),
        (dict(max_arms=1), "max_arms"),
        (dict(batch_size=0), "batch_size"),
        (dict(steps_per_episode=2.5), "steps_per_episode"),
        (dict(render_mode="human"), "render_mode"),
        (dict(split="validation"), "unknown split"),
        (dict(experiment_id="no-such-test"), "no-such-test.*not in split"),
        (dict(data_path="/no/such/file.csv"), "not found"),
    ],
)
def test_bad_option_values_are_explained(kwargs, words):
    with pytest.raises((ValueError, FileNotFoundError), match=words):
        ABTestEnv(**kwargs)


def test_experiments_with_too_many_arms_are_skipped_and_counted(small_csv, caplog):
    with caplog.at_level("WARNING", logger="abgym.envs.ab_test"):
        env = ABTestEnv(data_path=small_csv, max_arms=3)
    assert {e.test_id for e in env.experiments} == {"gap", "three"}
    assert env.skipped == {"more_than_3_arms": 1} and "max_arms" in caplog.text
    with pytest.raises(ValueError, match="4 arms, more than max_arms=3.*max_arms=4"):
        ABTestEnv(data_path=small_csv, max_arms=3, experiment_id="four")
    with pytest.raises(ValueError, match="4 arms, more than max_arms=3"):
        env.reset(options={"experiment_id": "four"})
    with pytest.raises(ValueError, match="no experiment to replay"):
        ABTestEnv(data_path=small_csv, max_arms=2, experiment_id=None, split="test", split_by="week")


def test_reset_options_choose_the_experiment(small_csv):
    env = ABTestEnv(data_path=small_csv)
    ids = [e.test_id for e in env.experiments]
    for index, test_id in enumerate(ids):
        assert env.reset(options={"experiment_index": index})[1]["test_id"] == test_id
        assert env.reset(options={"experiment_id": test_id})[1]["experiment_index"] == index
    for bad in (3, -1, 1.0, True):
        with pytest.raises(ValueError, match="experiment_index"):
            env.reset(options={"experiment_index": bad})
    with pytest.raises(ValueError, match="not both"):
        env.reset(options={"experiment_index": 0, "experiment_id": "gap"})
    seen = {env.reset(seed=seed)[1]["test_id"] for seed in range(30)}
    assert seen == set(ids)  # the seeded generator visits every experiment


def test_split_restricts_the_experiments():
    test_ids = {e.test_id for e in load_experiments(split="test")}
    env = gym.make(ENV_ID, split="test")
    assert {env.reset(seed=s)[1]["test_id"] for s in range(20)} <= test_ids


# ---------------------------------------------------------------------------------- true click-through rates
def test_empirical_and_posterior_ctrs(small_csv):
    env = ABTestEnv(data_path=small_csv, experiment_id="gap")
    env.reset(seed=0)
    np.testing.assert_allclose(env.true_ctr, [0.01, 0.05])
    posterior = ABTestEnv(data_path=small_csv, experiment_id="gap", ctr_source="posterior")
    draws = np.array([(posterior.reset(seed=s), posterior.true_ctr)[1] for s in range(200)])
    assert len({tuple(d) for d in draws}) == 200  # every replay differs
    np.testing.assert_allclose(draws.mean(axis=0), [101 / 10002, 501 / 10002], rtol=0.03)
    assert draws[:, 0].std() == pytest.approx(np.sqrt(0.0101 * 0.9899 / 10003), rel=0.25)


# -------------------------------------------------------------------------------- determinism and pickling
@pytest.mark.parametrize("ctr_source", ["empirical", "posterior"])
def test_same_seed_same_trajectory(ctr_source):
    first = run_episode(gym.make(ENV_ID, ctr_source=ctr_source), seed=7, policy_seed=3)
    second = run_episode(gym.make(ENV_ID, ctr_source=ctr_source), seed=7, policy_seed=3)
    assert_same(first, second)
    other = run_episode(gym.make(ENV_ID, ctr_source=ctr_source), seed=8, policy_seed=3)
    assert [s[1] for s in other[1:]] != [s[1] for s in first[1:]]



def test_a_replayed_experiment_starts_afresh_every_time(small_csv):
    """Resets reuse each experiment's prepared start (issue 17): an episode must not leak into the next one."""
    env = ABTestEnv(data_path=small_csv, experiment_id="three")
    first_obs, first_info = env.reset(seed=0)
    for arm in (0, 1, 2, 1):
        env.step(arm)
    first_info["action_mask"][:] = False  # what users do with what they are given must not reach the env
    first_info["editors_winner"].append(99)
    obs, info = env.reset(seed=0)
    fresh_obs, fresh_info = ABTestEnv(data_path=small_csv, experiment_id="three").reset(seed=0)
    for key in fresh_obs:
        np.testing.assert_array_equal(obs[key], fresh_obs[key])
    np.testing.assert_array_equal(info["action_mask"], fresh_info["action_mask"])
    assert info["editors_winner"] == fresh_info["editors_winner"] and info["n_arms"] == 3
    assert env.step(0)[0]["arms"][1].tolist() == fresh_obs["arms"][1].tolist()  # arm 1's row is back to the prior

def test_pickled_env_continues_identically():
    env = gym.make(ENV_ID, ctr_source="posterior")
    env.reset(seed=11)
    for arm in (0, 1, 0):
        env.step(arm)
    clone = pickle.loads(pickle.dumps(env))
    for _ in range(2):  # the rest of this episode and a whole new one
        n_arms = env.unwrapped.experiment.n_arms
        for step in range(200):
            a, b = env.step(step % n_arms), clone.step(step % n_arms)
            assert_same(a, b)
            if a[2]:
                break
        assert_same(env.reset(), clone.reset())


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_make_vec(mode):
    envs = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode=mode, steps_per_episode=5)
    try:
        obs, info = envs.reset(seed=[1, 2])
        assert obs["arms"].shape == (2, 14, len(ARM_FEATURES)) and info["action_mask"].shape == (2, 14)
        total = np.zeros(2)
        for _ in range(12):  # past the end of the first episodes: autoreset
            actions = np.zeros(2, dtype=np.int64)
            obs, reward, terminated, truncated, info = envs.step(actions)
            total += reward
            assert envs.observation_space.contains(obs)
        assert np.all(total > 0)
        again = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode="sync", steps_per_episode=5)
        assert_same(again.reset(seed=[1, 2])[0], envs.reset(seed=[1, 2])[0])
        again.close()
    finally:
        envs.close()


# ------------------------------------------------------------------------------------------------ rendering
def test_ansi_render(small_csv):
    env = gym.make(ENV_ID, data_path=small_csv, experiment_id="three", render_mode="ansi")
    env.reset(seed=0)
    env.step(1)
    text = env.render()
    assert "three" in text and "step 1" in text and text.count("\n") == 5 and "  B" in text
    quiet = ABTestEnv(data_path=small_csv)
    quiet.reset(seed=0)
    with pytest.warns(UserWarning, match="render_mode"):
        assert quiet.render() is None


def test_default_config_matches_the_constructor():
    env = ABTestEnv()
    assert env.config == default_config()


# -------------------------------------------------------------------------------- property: any valid policy
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), policy=st.lists(st.integers(0, 13), min_size=1, max_size=50))
def test_bookkeeping_holds_for_any_valid_policy(seed, policy):
    env = _shared_env()
    obs, info = env.reset(seed=seed)
    k = info["n_arms"]
    shown = np.zeros(k, dtype=np.int64)
    clicked = np.zeros(k, dtype=np.int64)
    regret = 0.0
    for step, choice in enumerate(policy * 10):
        arm = choice % k
        obs, reward, terminated, _, step_info = env.step(arm)
        shown[arm] += step_info["impressions"]
        clicked[arm] += int(reward)
        regret += step_info["expected_regret"]
        np.testing.assert_array_equal(obs["arms"][:k, 1], shown)
        np.testing.assert_array_equal(obs["arms"][:k, 2], clicked)
        assert obs["traffic_left"][0] == pytest.approx(1 - shown.sum() / info["traffic"], abs=1e-6)
        if terminated:
            assert shown.sum() == info["traffic"] and "declared_winner" in step_info
            break
    p = env.unwrapped.true_ctr
    assert regret == pytest.approx(float(shown @ (p.max() - p)), rel=1e-9, abs=1e-9)


_ENV_CACHE: list = []


def _shared_env():
    if not _ENV_CACHE:
        _ENV_CACHE.append(gym.make(ENV_ID))
    return _ENV_CACHE[0]


# ------------------------------------------------------------------------------------- sb3-contrib MaskablePPO
def test_maskable_ppo_trains_a_few_steps():
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import get_action_masks

    env = gym.make(ENV_ID, steps_per_episode=16)
    model = MaskablePPO("MultiInputPolicy", env, n_steps=32, batch_size=16, n_epochs=1, seed=0, device="cpu")
    model.learn(64)
    obs, _ = env.reset(seed=0)
    masks = get_action_masks(env)
    action, _ = model.predict(obs, action_masks=masks, deterministic=True)
    assert masks[int(action)]


def test_benchmark_script_runs(capsys, monkeypatch):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "bench_envs.py"
    spec = importlib.util.spec_from_file_location("bench_envs", path)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_envs", bench)  # dataclasses look their module up there
    spec.loader.exec_module(bench)
    assert bench.main(["--seconds", "0.05", "--repeats", "1", "--only", "ab_test"]) == 0
    out = capsys.readouterr().out
    assert "abgym/ABTest-v0 raw env" in out and "abgym/ABTest-v0 gymnasium.make" in out and "CartPole" in out
    with pytest.raises(SystemExit):
        bench.main(["--only", "no_such_env"])
