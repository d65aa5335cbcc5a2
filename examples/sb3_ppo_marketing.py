"""SB3 PPO on the batched personalized-marketing simulator, with abgym's env scalars in TensorBoard.

    python examples/sb3_ppo_marketing.py --steps 50000 --logdir runs/example
    tensorboard --logdir runs/example        # env/reward, env/regret, env/ctr, ... beside SB3's own curves

``abgym.make_sb3_vec_env`` puts 16 worlds of PersonalizedMarketing-v0 behind SB3's VecEnv (one numpy step for all
of them); ``EnvMetricsCallback`` logs reward, regret against the per-user oracle, CTR, conversion and revenue.
"""
from __future__ import annotations

import argparse

import abgym
from abgym.tensorboard import EnvMetricsCallback


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50_000, help="environment steps (default: %(default)s)")
    parser.add_argument("--n-envs", type=int, default=16)
    parser.add_argument("--logdir", default="runs/example")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from stable_baselines3 import PPO

    venv = abgym.make_sb3_vec_env("abgym/PersonalizedMarketing-v0", args.n_envs, seed=args.seed, drift=False)
    model = PPO("MultiInputPolicy", venv, n_steps=64, batch_size=256, seed=args.seed, verbose=0,
                tensorboard_log=args.logdir)
    model.learn(total_timesteps=args.steps, callback=EnvMetricsCallback(), tb_log_name="ppo")
    print(f"trained PPO for {model.num_timesteps} steps; TensorBoard: tensorboard --logdir {args.logdir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
