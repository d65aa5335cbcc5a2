"""Contextual bandits against PPO on PersonalizedMarketing-v0, paired on the same users, with 95 % intervals.

    python examples/bandits_vs_ppo.py --ppo-steps 20000 --episodes 3 --seeds 0 1 2

PPO trains first on the batched simulator; then ``abgym.evaluate`` plays every agent on the same episodes (same env
seeds). The bandits learn online while they are scored; the trained PPO policy is scored as it is.
"""
from __future__ import annotations

import argparse

import abgym


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ppo-steps", type=int, default=20_000)
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--horizon", type=int, default=1000, help="arrivals per episode (default: %(default)s)")
    args = parser.parse_args(argv)

    from stable_baselines3 import PPO

    settings = {"drift": False, "horizon": args.horizon}
    venv = abgym.make_sb3_vec_env("abgym/PersonalizedMarketing-v0", 16, seed=100, **settings)
    ppo = PPO("MultiInputPolicy", venv, n_steps=64, batch_size=256, seed=0, verbose=0).learn(args.ppo_steps)
    result = abgym.evaluate(["random", "classical-ab", "thompson", "linucb", "lints", ppo],
                            "abgym/PersonalizedMarketing-v0", episodes=args.episodes, seeds=args.seeds,
                            env_kwargs=settings)
    print(result.to_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
