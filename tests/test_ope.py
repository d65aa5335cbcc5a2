"""Off-policy estimators on synthetic logs with a known answer, against obp's own, and on the Open Bandit Dataset."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from scipy import integrate, stats

from abgym.cli import main
from abgym.ope import (ESTIMATORS, RewardModel, at_logged_position, bernoulli_ts_action_dist, estimate_policy_value,
                       greedy_action_dist, uniform_action_dist)
from abgym.ope.datasets import synthetic_log, true_policy_value
from abgym.ope.estimators import refit_bootstrap


@pytest.fixture(scope="module")
def synthetic():
    return synthetic_log(n_rounds=20_000, n_actions=5, len_list=2, seed=1)


def _target_policy(synthetic):
    """Mostly each user's best item, with some uniform exploration: far from the logging policy, worth more."""
    log = synthetic.log
    best = greedy_action_dist(synthetic.expected_reward[:, :, 0])
    mixed = 0.7 * best + 0.3 / log.n_actions
    return np.repeat(mixed[:, :, None], log.len_list, axis=2)


def test_each_estimator_recovers_a_known_value(synthetic):
    log, target = synthetic.log, _target_policy(synthetic)
    truth = true_policy_value(synthetic.expected_reward, target, log.position)
    behavior_value = true_policy_value(synthetic.expected_reward, synthetic.behavior_dist, log.position)
    assert abs(truth - behavior_value) > 0.01, "the test needs a target policy whose value differs from the log's"
    estimates = estimate_policy_value(log, target, ESTIMATORS, synthetic.expected_reward, n_bootstrap=500, seed=0)
    for name, estimate in estimates.items():
        assert estimate.ci[0] <= truth <= estimate.ci[1], (name, estimate, truth)
        assert abs(estimate.value - truth) < 3 * estimate.se + 1e-9, (name, estimate, truth)
    # With the true click probabilities as its model, the direct method is the truth itself.
    assert estimates["dm"].value == pytest.approx(truth, abs=1e-12)


def test_dr_corrects_a_wrong_reward_model_and_dm_does_not(synthetic):
    log, target = synthetic.log, _target_policy(synthetic)
    truth = true_policy_value(synthetic.expected_reward, target, log.position)
    wrong = np.full((log.n_rounds, log.n_actions), 0.05)  # far below every true click rate (0.05-0.5)
    estimates = estimate_policy_value(log, target, ("ips", "dm", "dr"), wrong, ci="normal")
    assert estimates["dm"].value == pytest.approx(0.05)
    assert estimates["dr"].ci[0] <= truth <= estimates["dr"].ci[1]
    # With a zero model DR is IPS exactly.
    zero = estimate_policy_value(log, target, ("ips", "dr"), np.zeros_like(wrong), ci="normal")
    assert zero["dr"].value == pytest.approx(zero["ips"].value, abs=1e-15)


def test_the_logging_policy_is_valued_at_its_own_mean_reward(synthetic):
    log = synthetic.log
    estimates = estimate_policy_value(log, synthetic.behavior_dist, ("ips", "snips"), ci="normal")
    assert estimates["ips"].value == pytest.approx(log.reward.mean(), abs=1e-12)
    assert estimates["snips"].value == pytest.approx(log.reward.mean(), abs=1e-12)


def test_ips_normal_intervals_cover_about_95_percent_of_the_time():
    covered = 0
    for seed in range(40):
        data = synthetic_log(n_rounds=2_000, n_actions=4, len_list=1, seed=seed)
        target = greedy_action_dist(data.expected_reward[:, :, 0])  # the best item for each user
        truth = true_policy_value(data.expected_reward, target, data.log.position)
        low, high = estimate_policy_value(data.log, target, ("ips",), ci="normal")["ips"].ci
        covered += low <= truth <= high
    assert 33 <= covered <= 40  # 95 % of 40 is 38; a broken interval (too narrow or biased) falls well below


def test_cross_fitted_reward_model_and_refit_intervals(synthetic):
    log, target = synthetic.log, _target_policy(synthetic)
    q = RewardModel(n_folds=2, seed=0).fit_predict(log)
    assert q.shape == (log.n_rounds, log.n_actions) and np.all((q > 0) & (q < 1))
    # The model ranks items: its predictions correlate with the true click probabilities.
    true_q = at_logged_position(synthetic.expected_reward, log.position)
    assert np.corrcoef(q.ravel(), true_q.ravel())[0, 1] > 0.8
    rows = estimate_policy_value(log, target, ("dm",), q, n_bootstrap=200, seed=0)["dm"]
    refits = refit_bootstrap(log, target, RewardModel(n_folds=2, seed=0), ("dm",), n_refits=20, seed=0)["dm"]
    # Refitting the model adds its own uncertainty: the refit spread is wider than the rows-only spread.
    assert refits.std() > rows.replicates.std()


def test_bad_policies_and_arguments_are_rejected(synthetic):
    log = synthetic.log
    with pytest.raises(ValueError, match="sum to 1"):
        estimate_policy_value(log, np.full((1, log.n_actions, log.len_list), 0.5), ("ips",))
    with pytest.raises(ValueError, match="must be"):
        estimate_policy_value(log, np.ones((7, log.n_actions)) / log.n_actions, ("ips",))
    with pytest.raises(ValueError, match="dm and dr need estimated_rewards"):
        estimate_policy_value(log, uniform_action_dist(log.n_actions, log.len_list), ("dm",))
    with pytest.raises(ValueError, match="unknown estimator"):
        estimate_policy_value(log, uniform_action_dist(log.n_actions, log.len_list), ("switch",))
    with pytest.raises(ValueError, match="ci must be"):
        estimate_policy_value(log, uniform_action_dist(log.n_actions, log.len_list), ("ips",), ci="exact")


def test_bts_action_probabilities_match_the_exact_two_item_answer():
    alpha, beta = np.array([3.0, 2.0]), np.array([40.0, 45.0])
    # P(X0 > X1) for independent Beta draws, by numerical integration.
    exact, _ = integrate.quad(lambda x: stats.beta.pdf(x, alpha[0], beta[0]) * stats.beta.cdf(x, alpha[1], beta[1]),
                              0, 1)
    dist = bernoulli_ts_action_dist(alpha, beta, len_list=2, n_sim=200_000, seed=0)
    assert dist.shape == (1, 2, 2)
    assert dist[0, 0, 0] == pytest.approx(exact, abs=0.005)
    np.testing.assert_allclose(dist[0].sum(axis=0), 1.0)  # each slot holds one item
    np.testing.assert_allclose(dist[0].sum(axis=1), 1.0)  # with two items and two slots, each item is in one
    np.testing.assert_array_equal(dist, bernoulli_ts_action_dist(alpha, beta, len_list=2, n_sim=200_000, seed=0))


def test_point_estimates_agree_with_obps_estimators(synthetic):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obp_ope = pytest.importorskip("obp.ope", reason="obp's estimators need mypy-extensions (the dev extra)")
    log, target = synthetic.log, _target_policy(synthetic)
    q = RewardModel(seed=0).fit_predict(log)
    ours = estimate_policy_value(log, target, ESTIMATORS, q, n_bootstrap=1000, seed=0)
    q3 = np.repeat(q[:, :, None], log.len_list, axis=2)
    arguments = dict(reward=log.reward.astype(float), action=log.action, position=log.position, pscore=log.pscore,
                     action_dist=target, estimated_rewards_by_reg_model=q3)
    theirs = {"ips": obp_ope.InverseProbabilityWeighting(), "snips": obp_ope.SelfNormalizedInverseProbabilityWeighting(),
              "dm": obp_ope.DirectMethod(), "dr": obp_ope.DoublyRobust()}
    for name, estimator in theirs.items():
        assert ours[name].value == pytest.approx(estimator.estimate_policy_value(**arguments), rel=1e-10), name
        interval = estimator.estimate_interval(**arguments, n_bootstrap_samples=1000, random_state=0)
        low, high = interval["95.0% CI (lower)"], interval["95.0% CI (upper)"]
        width = high - low
        assert abs(ours[name].ci[0] - low) < 0.15 * width and abs(ours[name].ci[1] - high) < 0.15 * width, name


@pytest.mark.parametrize("campaign", ["all", "men", "women"])
def test_bts_from_random_on_the_real_logs(campaign):
    from abgym.studies.off_policy import validate_bts_from_random

    result = validate_bts_from_random(campaign, n_sim=20_000, n_bootstrap=300, seed=0)
    truth = result["on_policy"]["value"]
    assert result["data"]["random_rounds"] == result["data"]["bts_rounds"] == 10_000
    assert truth == result["data"]["bts_clicks"] / 10_000
    assert set(result["estimators"]) == set(ESTIMATORS)
    for name in ("ips", "snips", "dr"):  # the unbiased ones: the on-policy value falls in their 95 % intervals
        row = result["estimators"][name]
        assert row["ci"][0] <= truth <= row["ci"][1], (campaign, name, row, truth)
        assert row["relative_error"] == pytest.approx(abs(row["estimate"] - truth) / truth)
        assert 0.001 < row["estimate"] < 0.02


def test_ope_validate_command_writes_the_issue_json(tmp_path, capsys):
    path = tmp_path / "validate.json"
    code = main(["ope", "validate", "--campaign", "women", "--n-sim", "20000", "--n-bootstrap", "200",
                 "--model-refits", "0", "--json", str(path)])
    assert code == 0
    assert "| women | dr |" in capsys.readouterr().out
    payload = json.loads(path.read_text())
    assert isinstance(payload["on_policy"]["value"], float)
    for name in ESTIMATORS:
        row = payload["estimators"][name]
        assert set(row) >= {"estimate", "ci", "relative_error"} and len(row["ci"]) == 2


def test_ope_commands_report_bad_input_in_one_line(tmp_path, capsys):
    assert main(["ope", "validate", "--data-path", str(tmp_path / "missing")]) == 2
    assert "abgym ope validate: error: data_path" in capsys.readouterr().err
    assert main(["ope", "validate", "--model-refits", "5"]) == 2
    assert "--model-refits 0 or >= 100" in capsys.readouterr().err


def test_ope_evaluate_writes_table_and_plot(tmp_path, capsys):
    code = main(["ope", "evaluate", "--data", "obd", "--policy", "egreedy", "random", "--n-bootstrap", "200",
                 "--model-refits", "0", "--replay-seeds", "1", "--out", str(tmp_path)])
    assert code == 0
    assert "| egreedy |" in capsys.readouterr().out
    for name in ("agents.csv", "agents.md", "agents.json", "agents.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert "OpenBanditReplay-v0" in (tmp_path / "agents.md").read_text()
    rows = json.loads((tmp_path / "agents.json").read_text())["rows"]
    random_ips = next(r for r in rows if r["policy"] == "random" and r["estimator"] == "ips")
    support = json.loads((tmp_path / "agents.json").read_text())["support"]
    assert support["random"]["effective_rows"] == pytest.approx(3000)
    assert support["random"]["supported_clicks"] == support["random"]["favoured_clicks"] == 10
    # On the uniform-random log, IPS of the uniform policy is the log's own click rate.
    assert random_ips["estimate"] == pytest.approx(json.loads((tmp_path / "agents.json").read_text())
                                                   ["test_on_policy_ctr"])


def test_agents_become_valid_policies_offline_and_online(one_torch_thread):
    from abgym.data.open_bandit import load_open_bandit
    from abgym.studies import off_policy

    train, test = load_open_bandit("random", "men").split_by_time(0.3)
    test = test.subset(slice(0, 300))
    for name in off_policy.AGENT_POLICIES:
        agent = off_policy.make_agent(name, seed=0)
        off_policy.train_offline(agent, train)
        assert agent.t == train.n_rounds
        dist = off_policy.agent_action_dist(agent, test, n_samples=16)
        assert dist.shape == (300, test.n_actions) and np.allclose(dist.sum(axis=1), 1.0), name
        if name == "linucb":
            assert set(np.unique(dist)) <= {0.0, 1.0}  # deterministic
    model = off_policy.train_ppo_on_replay(train, steps=256, seed=0)
    probs = off_policy.ppo_action_dist(model, test)
    assert probs.shape == (300, test.n_actions) and np.allclose(probs.sum(axis=1), 1.0) and probs.min() > 0
    rows = off_policy.replay_agents(["egreedy", "bts"], campaign="men", seeds=[0])
    for row in rows:
        assert row["events"] == 10_000 and 0 < row["matches"] < 1_000 and row["clicks"] <= row["matches"]
    assert "| bts | 1 | 10000 |" in off_policy.replay_table(rows)
