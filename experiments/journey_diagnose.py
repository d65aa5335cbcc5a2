"""Why PPO does not capture CustomerJourney-v0's long-term headroom: budget, reward noise, or the policy's mode?

Trains PPO (gamma 0.95, the variant-attention policy, 16 single envs in SB3's DummyVecEnv) on

- ``drawn``: the env's reward (clicks, conversions, revenue: rare and noisy), as every agent in the comparison;
- ``expected``: the true expected reward of the variant shown (``info["expected_rewards"][action]``), the same
  mean without the noise of the draws: a diagnostic no deployable agent has, that tells whether the noise of the
  reward is what stops it;

then scores each on the oracles' held-out users, greedy (the argmax action) and sampling from the policy, with the
share of the variants it shows. Results are appended to ``--out`` as they come.

    nice .venv/bin/python experiments/journey_diagnose.py --steps 50000 --out results/journey-diagnose.csv
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
from stable_baselines3.common.env_util import make_vec_env

import abgym  # noqa: F401
from abgym.agents.actor_critic import ActorCriticAgent
from abgym.envs.customer_journey import build_journeys
from abgym.studies.journey_headroom import run_policy


class ExpectedReward(gym.Wrapper):
    """The reward is the true expected reward of the variant shown (a diagnostic: no real agent knows it)."""

    def step(self, action):
        observation, reward, terminated, truncated, info = self.env.step(action)
        return observation, float(info["expected_rewards"][int(action)]), terminated, truncated, info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--rewards", nargs="+", default=["drawn", "expected"], choices=["drawn", "expected"])
    parser.add_argument("--gammas", type=float, nargs="+", default=[0.95])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--rollouts", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/journey-diagnose.csv")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _, _, worlds = build_journeys(None, {}, args.users)
    eval_seed = 10_000 + args.seed
    reference = {name: run_policy(name, users=args.users, seed=eval_seed, rollouts=args.rollouts,
                                  worlds=worlds)["reward"].mean() for name in ("myopic_oracle", "longterm_oracle")}
    myopic, longterm = reference["myopic_oracle"], reference["longterm_oracle"]
    print(f"held-out users {args.users}: myopic oracle {myopic:.4f}, long-term oracle {longterm:.4f}", flush=True)
    rows = []
    for reward in args.rewards:
        for gamma in args.gammas:
            wrapper = ExpectedReward if reward == "expected" else None
            venv = make_vec_env(lambda: gym.make("abgym/CustomerJourney-v0"), n_envs=16, seed=args.seed,
                                wrapper_class=wrapper)
            started = time.perf_counter()
            agent = ActorCriticAgent(venv, "ppo", seed=args.seed, gamma=gamma, gae_lambda=0.95 if gamma else 1.0,
                                     n_steps=64)
            agent.learn(args.steps)
            seconds = time.perf_counter() - started
            for mode in ("greedy", "sampled"):
                shown = []

                def act(observation, mode=mode):
                    actions = agent.model.predict(observation, deterministic=mode == "greedy")[0]
                    shown.append(actions)
                    return actions

                ltv = run_policy(act, users=args.users, seed=eval_seed, worlds=worlds)["reward"].mean()
                share = np.bincount(np.concatenate(shown), minlength=worlds.n_variants) / sum(map(len, shown))
                row = dict(reward=reward, gamma=gamma, steps=args.steps, policy=mode, ltv=ltv, myopic_oracle=myopic,
                           longterm_oracle=longterm, headroom_share=(ltv - myopic) / (longterm - myopic),
                           variant_share=" ".join(f"{x:.2f}" for x in share), train_seconds=seconds)
                rows.append(row)
                with out.open("w", newline="") as handle:
                    writer = csv.DictWriter(handle, fieldnames=list(row))
                    writer.writeheader()
                    writer.writerows(rows)
                print(f"reward {reward:8s} gamma {gamma:.2f} {mode:7s}: lifetime reward {ltv:.4f}, share of headroom "
                      f"{row['headroom_share']:+.2f}, variants shown {row['variant_share']} (trained {seconds:.0f} s)",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
