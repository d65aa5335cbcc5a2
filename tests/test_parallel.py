"""The Ray backend (abgym.parallel): a study's cells as Ray tasks give the serial backend's results exactly."""
from __future__ import annotations

import math
import posixpath

import pytest

from abgym.parallel import check_backend, map_cells

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'abgym[ray]'")


def without_seconds(entries: list[dict]) -> list[dict]:
    return [{key: value for key, value in entry.items() if key != "seconds"} for entry in entries]


def assert_same(serial: list[dict], parallel: list[dict]) -> None:
    """Equal entry by entry, NaN equal to NaN (a metric without regime shifts is NaN under both backends)."""
    assert len(serial) == len(parallel) > 0
    for a, b in zip(serial, parallel):
        assert a.keys() == b.keys()
        for key in a:
            same = a[key] == b[key] or (isinstance(a[key], float) and math.isnan(a[key]) and math.isnan(b[key]))
            assert same, (key, a, b)


def test_map_cells_keeps_the_cell_order_and_reports_each_result(local_ray):
    arguments = [(f"cell{x}", "result") for x in range(8)]  # the function must be importable on the workers
    seen = []
    results = map_cells(posixpath.join, arguments, backend="ray", on_result=lambda i, r: seen.append((i, r)))
    assert results == [f"cell{x}/result" for x in range(8)] == map_cells(posixpath.join, arguments)
    assert sorted(seen) == list(enumerate(results))
    assert ray.is_initialized()  # an instance started by the caller is left running for the caller


def test_bad_backend_choices_are_named():
    with pytest.raises(ValueError, match="unknown backend 'dask'"):
        check_backend("dask", None)
    with pytest.raises(ValueError, match="--address is for --backend ray"):
        check_backend("serial", "auto")


def test_marketing_comparison_on_ray_equals_serial(tmp_path, local_ray):
    """Same seed, both drift settings, a bandit, classical A/B and PPO: identical summaries and per-run rows."""
    from abgym.studies import marketing_comparison as study

    results = {}
    for backend in ("serial", "ray"):
        config = study.ComparisonConfig(agents=["classical_ab", "linucb", "ppo"], seeds=[100], arrivals=100,
                                        drift=["off", "on"], prior="off", recovery_window=20, tensorboard=False,
                                        out=tmp_path / backend, backend=backend)
        results[backend] = study.run_comparison(config, log=lambda line: None)
    assert_same(without_seconds(results["serial"]["summary"]), without_seconds(results["ray"]["summary"]))
    assert_same(without_seconds(results["serial"]["rows"]), without_seconds(results["ray"]["rows"]))
    assert len(results["ray"]["rows"]) == 3 * 2 and (tmp_path / "ray" / "regret_drift-on.png").is_file()


def test_journey_comparison_on_ray_equals_serial(tmp_path, local_ray):
    from abgym.studies import journey_comparison as study

    results = {}
    for backend in ("serial", "ray"):
        config = study.JourneyComparisonConfig(
            agents=["classical_ab", "linucb", "ppo-lt", "myopic_oracle", "longterm_oracle"], seeds=[100, 101],
            users=20, drift=["on"], prior="off", rollouts=2, recovery_window=20, tensorboard=False,
            out=tmp_path / backend, env_config={"max_visits": 10}, backend=backend)
        results[backend] = study.run_comparison(config, log=lambda line: None)
    assert_same(without_seconds(results["serial"]["summary"]), without_seconds(results["ray"]["summary"]))
    shares = {row["agent"]: row["headroom_share"] for row in results["ray"]["rows"]}
    assert shares["myopic_oracle"] == 0 and shares["longterm_oracle"] == 1  # computed over the gathered cells


def test_cli_takes_the_backend_and_refuses_an_address_without_ray(tmp_path, capsys, local_ray):
    from abgym.cli import main

    assert main(["marketing", "compare", "--address", "auto", "--out", str(tmp_path)]) == 2
    assert "--address is for --backend ray" in capsys.readouterr().err
    out = tmp_path / "cli"
    assert main(["marketing", "compare", "--backend", "ray", "--agents", "classical_ab", "linucb", "--seeds", "1",
                 "--arrivals", "50", "--drift", "off", "--prior", "off", "--no-tensorboard", "--out", str(out)]) == 0
    assert "linucb" in capsys.readouterr().out and (out / "summary.csv").is_file()


def test_evaluation_cells_on_ray_equal_one_serial_evaluation(tmp_path, local_ray):
    """abgym demo --backend ray: (agent, seed) cells merged give abgym.evaluate's episodes and summary exactly."""
    import pandas as pd

    from abgym.evaluation import evaluate
    from abgym.studies.parallel_evaluation import evaluate_parallel

    agents, seeds, kwargs = ["thompson", "ab-test", "ucb1"], [0, 1], {"split": "test", "ctr_source": "posterior"}
    serial = evaluate(agents, "abgym/ABTest-v0", episodes=4, seeds=seeds, env_kwargs=kwargs)
    fanned = evaluate_parallel(agents, "abgym/ABTest-v0", 4, seeds, env_kwargs=kwargs, backend="ray",
                               logdir=tmp_path / "tb")
    pd.testing.assert_frame_equal(serial.episodes.drop(columns="seconds"), fanned.episodes.drop(columns="seconds"))
    pd.testing.assert_frame_equal(serial.summary.drop(columns="seconds"), fanned.summary.drop(columns="seconds"))
    for name, curves in serial.curves.items():
        assert (curves == fanned.curves[name]).all()
    assert (tmp_path / "tb" / "seed-1").is_dir()  # one TensorBoard run per cell


def test_demo_takes_the_backend(tmp_path, capsys, local_ray):
    from abgym.cli import main

    out = tmp_path / "demo"
    assert main(["demo", "--backend", "ray", "--episodes", "3", "--seeds", "0", "--agents", "thompson", "ucb1",
                 "--no-headroom", "--no-progress", "--out", str(out)]) == 0
    assert (out / "summary.csv").is_file() and "thompson" in capsys.readouterr().out
    assert main(["demo", "--address", "auto", "--out", str(out)]) == 2
    assert "--address is for --backend ray" in capsys.readouterr().err


def test_rpp_evaluation_on_ray_equals_serial(tmp_path, local_ray):
    """abgym rpp evaluate --backend ray: each seed's RPP training and test a Ray task; the same summary (synthetic
    recommender and hashing embedder, so no language model is needed)."""
    from abgym.studies.rpp_evaluation import EvaluationSettings, run_evaluation

    summaries = {}
    for backend in ("serial", "ray"):
        settings = EvaluationSettings(
            dataset="synthetic", recommender="synthetic", embedder="hashing", seeds=(0, 1), n_train=10,
            n_validation=3, n_test=4, rounds=1, episodes=4, n_search_users=2, n_enumeration_users=1,
            rpp_plus=False, ablation=True, backend=backend)
        result = run_evaluation(settings, tmp_path / backend, quiet=True)
        summaries[backend] = result["summary"]
        assert {row["method"] for row in result["rows"]} >= {"rpp", "rpp-fix-role", "hand-written"}
    assert_same(summaries["serial"], summaries["ray"])
    assert (tmp_path / "ray" / "rpp_seed1.pt").is_file() and (tmp_path / "ray" / "tensorboard" / "seed1").is_dir()
