"""Checkpoints are one unit: a save killed between its files is refused on load, never silently mixed; stale temp
files are removed; an actor-critic run resumes exactly (issue 18, findings 1 and 2)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from abgym import checkpoint
from abgym.checkpoint import CheckpointError

ROOT = Path(__file__).resolve().parents[1]


def test_write_then_read_returns_the_verified_parts(tmp_path):
    main = checkpoint.write(tmp_path / "m.bin", {"m.bin": b"model", "m.extra": b"extra"}, kind="t",
                            metadata={"steps": 3})
    manifest, parts = checkpoint.read(main, kind="t", required=["m.extra"])
    assert parts == {"m.bin": b"model", "m.extra": b"extra"} and manifest["metadata"] == {"steps": 3}
    with pytest.raises(CheckpointError, match="'other' checkpoint|not a 'other'"):
        checkpoint.read(main, kind="other")
    with pytest.raises(CheckpointError, match="no part 'm.missing'"):
        checkpoint.read(main, required=["m.missing"])


def test_a_part_from_another_save_is_refused(tmp_path):
    main = checkpoint.write(tmp_path / "m.bin", {"m.bin": b"old model", "m.norm": b"old norm"}, kind="t")
    (tmp_path / "m.bin").write_bytes(b"new model")  # a later save that died before its manifest
    with pytest.raises(CheckpointError, match="inconsistent.*m.bin"):
        checkpoint.read(main)
    (tmp_path / "m.bin").write_bytes(b"old model")
    (tmp_path / "m.norm").unlink()
    with pytest.raises(CheckpointError, match="incomplete.*m.norm"):
        checkpoint.read(main)


def test_a_file_without_manifest_and_a_broken_manifest_are_refused(tmp_path):
    (tmp_path / "m.bin").write_bytes(b"model")
    with pytest.raises(CheckpointError, match="no manifest"):
        checkpoint.read(tmp_path / "m.bin")
    checkpoint.manifest_path(tmp_path / "m.bin").write_text("{not json")
    with pytest.raises(CheckpointError, match="not an abgym checkpoint manifest"):
        checkpoint.read(tmp_path / "m.bin")
    with pytest.raises(FileNotFoundError):
        checkpoint.read(tmp_path / "absent.bin")


def test_stale_temp_files_of_a_killed_save_are_removed(tmp_path):
    stale = [tmp_path / ".m.bin.abc123.tmp", tmp_path / ".m.norm.xyz.tmp", tmp_path / ".m.bin.manifest.json.q.tmp"]
    for path in stale:
        path.write_bytes(b"half")
    unrelated = tmp_path / ".other.bin.abc.tmp"
    unrelated.write_bytes(b"someone else's")
    checkpoint.write(tmp_path / "m.bin", {"m.bin": b"model", "m.norm": b"norm"}, kind="t")
    assert not any(path.exists() for path in stale) and unrelated.exists()


# A save killed with os._exit (no cleanup, like kill -9) right after its first part is on disk.
KILL_AFTER_FIRST_PART = """
import os, sys
import abgym.checkpoint as checkpoint
real = checkpoint.atomic_write
calls = []
def dying(path, mode="wb"):
    calls.append(path)
    if len(calls) == 2:
        os._exit(9)
    return real(path, mode)
def die_on_second_write():
    checkpoint.atomic_write = dying
"""


def _run_killed(code: str) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(KILL_AFTER_FIRST_PART + code)], env=env,
                          cwd=ROOT, timeout=300).returncode


def _train_cli(logdir, seed, steps=128):
    from abgym.cli import main

    assert main(["train", "--algo", "ppo", "--steps", str(steps), "--n-envs", "1", "--n-steps", "64", "--seed",
                 str(seed), "--logdir", str(logdir), "--run-name", "run", "--no-progress"]) == 0


def test_train_checkpoint_killed_between_model_and_normalizer_is_refused(tmp_path, capsys, one_torch_thread):
    from abgym.cli import main
    from abgym.commands.train import load_policy

    logdir = tmp_path / "runs"
    _train_cli(logdir, seed=0)
    model = logdir / "run" / "model.zip"
    load_policy(model)  # a complete checkpoint loads
    old_model = model.read_bytes()
    # Train again into the same run folder and die after model.zip, before vecnormalize.pkl and the manifest.
    code = _run_killed(f"""
from abgym.cli import main
die_on_second_write()
main(["train", "--algo", "ppo", "--steps", "128", "--n-envs", "1", "--n-steps", "64", "--seed", "1",
      "--logdir", {str(logdir)!r}, "--run-name", "run", "--no-progress"])
""")
    assert code == 9 and model.read_bytes() != old_model  # the new model is there, beside the old normaliser
    with pytest.raises(CheckpointError, match="inconsistent"):
        load_policy(model)
    capsys.readouterr()
    assert main(["evaluate", "--agent", "random", "--model", str(model), "--episodes", "1", "--no-progress"]) == 2
    assert "inconsistent" in capsys.readouterr().err
    # A fresh run folder killed the same way has no manifest at all: refused too.
    fresh = tmp_path / "fresh"
    assert _run_killed(f"""
from abgym.cli import main
die_on_second_write()
main(["train", "--algo", "ppo", "--steps", "64", "--n-envs", "1", "--n-steps", "64",
      "--logdir", {str(fresh)!r}, "--run-name", "run", "--no-progress"])
""") == 9
    with pytest.raises(CheckpointError, match="no manifest"):
        load_policy(fresh / "run" / "model.zip")
    # The next save over it completes the set and removes nothing it should keep.
    _train_cli(logdir, seed=2)
    load_policy(model)
    assert not list((logdir / "run").glob(".*.tmp"))


def test_actor_critic_checkpoint_killed_between_parts_is_refused(tmp_path, one_torch_thread):
    from abgym.agents.actor_critic import ActorCriticAgent

    code = f"""
import sys
sys.path.insert(0, {str(ROOT / 'tests')!r})
from test_actor_critic import ToyMarketingEnv
from abgym.agents.actor_critic import ActorCriticAgent
agent = ActorCriticAgent(ToyMarketingEnv(), "ppo", estimator="both", seed=0, hidden=8, n_steps=64)
agent.learn(64)
agent.save({str(tmp_path / 'agent.zip')!r})
agent.learn(64)
die_on_second_write()  # the second save dies after its zip, before the estimator and the manifest
agent.save({str(tmp_path / 'agent.zip')!r})
"""
    assert _run_killed(code) == 9
    manifest = json.loads(checkpoint.manifest_path(tmp_path / "agent.zip").read_text())
    assert manifest["metadata"]["num_timesteps"] == 64  # the first save's manifest; the zip is the second's
    with pytest.raises(CheckpointError, match="inconsistent"):
        ActorCriticAgent.load(tmp_path / "agent.zip")


class _ActionLog:
    """SB3 callback that records every action taken in training."""

    def __new__(cls):
        from stable_baselines3.common.callbacks import BaseCallback

        class ActionLog(BaseCallback):
            def __init__(self):
                super().__init__()
                self.actions = []

            def _on_step(self):
                self.actions.extend(np.asarray(self.locals["actions"]).ravel().tolist())
                return True

        return ActionLog()


@pytest.mark.parametrize("algorithm, estimator", [("ppo", None), ("ppo", "both"), ("a2c", "both")])
def test_save_load_continue_equals_an_uninterrupted_run(tmp_path, algorithm, estimator, one_torch_thread):
    import torch

    from abgym.agents.actor_critic import ActorCriticAgent
    from test_actor_critic import ToyMarketingEnv

    options = {"n_steps": 128} if algorithm == "ppo" else {}
    agent = ActorCriticAgent(ToyMarketingEnv(), algorithm, estimator=estimator, seed=0, hidden=8, **options)
    agent.learn(256)
    path = agent.save(tmp_path / "agent")
    uninterrupted = _ActionLog()
    agent.learn(256, callback=uninterrupted)

    resumed = ActorCriticAgent.load(path)
    assert resumed.estimator_use == estimator and resumed.settings["hidden"] == 8
    continued = _ActionLog()
    resumed.learn(256, callback=continued)
    assert len(continued.actions) == 256 and continued.actions == uninterrupted.actions
    assert resumed.model.num_timesteps == agent.model.num_timesteps == 512
    for name, tensor in agent.model.policy.state_dict().items():
        assert torch.equal(resumed.model.policy.state_dict()[name], tensor), name
    if estimator:
        assert resumed.reward_estimator.n_seen == agent.reward_estimator.n_seen == 512
        for name, tensor in agent.reward_estimator.model.state_dict().items():
            assert torch.equal(resumed.reward_estimator.model.state_dict()[name], tensor), name


def test_exact_resume_refuses_changed_settings(tmp_path, one_torch_thread):
    from abgym.agents.actor_critic import ActorCriticAgent
    from test_actor_critic import ToyMarketingEnv

    agent = ActorCriticAgent(ToyMarketingEnv(), "ppo", estimator=None, seed=0, hidden=8, n_steps=64)
    path = agent.save(tmp_path / "agent")
    with pytest.raises(ValueError, match="saved without a reward estimator"):
        ActorCriticAgent.load(path, estimator="both")
