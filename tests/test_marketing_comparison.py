"""The personalized-marketing comparison: its metrics, its options, and the --quick run end to end (as in CI)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from abgym.cli import main as abgym_main
from abgym.commands.marketing import load_experiment

experiment = load_experiment()


def test_recovery_measures_the_regret_bump_after_a_shift():
    regret = np.full(1000, 0.01)
    regret[500:560] = 0.3  # 60 bad arrivals after the shift at 500
    post_shift, arrivals = experiment.recovery(regret, [500], window=20)
    assert post_shift == pytest.approx(0.3)
    assert 40 <= arrivals <= 60
    never = np.concatenate([np.full(500, 0.01), np.full(500, 0.2)])
    assert experiment.recovery(never, [500], window=20)[1] == 500  # censored at the end of the run
    assert np.isnan(experiment.recovery(regret, [], window=20)[0])


def test_mean_interval_is_a_t_interval():
    mean, half = experiment.mean_interval([1.0, 2.0, 3.0, np.nan])
    assert mean == pytest.approx(2.0)
    assert half == pytest.approx(4.302652729911275 * 1.0 / np.sqrt(3))


def test_prior_variants_only_where_they_apply():
    config = experiment.ComparisonConfig(agents=["classical_ab", "linucb", "ppo"], prior="auto")
    assert experiment.agent_variants(config, prior_available=True) == [
        ("classical_ab", False), ("linucb", False), ("linucb", True), ("ppo", False)]
    assert experiment.agent_variants(config, prior_available=False) == [
        ("classical_ab", False), ("linucb", False), ("ppo", False)]


def test_bad_options_are_named(capsys):
    assert abgym_main(["marketing", "compare", "--env-config", "{nope", "--out", "unused"]) == 2
    assert "--env-config is not valid JSON" in capsys.readouterr().err
    assert abgym_main(["marketing", "compare", "--seeds", "0", "--out", "unused"]) == 2
    assert "--seeds must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        abgym_main(["marketing", "compare", "--agents", "dqn"])


@pytest.mark.slow
def test_quick_comparison_runs_end_to_end(tmp_path):
    """The CI version of the experiment: every main agent, drift off and on, 2 seeds, through the CLI."""
    out = tmp_path / "quick"
    assert abgym_main(["marketing", "compare", "--quick", "--prior", "off", "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "per_run.csv").open()))
    assert {row["agent"] for row in rows} == set(experiment.MAIN_AGENTS)
    assert {row["drift"] for row in rows} == {"off", "on"} and {row["seed"] for row in rows} == {"100", "101"}
    assert all(float(row["cumulative_regret"]) >= 0 for row in rows)
    assert all(int(row["arrivals"]) == 600 for row in rows)
    for name in ("summary.csv", "summary.md", "curves.npz", "regret_drift-on.png", "regret_drift-off.png",
                 "reward.png"):
        assert (out / name).stat().st_size > 0, name
    runs = list((out / "runs").rglob("events.out.tfevents.*"))
    assert {Path(run).parent.parent.name for run in runs} >= set(experiment.MAIN_AGENTS)
    # Learning agents beat uniform exploration: the best bandit's regret is below classical A/B's test period.
    by_agent = {}
    for row in rows:
        by_agent.setdefault(row["agent"], []).append(float(row["cumulative_regret"]))
    assert min(np.mean(by_agent[name]) for name in ("linucb", "lints")) < np.mean(by_agent["classical_ab"])
