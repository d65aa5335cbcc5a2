"""Does PPO with gamma > 0 capture CustomerJourney-v0's long-term headroom if it trains long enough?

Trains ActorCriticAgent (PPO, the variant-attention policy) with gamma 0 and 0.95 (on 16 batched journeys through
``abgym.make_sb3_vec_env``), and PPO + MARE (lifetime target, on the single env), for growing budgets of visits, then scores each frozen policy (deterministic) on the same held-out
users as the oracles of the headroom study, and prints the share of the long-term headroom it captured:
(policy - myopic oracle) / (long-term oracle - myopic oracle). Results are appended to ``--out`` as they come.

    nice .venv/bin/python experiments/journey_budget.py --budgets 5000 20000 80000 --out results/journey-budget.csv
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import abgym  # noqa: F401
from abgym.agents.actor_critic import ActorCriticAgent
from abgym.envs.customer_journey import build_journeys
from abgym.studies.journey_headroom import run_policy

AGENTS = {"ppo": dict(gamma=0.0, estimator=None), "ppo-lt": dict(gamma=0.95, estimator=None),
          "ppo+mare-lt": dict(gamma=0.95, estimator="input")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=[5000, 20000, 80000])
    parser.add_argument("--agents", nargs="+", default=list(AGENTS), choices=list(AGENTS))
    parser.add_argument("--users", type=int, default=2000, help="held-out users to score on (default: 2000)")
    parser.add_argument("--rollouts", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/journey-budget.csv")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _, _, worlds = build_journeys(None, {}, args.users)
    eval_seed = 10_000 + args.seed  # users the agents never trained on
    reference = {name: run_policy(name, users=args.users, seed=eval_seed, rollouts=args.rollouts, worlds=worlds)
                 ["reward"] for name in ("myopic_oracle", "longterm_oracle")}
    myopic, longterm = reference["myopic_oracle"].mean(), reference["longterm_oracle"].mean()
    print(f"held-out users {args.users}: myopic oracle {myopic:.4f}, long-term oracle {longterm:.4f}", flush=True)
    rows = []
    for name in args.agents:
        for budget in args.budgets:
            spec = AGENTS[name]
            started = time.perf_counter()
            if spec["estimator"] is None:  # PPO alone trains on 16 batched journeys (SB3 VecEnv, same-step reset)
                env = abgym.make_sb3_vec_env("abgym/CustomerJourney-v0", n_envs=16, seed=args.seed)
                agent = ActorCriticAgent(env, "ppo", seed=args.seed, gamma=spec["gamma"], n_steps=64,
                                         gae_lambda=0.95 if spec["gamma"] else 1.0)
            else:  # the estimator wraps a single env
                env = gym.make("abgym/CustomerJourney-v0")
                env.reset(seed=args.seed)
                agent = ActorCriticAgent(env, "ppo", estimator=spec["estimator"], seed=args.seed,
                                         gamma=spec["gamma"], gae_lambda=0.95,
                                         estimator_kwargs=dict(target="lifetime", gamma=spec["gamma"]))
            agent.learn(budget)
            seconds = time.perf_counter() - started

            def act(observation, agent=agent):
                if agent.reward_estimator is not None:
                    observation = {**observation,
                                   "estimates": agent.reward_estimator.predict(observation).astype(np.float32)}
                return agent.model.predict(observation, deterministic=True)[0]

            ltv = run_policy(act, users=args.users, seed=eval_seed, worlds=worlds)["reward"]
            difference = ltv - reference["myopic_oracle"]
            half = 1.96 * difference.std(ddof=1) / np.sqrt(len(difference))
            row = dict(agent=name, budget_visits=budget, ltv=ltv.mean(), myopic_oracle=myopic, longterm_oracle=longterm,
                       headroom_share=(ltv.mean() - myopic) / (longterm - myopic),
                       minus_myopic=difference.mean(), minus_myopic_ci95=half, train_seconds=seconds)
            rows.append(row)
            with out.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(row))
                writer.writeheader()
                writer.writerows(rows)
            print(f"{name:12s} {budget:7d} visits: lifetime reward {ltv.mean():.4f}, share of headroom "
                  f"{row['headroom_share']:+.2f}, minus myopic {difference.mean():+.4f} ± {half:.4f} "
                  f"(trained {seconds:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
