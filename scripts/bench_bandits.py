"""Decisions per second and regret: our LinUCB and linear TS beside MABWiser's LinUCB and Vowpal Wabbit's
contextual bandit (``--cb_explore_adf``, its default exploration and ``--squarecb``) on PersonalizedMarketing-v0.

Same env, same env seeds, same features (the disjoint context x of :class:`abgym.agents.features.FeatureMap`; VW
gets x in a shared namespace crossed with the action, ``-q sa``). "ours"/"ours-ts" are the agents as shipped
(``abgym.agents.registry``: LinUCB's bonus 1.2 * sqrt(K / 4), linear TS's v 0.5, ``interaction_l2`` 3000 for both;
docs/marketing_agents.md says how they were chosen); "ours-mabwiser" is our LinUCB with
MABWiser's single ridge penalty of 1, the same algorithm as MABWiser's (identical decisions expected). Timed: only
the agents' own calls (``act`` and ``update``; VW's include writing its text examples); regret per arrival from the
env's ``expected_rewards``, with paired differences over the seeds and their 95% t-intervals. The reported seeds
(100-104 by default) are neither the registry's tuning seeds (0-2) nor those of ``--tune`` (from 1000: 1000-1007 by
default, 1000-1039 for LinUCB's bonus), the grid that checks the shipped settings.

    python scripts/bench_bandits.py                     # 5 seeds x 2000 arrivals, every peer
    python scripts/bench_bandits.py --tune              # the tuning grid on seeds 1000-1007 only
    python scripts/bench_bandits.py --tune --tune-seeds 40 --tune-agents linucb --tune-alphas 1.2,2.078 --tune-l2s 3000
                                                        # part of the grid, seeds 1000-1039, squarecb beside
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
    return {"decisions_per_s": arrivals / agent_seconds, "reward": np.mean(rewards), "regret": np.mean(regrets),
            "n_arms": int(env.action_space.n)}


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


TUNING_SEEDS = range(1000, 1008)  # the tuning grid's seeds: disjoint from the reported ones (--seed-start)
# No 0: alpha = 0 or v = 0 is the greedy policy, which never explores (it scored 0.058 on the first grid's seeds).
ALPHAS = (0.1, 0.2, 0.5, 1.0, 2.0)
VS = (0.1, 0.25, 0.5, 1.0, 2.0)
INTERACTION_L2S = (1.0, 30.0, 300.0, 1000.0, 3000.0, 10000.0)


def tune(arrivals: int, env_config: dict, seeds=TUNING_SEEDS, alphas=ALPHAS, vs=VS,
         interaction_l2s=INTERACTION_L2S, agents=("linucb", "lints"), squarecb: bool = True) -> dict[str, dict]:
    """Grid of (alpha, interaction_l2) for LinUCB and (v, interaction_l2) for linear TS on ``seeds`` only (never
    the reported seeds); prints mean regret/arrival per setting and returns the best of each agent. LinUCB runs
    here with a fixed alpha, the bonus at the env's K (the shipped rule's is 1.2 * sqrt(K / 4)).

    With ``squarecb`` (and vowpalwabbit installed) VW ``--squarecb`` runs on the same tuning seeds first, and every
    setting's line adds its paired difference to it: the target is relative, so the grid says where it is met."""
    import gymnasium
    from scipy import stats

    import abgym  # noqa: F401
    from abgym.agents.contextual import LinearThompson, LinUCB

    def regrets_of(make) -> np.ndarray:
        regrets = []
        for seed in seeds:
            env = gymnasium.make("abgym/PersonalizedMarketing-v0", config=env_config)
            regrets.append(run(make(seed), env, seed, arrivals)["regret"])
            env.close()
        return np.array(regrets)

    reference = None
    if squarecb:
        try:
            import vowpalwabbit  # noqa: F401
        except ImportError:
            print("vowpalwabbit is not installed: no squarecb reference on the tuning seeds")
        else:
            reference = regrets_of(lambda seed: VowpalWabbitCB("--squarecb", seed=seed))
            print(f"tune vw-squarecb: regret/arrival {reference.mean():.4f} ± "
                  f"{reference.std(ddof=1) / np.sqrt(reference.size):.4f} (seeds {seeds[0]}-{seeds[-1]})", flush=True)
    grids = {"linucb": [(LinUCB, "alpha", value, l2) for value in alphas for l2 in interaction_l2s],
             "lints": [(LinearThompson, "v", value, l2) for value in vs for l2 in interaction_l2s]}
    best = {}
    for agent_name in agents:
        scored = []
        for cls, key, value, l2 in grids[agent_name]:
            regrets = regrets_of(lambda seed: cls(**{key: value}, model="disjoint", interaction_l2=l2, seed=seed))
            scored.append((float(np.mean(regrets)), key, value, l2))
            versus = ""
            if reference is not None:
                difference = regrets - reference
                half = stats.t.ppf(0.975, difference.size - 1) * difference.std(ddof=1) / np.sqrt(difference.size)
                versus = f", minus squarecb {difference.mean():+.4f} ± {half:.4f} (95%)"
            print(f"tune {agent_name} {key}={value:<5g} interaction_l2={l2:<6g}: regret/arrival "
                  f"{np.mean(regrets):.4f} ± {np.std(regrets, ddof=1) / np.sqrt(len(regrets)):.4f} "
                  f"(seeds {seeds[0]}-{seeds[-1]}){versus}", flush=True)
        regret, key, value, l2 = min(scored)
        best[agent_name] = {key: value, "interaction_l2": l2, "tuning_regret": regret}
    print(f"best on the tuning seeds: {best}")
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="how many reported seeds")
    parser.add_argument("--seed-start", type=int, default=100,
                        help="first reported seed (default 100: neither the registry's tuning seeds 0-2 nor --tune's)")
    parser.add_argument("--arrivals", type=int, default=2000)
    parser.add_argument("--alpha", type=float, default=0.5, help="LinUCB's alpha in the MABWiser-equivalent rows")
    parser.add_argument("--env-config", default="{}", help="JSON overrides of the env's default_config()")
    parser.add_argument("--no-vw", action="store_true", help="skip the Vowpal Wabbit peers")
    parser.add_argument("--tune", action="store_true",
                        help=f"only run the tuning grid on seeds {TUNING_SEEDS[0]}-{TUNING_SEEDS[-1]} and print it")
    parser.add_argument("--tune-alphas", help=f"comma-separated LinUCB alphas for --tune (default {ALPHAS})")
    parser.add_argument("--tune-l2s", help=f"comma-separated interaction_l2 values for --tune "
                                           f"(default {INTERACTION_L2S})")
    parser.add_argument("--tune-agents", default="linucb,lints", help="which grids --tune runs: linucb, lints")
    parser.add_argument("--tune-seeds", type=int, default=len(TUNING_SEEDS),
                        help=f"how many tuning seeds from {TUNING_SEEDS[0]} (default {len(TUNING_SEEDS)}; more are "
                             "still disjoint from the reported seeds, which start at 100)")
    args = parser.parse_args(argv)

    import json

    import gymnasium

    import abgym  # noqa: F401
    from abgym.agents.contextual import LinearThompson, LinUCB
    from abgym.commands.marketing import load_experiment

    MabwiserLinUCB = load_experiment().MabwiserLinUCB
    from abgym.machine import cpu_description, load_line

    print(f"CPU: {cpu_description()}; {load_line()} at start")
    env_config = {**json.loads(args.env_config), "horizon": args.arrivals}
    if args.tune:
        def floats(text, default):
            try:
                return tuple(float(value) for value in text.split(",")) if text else default
            except ValueError:
                parser.error(f"expected comma-separated numbers such as 0.5,1,2, got {text!r}")
        agents = tuple(name.strip() for name in args.tune_agents.split(",") if name.strip())
        if not agents or set(agents) - {"linucb", "lints"}:
            parser.error(f"--tune-agents takes linucb and/or lints, got {args.tune_agents!r}")
        if args.tune_seeds < 2:
            parser.error(f"--tune-seeds must be >= 2, got {args.tune_seeds}")
        tune(args.arrivals, env_config, seeds=range(TUNING_SEEDS[0], TUNING_SEEDS[0] + args.tune_seeds),
             alphas=floats(args.tune_alphas, ALPHAS),
             interaction_l2s=floats(args.tune_l2s, INTERACTION_L2S), agents=agents, squarecb=not args.no_vw)
        print(f"CPU: {cpu_description()}; {load_line()} at the end")
        return 0
    from abgym.agents.registry import make_agent

    # "ours"/"ours-ts": the agents as shipped (abgym.agents.registry: `--agent linucb` / `lints`; LinUCB's bonus
    # 1.2 * sqrt(K / 4), chosen by --tune on seeds 1000-1039 at K = 4 and 12; linear TS's v 0.5; interaction_l2 3000,
    # tuned on seeds 0-2 and confirmed by --tune on seeds 1000-1007); "ours-mabwiser" and
    # "ours-ts-l2=1": one ridge penalty of 1 on every weight, MABWiser's setting, the same algorithm as MABWiser's
    # LinUCB (to check speed and identical decisions).
    shipped = {name: make_agent(name) for name in ("linucb", "lints")}
    linucb = {"alpha": shipped["linucb"].alpha, "reference_arms": shipped["linucb"].reference_arms,
              "interaction_l2": shipped["linucb"].interaction_l2}
    lints = {"v": shipped["lints"].v, "interaction_l2": shipped["lints"].interaction_l2}
    peers = {"ours": lambda seed: make_agent("linucb", seed=seed),
             "ours-ts": lambda seed: make_agent("lints", seed=seed),
             "ours-mabwiser": lambda seed: LinUCB(alpha=args.alpha, model="disjoint", seed=seed),
             "ours-ts-l2=1": lambda seed: LinearThompson(v=lints["v"], model="disjoint", seed=seed),
             "mabwiser": lambda seed: MabwiserLinUCB(alpha=args.alpha, seed=seed)}
    if not args.no_vw:
        try:
            import vowpalwabbit  # noqa: F401

            peers["vw"] = lambda seed: VowpalWabbitCB(seed=seed)
            peers["vw-squarecb"] = lambda seed: VowpalWabbitCB("--squarecb", seed=seed)
        except ImportError:
            print("vowpalwabbit is not installed (pip install vowpalwabbit): VW rows skipped")
    results = {name: [] for name in peers}
    seeds = range(args.seed_start, args.seed_start + args.seeds)
    for seed in seeds:
        for name, make in peers.items():
            agent = make(seed)
            env = gymnasium.make("abgym/PersonalizedMarketing-v0", config=env_config)
            results[name].append(run(agent, env, seed, args.arrivals))
            env.close()
            row = results[name][-1]
            print(f"seed {seed} {name:15s}: {row['decisions_per_s']:9.0f} decisions/s, reward/arrival "
                  f"{row['reward']:.4f}, regret/arrival {row['regret']:.4f}", flush=True)

    from scipy import stats

    def summary(name, key):
        values = np.array([row[key] for row in results[name]])
        return values.mean(), values

    def paired(a, b, key):
        difference = summary(a, key)[1] - summary(b, key)[1]
        half = (stats.t.ppf(0.975, difference.size - 1) * difference.std(ddof=1) / np.sqrt(difference.size)
                if difference.size > 1 else float("nan"))
        return difference.mean(), half

    n_arms = results["ours"][0]["n_arms"]
    linucb["bonus scale at this K"] = round(shipped["linucb"].bonus_scale(n_arms), 3)
    print(f"\nours = LinUCB {linucb}, ours-ts = LinearThompson {lints} (the registry's defaults); ours-mabwiser = "
          f"LinUCB alpha={args.alpha} and ours-ts-l2=1, one l2 = 1 (MABWiser's setting); reported seeds "
          f"{seeds[0]}-{seeds[-1]}, {args.arrivals} arrivals, K = {n_arms}; decisions/s: agent time only")
    ours_speed, _ = summary("ours", "decisions_per_s")
    print(f"{'agent':<16} {'decisions/s':>11} {'ours LinUCB / this':>18} {'regret/arrival':>14} "
          f"{'ours - this (95%)':>20}")
    for name in peers:
        speed, _ = summary(name, "decisions_per_s")
        _, regret = summary(name, "regret")
        difference, half = paired("ours", name, "regret") if name != "ours" else (0.0, 0.0)
        print(f"{name:<16} {speed:>11.0f} {ours_speed / speed:>17.2f}x {regret.mean():>14.4f} "
              f"{difference:>+11.4f} ± {half:.4f}")
    for name in [peer for peer in peers if peer.startswith("vw")]:
        speed_ratio = {agent: summary(agent, "decisions_per_s")[0] / summary(name, "decisions_per_s")[0]
                       for agent in ("ours", "ours-ts")}
        for agent in ("ours", "ours-ts"):
            difference, half = paired(agent, name, "regret")
            verdict = ("pass" if speed_ratio[agent] >= 1.0 and difference <= 0 else "FAIL")
            noise = " (the difference is within the 95% interval of 0)" if abs(difference) <= half else ""
            print(f"target vs {name}: {agent} {speed_ratio[agent]:.2f}x as fast, regret difference "
                  f"{difference:+.4f} ± {half:.4f}: {verdict} (at least as fast, mean regret no higher){noise}")
    for key in ("reward", "regret"):
        difference, half = paired("ours-mabwiser", "mabwiser", key)
        print(f"{key}/arrival: ours-mabwiser {summary('ours-mabwiser', key)[0]:.4f}, MABWiser "
              f"{summary('mabwiser', key)[0]:.4f}, paired difference {difference:+.4f} ± {half:.4f} (95%)")
    print(f"CPU: {cpu_description()}; {load_line()} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
