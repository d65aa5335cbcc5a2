"""Every script in examples/ runs, at a tiny budget, and does what its docstring says."""
from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_example_is_tested():
    tested = {"sb3_ppo_marketing", "bandits_vs_ppo", "pettingzoo_rpp", "rllib_ppo_journey"}
    assert {path.stem for path in EXAMPLES.glob("*.py")} == tested


def test_sb3_ppo_marketing_logs_env_scalars(tmp_path, one_torch_thread, capsys):
    from abgym.tensorboard import read_scalars

    assert load("sb3_ppo_marketing").main(["--steps", "2048", "--logdir", str(tmp_path)]) == 0
    scalars = read_scalars(tmp_path)
    assert {"env/reward", "env/regret", "env/ctr", "env/revenue"} <= set(scalars)
    assert "trained PPO for 2048 steps" in capsys.readouterr().out


def test_bandits_vs_ppo_prints_a_paired_table(one_torch_thread, capsys):
    assert load("bandits_vs_ppo").main(["--ppo-steps", "1024", "--episodes", "1", "--seeds", "0", "1",
                                         "--horizon", "100"]) == 0
    out = capsys.readouterr().out
    for agent in ("random", "classical-ab", "thompson", "linucb", "lints", "ppo"):
        assert f"| {agent} |" in out
    assert "regret" in out and "CTR %" in out


def test_pettingzoo_rpp_learns_the_synthetic_best_prompt(capsys):
    assert load("pettingzoo_rpp").main(["--episodes", "200"]) == 0
    out = capsys.readouterr().out
    first, second = (float(x) for x in re.findall(r"half (\d\.\d+)", out))
    greedy, best = (ast.literal_eval(x) for x in re.findall(r"\(\d+, \d+, \d+, \d+\)", out))
    assert second > first  # the agents learn
    assert sum(a == b for a, b in zip(greedy, best)) >= 3, out  # and find (nearly) the known best prompt


@pytest.mark.parametrize("name", ["sb3_ppo_marketing", "bandits_vs_ppo", "pettingzoo_rpp"])
def test_examples_have_a_usage_docstring(name):
    assert f"python examples/{name}.py" in load(name).__doc__


def test_rllib_ppo_journey_trains_and_reports_lifetime_reward(capsys):
    pytest.importorskip("ray")
    assert load("rllib_ppo_journey").main(["--iterations", "2", "--max-visits", "8", "--batch", "400"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("iteration")]
    assert len(lines) == 2 and "800.0 env steps" in lines[1] and "lifetime reward per user" in lines[1]
