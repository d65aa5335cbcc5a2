"""Does the ranker's prior help Thompson sampling? ABTest-v0 on held-out Upworthy experiments.

    nice .venv/bin/python experiments/ranker_prior.py --episodes 200 --seeds 5

The ranker and its calibration are fitted on the train split only (hash split, identical headlines merged; the
calibration cross-fitted over 5 folds, so every calibration test is held out from the ranker that scores it), and
the calibration is checked on the test split (abgym.ranker.prior.calibration_check); the environment replays
experiments of the test split. Every agent meets the same experiments with the same seeds
(abgym.evaluate pairs them), so the differences below are paired. Agents:

- thompson: Beta(1, 1) for every arm;
- thompson-level: every arm gets the same Beta prior, centred on the typical CTR with the ranker prior's median
  strength (separates "knowing the CTR level" from "knowing which headline is better");
- thompson-ranker: the calibrated RankerPrior;
- thompson-ranker-x10: the same means with ten times the pseudo-counts (deliberately overconfident).

Reported: cumulative regret (expected clicks lost) and winner accuracy with 95 % intervals, on all episodes and on
the episodes whose experiment has at least two distinct headlines (elsewhere the ranker has nothing to say).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices: one thread is fastest on a shared machine

import numpy as np  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from abgym.agents.bandits import ThompsonSampling  # noqa: E402
from abgym.agents.priors import UniformPrior  # noqa: E402
from abgym.data.upworthy import load_experiments  # noqa: E402
from abgym.evaluation import evaluate, mean_ci, wilson_ci  # noqa: E402
from abgym.paths import atomic_write  # noqa: E402
from abgym.ranker.prior import DEFAULT_CONFIG, RankerPrior, calibration_check  # noqa: E402


def named(agent, name):
    agent.name = name
    return agent


def paired_difference(episodes, agent, baseline, column, subset=None):
    table = episodes.pivot_table(index=["seed", "episode"], columns="agent", values=column)
    if subset is not None:
        ids = episodes[episodes.agent == baseline].set_index(["seed", "episode"])["test_id"]
        table = table[ids.reindex(table.index).isin(subset).to_numpy()]
    return mean_ci((table[agent] - table[baseline]).to_numpy())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default="results/ranker_prior.json")
    args = parser.parse_args(argv)
    started = time.time()

    train = load_experiments(split="train", merge_identical=("headline",))
    test_experiments = load_experiments(split="test", merge_identical=("headline",))
    test_distinct = {e.test_id for e in test_experiments}
    prior = RankerPrior.fit(train, DEFAULT_CONFIG)
    print(prior, f"(5-fold cross-fitted calibration on the train split, fitted in {time.time() - started:.0f} s)",
          flush=True)
    # The check, on the test split the agents will meet (never used for fitting): is the prior's spread the
    # ranker's real accuracy there?
    check = calibration_check(prior, test_experiments)
    print("calibration on the held-out test split:", json.dumps({k: round(v, 4) for k, v in check.items()}),
          flush=True)
    strengths = np.concatenate([prior.beta_prior(list(e.headlines))[0] + prior.beta_prior(list(e.headlines))[1]
                                for e in train[:300]])
    n0 = float(np.median(strengths))
    base = prior.calibration.base_ctr
    agents = [
        named(ThompsonSampling(), "thompson"),
        named(ThompsonSampling(prior=UniformPrior(base * n0, (1 - base) * n0)), "thompson-level"),
        named(ThompsonSampling(prior=prior), "thompson-ranker"),
        named(ThompsonSampling(prior=RankerPrior(prior.ranker, calibration=prior.calibration, strength_scale=10)),
              "thompson-ranker-x10"),
    ]
    result = evaluate(agents, episodes=args.episodes, seeds=range(args.seeds), env_kwargs={"split": "test"},
                      progress=True)
    episodes = result.episodes
    report = {"calibration": vars(prior.calibration), "held_out_check": check, "median_prior_strength": n0, "episodes": args.episodes,
              "seeds": args.seeds, "summary": json.loads(result.summary.to_json(orient="records")), "paired": {}}
    print(result.to_markdown())
    print(f"\nmedian ranker-prior strength: {n0:.0f} pseudo-impressions; base CTR {base:.4f}")
    lines = ["| agent | episodes | regret vs thompson [95% CI] | relative regret | winner accuracy [95% CI] |",
             "|---|---|---|---|---|"]
    for subset_name, subset in (("all test episodes", None), ("≥2 distinct headlines", test_distinct)):
        lines.append(f"| *{subset_name}* | | | | |")
        for agent in [a.name for a in agents]:
            rows = episodes[episodes.agent == agent]
            if subset is not None:
                rows = rows[rows.test_id.isin(subset)]
            diff = paired_difference(episodes, agent, "thompson", "regret", subset)
            acc = wilson_ci(int(rows.winner_correct.sum()), len(rows))
            rel = rows.relative_regret.mean()
            report["paired"].setdefault(subset_name, {})[agent] = {
                "n": len(rows), "regret_mean": float(rows.regret.mean()), "regret_diff": diff,
                "relative_regret": float(rel), "winner_accuracy": acc}
            lines.append(f"| {agent} | {len(rows)} | {diff[0]:+.2f} [{diff[1]:+.2f}, {diff[2]:+.2f}] "
                         f"(mean regret {rows.regret.mean():.1f}) | {rel:.4f} | {acc[0]:.3f} "
                         f"[{acc[1]:.3f}, {acc[2]:.3f}] |")
    print("\n".join(lines))
    report["table"] = "\n".join(lines)
    report["seconds"] = time.time() - started
    with atomic_write(Path(args.out), "w") as handle:
        json.dump(report, handle, indent=1, default=float)
    print(f"wrote {args.out} ({time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
