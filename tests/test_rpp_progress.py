"""`abgym rpp evaluate` shows progress: a line as each stage starts, and a heartbeat while a long stage runs."""
from __future__ import annotations

import time

from abgym.studies.rpp_evaluation import EvaluationSettings, Heartbeat, run_evaluation


class CountingRecommender:
    class stats:  # the attributes LLMRecommender.stats has
        calls, cache_hits = 0, 0


def test_heartbeat_prints_while_a_stage_runs_and_counts_rankings(capsys):
    recommender = CountingRecommender()
    with Heartbeat("slow stage", recommender, quiet=False, every=0.05):
        for _ in range(6):
            time.sleep(0.05)
            recommender.stats.calls += 1
    lines = [line for line in capsys.readouterr().out.splitlines() if "slow stage" in line]
    assert len(lines) >= 2 and "rankings" in lines[-1] and lines[-1].endswith("...")
    with Heartbeat("quiet stage", recommender, quiet=True, every=0.01):
        time.sleep(0.05)
    assert capsys.readouterr().out == ""


def test_evaluation_announces_every_stage(tmp_path, capsys):
    settings = EvaluationSettings(
        dataset="synthetic", recommender="synthetic", embedder="hashing", seeds=(0,), n_train=10,
        n_validation=3, n_test=3, rounds=1, episodes=4, n_search_users=2, n_enumeration_users=1, rpp_plus=False,
    )
    run_evaluation(settings, tmp_path)
    out = capsys.readouterr().out
    for stage in ("embedding", "hand-written ...", "random-prompt ...", "rpp test ...", "best-fixed search ...",
                  "ablation ...", "enumeration ...", "done in"):
        assert stage in out, stage
