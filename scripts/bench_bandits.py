"""Decisions per second and reward: our LinUCB beside MABWiser's LinUCB on PersonalizedMarketing-v0.

Both are disjoint LinUCB (one ridge regression per variant) with the same exploration (alpha) and regularisation
(l2), on the same features of the same users (same env seeds). Timed: only the agent's own calls (``act`` and
``update``), since the env costs both the same; reward: mean reward and regret per arrival over the seeds, and the
paired difference (ours - MABWiser) with its 95% interval, which should contain 0 (same reward within noise).

    python scripts/bench_bandits.py                     # 5 seeds x 2000 arrivals
    python scripts/bench_bandits.py --seeds 3 --arrivals 1000
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run(agent, env, seed: int, arrivals: int) -> dict:
    observation, info = env.reset(seed=seed)
    agent.reset(env.action_space.n, info, seed=seed)
    agent_seconds, rewards, regrets = 0.0, [], []
    for _ in range(arrivals):
        started = time.perf_counter()
        action = agent.act(observation, info)
        agent_seconds += time.perf_counter() - started
        next_observation, reward, terminated, truncated, info = env.step(action)
        expected = np.asarray(info["expected_rewards"])
        rewards.append(float(reward))
        regrets.append(float(expected.max() - expected[action]))
        started = time.perf_counter()
        agent.update(action, float(reward), next_observation, info)
        agent_seconds += time.perf_counter() - started
        observation = next_observation
        if terminated or truncated:
            observation, info = env.reset()
    return {"decisions_per_s": arrivals / agent_seconds, "reward": np.mean(rewards), "regret": np.mean(regrets)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--arrivals", type=int, default=2000)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--env-config", default="{}", help="JSON overrides of the env's default_config()")
    args = parser.parse_args(argv)

    import json

    import gymnasium

    import abgym  # noqa: F401
    from abgym.agents.contextual import LinUCB
    from abgym.commands.marketing import load_experiment

    MabwiserLinUCB = load_experiment().MabwiserLinUCB
    env_config = {**json.loads(args.env_config), "horizon": args.arrivals}
    results = {"ours": [], "mabwiser": []}
    for seed in range(args.seeds):
        for name, agent in (("ours", LinUCB(alpha=args.alpha, model="disjoint", seed=seed)),
                            ("mabwiser", MabwiserLinUCB(alpha=args.alpha, seed=seed))):
            env = gymnasium.make("abgym/PersonalizedMarketing-v0", config=env_config)
            results[name].append(run(agent, env, seed, args.arrivals))
            env.close()
            row = results[name][-1]
            print(f"seed {seed} {name:8s}: {row['decisions_per_s']:9.0f} decisions/s, reward/arrival "
                  f"{row['reward']:.4f}, regret/arrival {row['regret']:.4f}", flush=True)

    from scipy import stats

    def summary(name, key):
        values = np.array([row[key] for row in results[name]])
        return values.mean(), values

    ours_speed, _ = summary("ours", "decisions_per_s")
    theirs_speed, _ = summary("mabwiser", "decisions_per_s")
    print(f"\ndecisions/s (agent time only, mean over {args.seeds} seeds): ours {ours_speed:.0f}, "
          f"MABWiser {theirs_speed:.0f}, ratio {ours_speed / theirs_speed:.1f}x")
    for key in ("reward", "regret"):
        _, ours = summary("ours", key)
        _, theirs = summary("mabwiser", key)
        difference = ours - theirs
        half = (stats.t.ppf(0.975, difference.size - 1) * difference.std(ddof=1) / np.sqrt(difference.size)
                if difference.size > 1 else float("nan"))
        print(f"{key}/arrival: ours {ours.mean():.4f}, MABWiser {theirs.mean():.4f}, paired difference "
              f"{difference.mean():+.4f} ± {half:.4f} (95%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
