"""abgym.evaluate on the real ABTest-v0: tidy tables, paired seeds, determinism, intervals and TensorBoard logs."""
from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import abgym
from abgym.agents.bandits import RandomAgent
from abgym.evaluation import (
    CURVE_POINTS,
    EPISODE_COLUMNS,
    SUMMARY_COLUMNS,
    clustered_wilson_ci,
    curve_band,
    mean_ci,
    summary_markdown,
    wilson_ci,
)
from abgym.tensorboard import EPISODE_TAGS, read_scalars

TEST_SPLIT = {"split": "test"}


@pytest.fixture(scope="module")
def result():
    return abgym.evaluate(["random", "thompson"], "abgym/ABTest-v0", episodes=4, seeds=[0, 1], env_kwargs=TEST_SPLIT)


def test_tables_have_the_documented_columns(result):
    assert list(result.episodes.columns) == EPISODE_COLUMNS
    assert list(result.summary.columns) == SUMMARY_COLUMNS
    assert len(result.episodes) == 2 * 4 * 2
    assert result.summary["agent"].tolist() == ["random", "thompson"]
    assert (result.summary["episodes"] == 8).all()


def test_metrics_are_consistent(result):
    episodes = result.episodes
    assert (episodes["regret"] >= -1e-9).all()
    assert episodes["best_arm_share"].between(0, 1).all()
    assert episodes["relative_regret"].between(0, 1).all()
    assert (episodes["steps"] >= 90).all() and (episodes["steps"] <= 101).all()  # about 100 steps per episode
    assert (episodes["winner_correct"] <= episodes["declared"]).all()
    for name, curves in result.curves.items():
        assert curves.shape == (8, CURVE_POINTS)
        assert np.all(np.diff(curves, axis=1) >= -1e-9)  # cumulative regret never decreases
        np.testing.assert_allclose(curves[:, -1], episodes.loc[episodes.agent == name, "regret"].to_numpy())


def test_agents_meet_the_same_experiments(result):
    by_agent = {name: group.sort_values(["seed", "episode"]) for name, group in result.episodes.groupby("agent")}
    assert by_agent["random"]["test_id"].tolist() == by_agent["thompson"]["test_id"].tolist()
    assert by_agent["random"]["traffic"].tolist() == by_agent["thompson"]["traffic"].tolist()


def test_same_seeds_same_table(result):
    again = abgym.evaluate(["random", "thompson"], "abgym/ABTest-v0", episodes=4, seeds=[0, 1], env_kwargs=TEST_SPLIT)
    columns = [c for c in EPISODE_COLUMNS if c != "seconds"]
    pd.testing.assert_frame_equal(result.episodes[columns], again.episodes[columns])


def test_thompson_loses_fewer_clicks_than_uniform_on_held_out_experiments():
    result = abgym.evaluate(["random", "thompson"], episodes=30, seeds=[0], env_kwargs=TEST_SPLIT)
    regret = result.episodes.pivot_table(index="episode", columns="agent", values="regret")
    assert regret["thompson"].mean() < 0.7 * regret["random"].mean()
    assert stats.wilcoxon(regret["thompson"], regret["random"], alternative="less").pvalue < 0.01


def test_every_experiment_of_a_users_own_file(tmp_path):
    from abgym.data.upworthy import DEFAULT_PATH

    packages = pd.read_csv(DEFAULT_PATH)
    ids = packages["clickability_test_id"].drop_duplicates().iloc[:5]
    small = tmp_path / "five.csv.gz"
    with gzip.open(small, "wt") as handle:
        packages[packages["clickability_test_id"].isin(ids)].to_csv(handle, index=False)
    result = abgym.evaluate("ucb1", episodes="all", seeds=[3], env_kwargs={"data_path": str(small)})
    assert sorted(result.episodes["test_id"]) == sorted(ids)


def test_logdir_gets_the_episode_scalars(tmp_path):
    abgym.evaluate("epsilon-greedy", episodes=3, seeds=[0], env_kwargs=TEST_SPLIT, logdir=tmp_path)
    scalars = read_scalars(tmp_path / "epsilon-greedy")
    for tag in EPISODE_TAGS + ("episode/relative_regret",):
        assert len(scalars[tag]) == 3, tag
    assert (tmp_path / "epsilon-greedy" / "progress.csv").is_file()


def test_bad_policies_are_rejected_clearly():
    with pytest.raises(ValueError, match="known agents"):
        abgym.evaluate("nonsense", episodes=1)
    with pytest.raises(TypeError, match="cannot evaluate"):
        abgym.evaluate(42, episodes=1)
    with pytest.raises(ValueError, match="unique"):
        abgym.evaluate([RandomAgent(), RandomAgent()], episodes=1)
    with pytest.raises(ValueError, match="at least one episode"):
        abgym.evaluate("random", episodes=0)


def test_mean_ci_matches_scipy_without_clusters():
    values = np.random.default_rng(0).normal(3, 2, size=40)
    mean, low, high = mean_ci(values)
    expected = stats.t.interval(0.95, 39, loc=values.mean(), scale=stats.sem(values))
    assert mean == pytest.approx(values.mean())
    assert (low, high) == pytest.approx(expected)


def test_clustered_interval_is_wider_for_replays_of_the_same_experiments():
    rng = np.random.default_rng(1)
    experiment_effect = rng.normal(0, 5, size=30)
    values = np.concatenate([experiment_effect + rng.normal(0, 1, 30) for _ in range(3)])  # 3 seeds each
    clusters = np.tile(np.arange(30), 3)
    _, low, high = mean_ci(values)
    _, c_low, c_high = mean_ci(values, clusters=clusters)
    assert (c_high - c_low) > 1.4 * (high - low)
    outcomes = np.tile(rng.random(30) < 0.6, 3)  # the same verdict on every replay of an experiment
    _, w_low, w_high = clustered_wilson_ci(outcomes, clusters)
    _, i_low, i_high = wilson_ci(outcomes.sum(), len(outcomes))
    assert (w_high - w_low) > 1.4 * (i_high - i_low)


def test_wilson_interval_known_value():
    p, low, high = wilson_ci(0, 10)
    assert p == 0 and low == 0 and high == pytest.approx(0.2775, abs=1e-4)


def test_markdown_table(result):
    text = summary_markdown(result.summary)
    lines = text.strip().splitlines()
    assert lines[0].startswith("| agent | episodes | reward | regret | regret % |")
    assert len(lines) == 2 + 2
    assert "thompson" in lines[-1] and "[" in lines[-1]


def test_curve_band_matches_mean_ci_at_every_point():
    rng = np.random.default_rng(2)
    curves = np.cumsum(rng.random((12, 5)), axis=1)
    clusters = np.repeat(np.arange(4), 3)
    mean, half = curve_band(curves, clusters)
    for point in range(5):
        m, low, high = mean_ci(curves[:, point], clusters=clusters)
        assert mean[point] == pytest.approx(m) and half[point] == pytest.approx((high - low) / 2)


@pytest.mark.parametrize("test_share", [0.5, 1.0])
def test_fixed_horizon_test_reads_the_traffic_left_from_the_real_env(test_share):
    import gymnasium

    from abgym.agents.ab_testing import FixedHorizonABTest
    from abgym.evaluation import run_episode

    env = gymnasium.make("abgym/ABTest-v0", split="test")
    agent = FixedHorizonABTest(test_share=test_share)
    tracker, reset_info, _, _ = run_episode(agent, env, env_seed=5, agent_seed=5)
    assert agent.concluded
    assert abs(agent.stopped_at - test_share * reset_info["horizon"]) <= 1
    assert tracker.steps == reset_info["horizon"]


def test_fixed_horizon_test_without_any_progress_signal_is_a_clear_error():
    from abgym.agents.ab_testing import FixedHorizonABTest

    agent = FixedHorizonABTest()
    agent.reset(2, {}, seed=0)
    with pytest.raises(ValueError, match="traffic"):
        agent.update(0, 1, None, {"impressions": 10})
