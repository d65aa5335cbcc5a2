"""abgym.evaluate and `abgym evaluate` on every env: every registered agent name or an SB3 model file, with the
metrics each env's step info supports (regret against the oracle, CTR, conversion, revenue, NDCG@10)."""
from __future__ import annotations

import numpy as np
import pytest

import abgym
from abgym.agents.bandits import ThompsonSampling
from abgym.agents.registry import AGENTS, CONTEXTUAL
from abgym.cli import main

PM = "abgym/PersonalizedMarketing-v0"
RPP = "abgym/PromptPersonalization-v0"
RPP_FAST = {"dataset": "synthetic", "recommender": "synthetic", "embedder": "hashing"}
NAMES = [name for name in AGENTS if name != "thompson-ranker"]  # the ranker prior has its own tests


@pytest.fixture(scope="module")
def marketing():
    return abgym.evaluate(NAMES, PM, episodes=2, seeds=[0, 1], env_kwargs={"horizon": 100})


def test_every_agent_runs_on_the_marketing_env_with_its_metrics(marketing):
    summary, episodes = marketing.summary, marketing.episodes
    assert summary["agent"].tolist() == NAMES and (summary["episodes"] == 4).all()
    assert (episodes["steps"] == 100).all()
    for column in ("regret", "relative_regret", "best_arm_share", "ctr", "conversion_rate", "revenue"):
        assert np.isfinite(episodes[column]).all(), column
    assert (episodes["regret"] >= -1e-9).all() and episodes["ctr"].between(0, 1).all()
    assert episodes["ndcg@10"].isna().all()  # no ranking in this env
    # CTR is clicks per impression, and the intervals hold their means.
    np.testing.assert_allclose(episodes["ctr"], episodes["clicks"] / episodes["traffic"])
    assert (summary["regret_ci_low"] <= summary["regret_mean"]).all()
    assert (summary["regret_mean"] <= summary["regret_ci_high"]).all()
    # The contextual agents learn who likes what: less regret than showing variants at random.
    regret = summary.set_index("agent")["regret_mean"]
    assert regret["linucb"] < regret["random"]
    assert "CTR %" in marketing.to_markdown() and "NDCG@10" not in marketing.to_markdown()


def test_prompt_env_runs_the_ab_agents_over_its_prompt_combinations():
    names = [name for name in NAMES if name not in CONTEXTUAL]
    result = abgym.evaluate(names, RPP, episodes=3, seeds=[0], env_kwargs=RPP_FAST)
    episodes = result.episodes
    assert episodes["ndcg@10"].between(0, 1).all() and (episodes["steps"] == 3).all()
    assert episodes["regret"].isna().all() and episodes["ctr"].isna().all()  # no oracle, no clicks
    assert (episodes["n_arms"] == 5 * 3 * 9 * 5).all()  # every prompt is an arm
    assert "NDCG@10" in result.to_markdown()


@pytest.mark.parametrize("name", CONTEXTUAL)
def test_contextual_agents_run_context_free_where_there_is_no_user_context(name):
    """On ABTest-v0 and the prompt env the linear bandits see the bias alone: per-arm ridge means, still learning."""
    abtest = abgym.evaluate(["random", name], "abgym/ABTest-v0", episodes=8, seeds=[0], env_kwargs={"split": "test"})
    regret = abtest.summary.set_index("agent")["regret_mean"]
    assert np.isfinite(regret[name]) and regret[name] < regret["random"]
    prompts = abgym.evaluate(name, RPP, episodes=2, seeds=[0], env_kwargs=RPP_FAST)
    assert prompts.episodes["ndcg@10"].between(0, 1).all()


def test_agent_reset_seed_keeps_learning_across_episodes():
    kept, fresh = ThompsonSampling(), ThompsonSampling()
    kept.name, fresh.name = "kept", "fresh"
    abgym.evaluate(kept, PM, episodes=3, env_kwargs={"horizon": 20}, agent_reset="seed")
    abgym.evaluate(fresh, PM, episodes=3, env_kwargs={"horizon": 20}, agent_reset="episode")
    assert kept.t == 60 and fresh.t == 20
    with pytest.raises(ValueError, match="agent_reset"):
        abgym.evaluate("random", PM, episodes=1, agent_reset="never")


def test_auto_reset_starts_afresh_on_each_abtest_experiment():
    agent = ThompsonSampling()
    result = abgym.evaluate(agent, "abgym/ABTest-v0", episodes=2, env_kwargs={"split": "test"})
    assert agent.t == result.episodes["steps"].iloc[-1]  # reset at the second experiment


@pytest.mark.parametrize("env_id, settings", [(PM, {"horizon": 50}), (RPP, RPP_FAST)])
def test_an_sb3_model_file_is_evaluated_on_the_env_it_was_trained_on(env_id, settings, tmp_path, one_torch_thread):
    from stable_baselines3 import PPO

    venv = abgym.make_sb3_vec_env(env_id, 2, seed=0, **settings)
    model = PPO("MultiInputPolicy", venv, n_steps=16, batch_size=32, n_epochs=1, seed=0, verbose=0).learn(32)
    model.save(tmp_path / "model.zip")
    result = abgym.evaluate(str(tmp_path / "model.zip"), env_id, episodes=2, env_kwargs=settings)
    assert result.summary["agent"].tolist() == [f"ppo:{tmp_path.name}"]
    metric = "regret" if env_id == PM else "ndcg@10"
    assert np.isfinite(result.episodes[metric]).all()


def test_cli_evaluates_marketing_agents_and_names_unknown_envs(capsys):
    code = main(["evaluate", "--env", PM, "--agent", "random", "linucb", "classical-ab", "--episodes", "1",
                 "--env-arg", "horizon=30", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "linucb" in out and "CTR %" in out and "regret" in out
    assert main(["evaluate", "--env", "abgym/Nope-v0", "--agent", "random", "--no-progress"]) == 2
    assert "registered abgym ids" in capsys.readouterr().err


def _imports(module_path) -> set[str]:
    import ast
    from pathlib import Path

    tree = ast.parse(Path(module_path).read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_no_import_circles_between_the_evaluator_its_logs_and_the_commands():
    import abgym.commands.evaluate as evaluate_command
    import abgym.commands.train as train_command
    import abgym.evaluation as evaluation
    import abgym.tensorboard as tensorboard

    assert "abgym.commands.train" not in _imports(evaluate_command.__file__)
    assert "abgym.commands.evaluate" in _imports(train_command.__file__)  # one way only
    assert "abgym.evaluation" not in _imports(tensorboard.__file__)
    assert not any(name.startswith("abgym.commands") for name in _imports(evaluation.__file__))
