"""The `abgym evaluate`, `train` and `demo` commands, end to end on the shipped Upworthy data."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from abgym.cli import build_parser, main
from abgym.evaluation import SUMMARY_COLUMNS
from abgym.tensorboard import EPISODE_TAGS, read_scalars


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("evaluate", "train", "demo"):
        assert command in out


def test_evaluate_prints_the_table_and_writes_csv_and_markdown(tmp_path, capsys):
    csv, markdown, episodes = tmp_path / "summary.csv", tmp_path / "summary.md", tmp_path / "episodes.csv"
    code = main([
        "evaluate", "--env", "abgym/ABTest-v0", "--agent", "thompson", "ab-test", "--episodes", "3",
        "--seeds", "0", "1", "--split", "test", "--csv", str(csv), "--markdown", str(markdown),
        "--episodes-csv", str(episodes), "--no-progress",
    ])
    assert code == 0
    out = capsys.readouterr().out
    assert "thompson" in out and "ab-test" in out and "winner accuracy" in out
    summary = pd.read_csv(csv)
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert summary["agent"].tolist() == ["thompson", "ab-test"]
    assert (summary["episodes"] == 6).all()
    assert markdown.read_text().startswith("| agent |")
    assert len(pd.read_csv(episodes)) == 12


@pytest.mark.parametrize(
    "argv, message",
    [
        (["evaluate", "--agent", "nonsense", "--episodes", "1"], "unknown agent"),
        (["evaluate", "--env-arg", "bogus=1", "--episodes", "1", "--no-progress"], "bogus"),
        (["evaluate", "--data", "/no/such/file.csv", "--episodes", "1", "--no-progress"], "file.csv"),
    ],
)
def test_evaluate_bad_input_is_a_clear_error(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_evaluate_rejects_bad_option_values(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["evaluate", "--episodes", "zero"])
    assert "whole number" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--algo", "dqn"])


def test_train_ppo_then_evaluate_the_saved_model(tmp_path, capsys):
    logdir = tmp_path / "runs"
    code = main([
        "train", "--env", "abgym/ABTest-v0", "--algo", "ppo", "--steps", "256", "--n-envs", "2", "--n-steps", "64",
        "--logdir", str(logdir), "--no-progress",
    ])
    assert code == 0
    run = logdir / "ppo_seed0"
    assert (run / "model.zip").is_file() and (run / "vecnormalize.pkl").is_file()
    from abgym.commands.train import load_policy

    assert type(load_policy(run / "model.zip").model).__name__ == "MaskablePPO"
    scalars = read_scalars(run)
    for tag in EPISODE_TAGS + ("rollout/ep_rew_mean", "train/loss"):
        assert tag in scalars, (tag, sorted(scalars))
    # The same two finished episodes (one per env) as SB3's Monitor: raw clicks, not the normalised reward.
    assert scalars["episode/reward"][-1] == pytest.approx(scalars["rollout/ep_rew_mean"][-1], rel=1e-4)
    capsys.readouterr()

    code = main(["evaluate", "--agent", "random", "--model", str(run / "model.zip"), "--episodes", "2",
                 "--split", "test", "--no-progress"])
    assert code == 0
    assert "ppo:ppo_seed0" in capsys.readouterr().out


def test_train_a2c_without_masking_runs(tmp_path):
    code = main(["train", "--algo", "a2c", "--steps", "200", "--n-envs", "2", "--logdir", str(tmp_path),
                 "--no-progress"])
    assert code == 0
    assert (tmp_path / "a2c_seed0" / "model.zip").is_file()


def test_evaluate_a_missing_model_is_a_clear_error(tmp_path, capsys):
    assert main(["evaluate", "--model", str(tmp_path / "none.zip"), "--episodes", "1"]) == 2
    assert "abgym train" in capsys.readouterr().err
    not_a_model = tmp_path / "model.zip"
    not_a_model.write_text("hello")
    assert main(["evaluate", "--model", str(not_a_model), "--episodes", "1"]) == 2
    assert "not a model saved by `abgym train`" in capsys.readouterr().err


def test_demo_writes_every_output(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--episodes", "2", "--seeds", "0", "1", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "abgym demo took" in printed and "thompson" in printed
    summary = pd.read_csv(out / "summary.csv")
    assert summary["agent"].tolist() == ["random", "ab-test", "msprt", "epsilon-greedy", "ucb1", "thompson"]
    assert (out / "summary.md").read_text().count("\n") == 2 + 6
    assert (out / "regret.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(pd.read_csv(out / "episodes.csv")) == 6 * 2 * 2
    assert set(EPISODE_TAGS) <= set(read_scalars(out / "tensorboard" / "thompson"))
    # The journey headroom beside the A/B baselines: four policies, the long-term oracle on top.
    assert "CustomerJourney-v0 headroom" in printed and "longterm_oracle" in printed
    headroom = json.loads((out / "headroom.json").read_text())
    ltv = {name: entry["ltv_mean"] for name, entry in headroom["policies"].items()}
    assert ltv["longterm_oracle"] > ltv["myopic_oracle"] > ltv["best_fixed"]
