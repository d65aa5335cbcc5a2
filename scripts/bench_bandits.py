"""Decisions per second and reward: our LinUCB (and linear TS) beside MABWiser's LinUCB and Vowpal Wabbit's
contextual bandit (``--cb_explore_adf``, its default exploration and ``--squarecb``) on PersonalizedMarketing-v0.

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


class VowpalWabbitCB:
    """Vowpal Wabbit's contextual bandit (``--cb_explore_adf``), the industry's engine, as a peer agent.

    The same features as our disjoint agents: the user context x (FeatureMap(model="disjoint")) in a shared
    namespace, one action namespace per variant and ``-q sa``, so VW learns one linear model of x per variant.
    Costs are negated rewards; the action is drawn from VW's probability mass function with a seeded generator.
    """

    def __init__(self, extra: str = "", seed: int = 0):
        self.extra, self.seed = extra, seed

    def reset(self, n_arms: int, info=None, seed: int | None = None) -> None:
        import vowpalwabbit

        from abgym.agents.features import FeatureMap

        self.seed = self.seed if seed is None else seed
        self.n_arms, self.features = n_arms, FeatureMap(model="disjoint")
        self.vw = vowpalwabbit.Workspace(f"--cb_explore_adf -q sa --quiet --random_seed {self.seed} {self.extra}")
        self.rng = np.random.default_rng(self.seed)
        self._actions = [f"|a a{k}" for k in range(n_arms)]

    def _shared(self, observation) -> str:
        x = self.features.context(observation)
        return "shared |s " + " ".join(f"f{i}:{value:.6g}" for i, value in enumerate(x) if value != 0)

    def act(self, observation, info=None) -> int:
        self._last = self._shared(observation)
        pmf = np.asarray(self.vw.predict([self._last, *self._actions]), dtype=np.float64)
        action = int(self.rng.choice(len(pmf), p=pmf / pmf.sum()))
        self._probability = float(pmf[action])
        return action

    def update(self, action: int, reward: float, observation=None, info=None) -> None:
        lines = [self._last] + [f"0:{-reward:.6g}:{self._probability:.6g} {line}" if k == action else line
                                for k, line in enumerate(self._actions)]
        self.vw.learn(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--arrivals", type=int, default=2000)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--env-config", default="{}", help="JSON overrides of the env's default_config()")
    parser.add_argument("--no-vw", action="store_true", help="skip the Vowpal Wabbit peers")
    args = parser.parse_args(argv)

    import json

    import gymnasium

    import abgym  # noqa: F401
    from abgym.agents.contextual import LinUCB
    from abgym.commands.marketing import load_experiment

    MabwiserLinUCB = load_experiment().MabwiserLinUCB
    from abgym.machine import cpu_description, load_line

    print(f"CPU: {cpu_description()}; {load_line()} at start")
    env_config = {**json.loads(args.env_config), "horizon": args.arrivals}
    from abgym.agents.contextual import LinearThompson

    peers = {"ours": lambda seed: LinUCB(alpha=args.alpha, model="disjoint", seed=seed),
             "ours-ts": lambda seed: LinearThompson(model="disjoint", seed=seed),
             "mabwiser": lambda seed: MabwiserLinUCB(alpha=args.alpha, seed=seed)}
    if not args.no_vw:
        try:
            import vowpalwabbit  # noqa: F401

            peers["vw"] = lambda seed: VowpalWabbitCB(seed=seed)
            peers["vw-squarecb"] = lambda seed: VowpalWabbitCB("--squarecb", seed=seed)
        except ImportError:
            print("vowpalwabbit is not installed (pip install vowpalwabbit): VW rows skipped")
    results = {name: [] for name in peers}
    for seed in range(args.seeds):
        for name, make in peers.items():
            agent = make(seed)
            env = gymnasium.make("abgym/PersonalizedMarketing-v0", config=env_config)
            results[name].append(run(agent, env, seed, args.arrivals))
            env.close()
            row = results[name][-1]
            print(f"seed {seed} {name:11s}: {row['decisions_per_s']:9.0f} decisions/s, reward/arrival "
                  f"{row['reward']:.4f}, regret/arrival {row['regret']:.4f}", flush=True)

    from scipy import stats

    def summary(name, key):
        values = np.array([row[key] for row in results[name]])
        return values.mean(), values

    ours_speed, _ = summary("ours", "decisions_per_s")
    theirs_speed, _ = summary("mabwiser", "decisions_per_s")
    print(f"\ndecisions/s (agent time only, mean over {args.seeds} seeds): ours {ours_speed:.0f}, "
          f"MABWiser {theirs_speed:.0f}, ratio {ours_speed / theirs_speed:.1f}x")
    print(f"{'agent':<12} {'decisions/s':>11} {'ours LinUCB / this':>18} {'regret/arrival':>14}")
    for name in peers:
        speed, _ = summary(name, "decisions_per_s")
        _, regret = summary(name, "regret")
        print(f"{name:<12} {speed:>11.0f} {ours_speed / speed:>17.2f}x {regret.mean():>14.4f}")
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
