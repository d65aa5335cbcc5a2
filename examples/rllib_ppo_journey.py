"""RLlib PPO on CustomerJourney-v0, the env unchanged: register it, flatten its Dict observation, train, print.

Needs the ray extra (``pip install 'abgym[ray]'``; ``make setup`` installs it). ``gamma=0.95``: on journeys what is
shown now changes later visits. For every env (the PettingZoo RPP env with four policies, ABTest-v0's action
masks, the batched simulators) see ``abgym/rllib.py`` and docs/scaling.md.

    python examples/rllib_ppo_journey.py --iterations 5
"""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--max-visits", type=int, default=30, help="the env's max_visits (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=2000, help="env steps per PPO iteration")
    args = parser.parse_args(argv)

    import gymnasium as gym
    import ray
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.connectors.env_to_module import FlattenObservations
    from ray.tune.registry import register_env

    import abgym  # noqa: F401 - registers the abgym ids in this process

    def make_journey(env_config):  # RLlib calls this in every process that needs an env
        import abgym  # noqa: F401, F811

        return gym.make("abgym/CustomerJourney-v0", **dict(env_config))

    register_env("journey", make_journey)
    config = (PPOConfig()
              .environment("journey", env_config={"max_visits": args.max_visits})
              .framework("torch")
              .env_runners(num_env_runners=0,
                           env_to_module_connector=lambda env, spaces=None, device=None: FlattenObservations())
              .training(gamma=0.95, lr=3e-4, train_batch_size_per_learner=args.batch,
                        minibatch_size=min(200, args.batch), num_epochs=2)
              .debugging(seed=0))
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        algorithm = config.build_algo()
        for iteration in range(1, args.iterations + 1):
            runners = algorithm.train()["env_runners"]
            print(f"iteration {iteration}: {runners['num_env_steps_sampled_lifetime']} env steps, "
                  f"lifetime reward per user {runners.get('episode_return_mean', float('nan')):.3f}", flush=True)
        algorithm.stop()
    finally:
        if started_here:
            ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
