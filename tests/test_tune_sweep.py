"""The Ray Tune sweep of LinUCB over seeds (abgym.studies.tune_sweep): every trial runs, the table summarizes them."""
from __future__ import annotations

import csv

import pytest

pytest.importorskip("ray.tune", reason="the ray extra is not installed: pip install 'abgym[ray]'")

from abgym.studies import tune_sweep  # noqa: E402


def test_sweep_runs_every_trial_and_tables_them(tmp_path, local_ray):
    summary = tune_sweep.sweep([0.5, 2.0], [3000.0], [100, 101], arrivals=60, out=tmp_path, log=lambda t: None)
    assert [row["seeds"] for row in summary] == [2, 2] and {row["alpha"] for row in summary} == {0.5, 2.0}
    assert summary[0]["cumulative_regret"] <= summary[1]["cumulative_regret"]  # best first
    trials = list(csv.DictReader((tmp_path / "trials.csv").open()))
    assert len(trials) == 4
    # A trial under Tune is the same run as a plain call with its parameters (seeded, no shared state).
    first = trials[0]
    direct = tune_sweep.run_linucb({"alpha": float(first["alpha"]), "interaction_l2": 3000.0, "seed": int(first["seed"]),
                                    "arrivals": 60, "drift": "off", "window": 10})
    assert float(first["cumulative_regret"]) == pytest.approx(direct["cumulative_regret"], rel=1e-12)
    assert "| alpha | interaction_l2 |" in (tmp_path / "summary.md").read_text()


def test_bad_sweeps_are_named(capsys):
    assert tune_sweep.main(["--seeds", "0"]) == 2
    assert "--seeds must be >= 1" in capsys.readouterr().err
    assert tune_sweep.main(["--arrivals", "5"]) == 2
    assert "--arrivals must be >= 10" in capsys.readouterr().err
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        tune_sweep.sweep([-1.0], [1.0], [0])
