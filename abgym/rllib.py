"""RLlib's PPO on abgym's envs as they are: registration, observation flattening, action masks, four policies.

Nothing in the envs changes for RLlib; this module only tells RLlib how to make them (``ray.tune.register_env``)
and what to put between them and its networks:

- ``marketing`` (PersonalizedMarketing-v0) and ``journey`` (CustomerJourney-v0) have ``Dict`` observations (user,
  context, a 2-D memory, the variants); RLlib's ``FlattenObservations`` connector turns them into one vector.
- ``abtest`` (ABTest-v0) has experiments of 2 to 14 arms in a ``Discrete(max_arms)`` space: abgym's
  :class:`~abgym.wrappers.ValidActionWrapper` maps every action onto a valid arm, and the mask stays in the
  observation, so RLlib's plain PPO is always legal.
- ``rpp`` (the PettingZoo RPP ``ParallelEnv``, four prompt-pattern agents) goes through RLlib's
  ``ParallelPettingZooEnv``; each agent gets its own policy (``multi_agent``, agent id = policy id). The
  ``synthetic`` recommender (a known best prompt) needs no language model.
- ``marketing-batched`` and ``journey-batched``: abgym's batched simulators (one ``VectorEnv`` of N worlds, the
  env's ``vector_entry_point``) handed to RLlib whole (``gym_env_vectorize_mode="vector_entry_point"``), instead
  of RLlib stepping N copies of the single env.

    python -m abgym.rllib --env marketing --iterations 3           # prints one line per iteration
    python -m abgym.rllib --env rpp --iterations 3 --json out.json

Needs the ``ray`` extra (``pip install 'abgym[ray]'``). See docs/scaling.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

import gymnasium
import numpy as np

ENVS = ("marketing", "journey", "abtest", "rpp", "marketing-batched", "journey-batched")
RAY_INSTALL = "pip install 'abgym[ray]'"
# Small settings that still end episodes within a few PPO iterations (RLlib reports returns of finished episodes).
SMOKE_ENV_CONFIG = {"marketing": {"horizon": 100}, "journey": {"max_visits": 10}, "abtest": {"split": "train"},
                    "rpp": {}, "marketing-batched": {"horizon": 100, "num_worlds": 8},
                    "journey-batched": {"max_visits": 10, "num_worlds": 8}}


def make_env(name: str, env_config: dict | None = None):
    """The env ``name`` as RLlib will see it (a plain ``gymnasium.Env``, a ``VectorEnv``, or a ``MultiAgentEnv``)."""
    import abgym  # noqa: F401 - registers the env ids

    settings = {key: value for key, value in dict(env_config or {}).items() if key not in ("num_envs", "num_worlds")}
    if name == "marketing":
        return gymnasium.make("abgym/PersonalizedMarketing-v0", config=settings)
    if name == "journey":
        return gymnasium.make("abgym/CustomerJourney-v0", config=settings)
    if name == "abtest":
        from abgym.wrappers import ValidActionWrapper

        return ValidActionWrapper(gymnasium.make("abgym/ABTest-v0", **settings))
    if name == "rpp":
        from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv

        from abgym.envs.prompt_personalization import parallel_env

        return ParallelPettingZooEnv(parallel_env(**{"dataset": "synthetic", "recommender": "synthetic",
                                                     "embedder": "hashing", **settings}))
    if name in ("marketing-batched", "journey-batched"):
        env_id = "abgym/PersonalizedMarketing-v0" if name == "marketing-batched" else "abgym/CustomerJourney-v0"
        # RLlib passes the number of sub-envs as num_envs (num_envs_per_env_runner); one RLlib sub-env is one world.
        worlds = int(dict(env_config or {}).get("num_envs", 1))
        return PerWorldInfo(gymnasium.make_vec(env_id, num_envs=worlds, vectorization_mode="vector_entry_point",
                                               config=settings))
    raise ValueError(f"unknown env {name!r} for RLlib; choose one of {', '.join(ENVS)}")


class PerWorldInfo(gymnasium.vector.VectorWrapper):
    """Keeps only the per-world entries of a batched env's info (arrays with one row per world, and their ``_key``
    masks), the vector-info layout that gymnasium's ``DictInfoToList`` (used by RLlib's env runner) requires.

    The batched marketing envs' reset info also describes the campaign every world shares (``variant_texts``,
    ``attribute_names``, ``test_id``: one value, not one per world); RLlib does not read it, so it is dropped here
    rather than changed in the env, whose own users read it."""

    def _per_world(self, info: dict) -> dict:
        kept = {key: value for key, value in info.items() if not key.startswith("_")
                and isinstance(value, np.ndarray) and value.ndim >= 1 and len(value) == self.num_envs}
        kept.update({f"_{key}": info[f"_{key}"] for key in list(kept) if f"_{key}" in info})
        return kept

    def reset(self, *, seed=None, options=None):
        observation, info = self.env.reset(seed=seed, options=options)
        return observation, self._per_world(info)

    def step(self, actions):
        observation, reward, terminated, truncated, info = self.env.step(actions)
        return observation, reward, terminated, truncated, self._per_world(info)


def register_envs() -> None:
    """``ray.tune.register_env`` for every name in :data:`ENVS` as ``abgym-<name>`` (creators take RLlib's
    ``EnvContext``, a dict of settings)."""
    from ray.tune.registry import register_env

    for name in ENVS:
        register_env(f"abgym-{name}", lambda env_config, name=name: make_env(name, env_config))


def ppo_config(name: str, *, seed: int = 0, env_config: dict | None = None, train_batch_size: int = 400,
               minibatch_size: int = 100, num_epochs: int = 2, hidden: tuple[int, ...] = (64, 64), lr: float = 3e-4,
               gamma: float = 0.0):
    """RLlib's ``PPOConfig`` (new API stack, torch) for env ``name``, sampling in the driver (no env-runner
    actors: the envs are fast, a process per runner would cost more than it saves on a few cores).

    ``gamma=0`` by default: on the marketing env each arrival is a new user, a contextual bandit; use 0.95 on the
    journey env, where what is shown now changes later visits."""
    if name not in ENVS:
        raise ValueError(f"unknown env {name!r} for RLlib; choose one of {', '.join(ENVS)}")
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.connectors.env_to_module import FlattenObservations
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    register_envs()
    settings = {**SMOKE_ENV_CONFIG[name], **(env_config or {})}
    worlds = int(settings.pop("num_worlds", 1))
    config = (PPOConfig()
              .environment(f"abgym-{name}", env_config=settings)
              .framework("torch")
              .training(train_batch_size_per_learner=train_batch_size, minibatch_size=minibatch_size,
                        num_epochs=num_epochs, lr=lr, gamma=gamma)
              .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=list(hidden)))
              .debugging(seed=seed)
              .reporting(metrics_num_episodes_for_smoothing=20))
    if name == "rpp":
        from abgym.envs.prompt_personalization import AGENTS

        config = config.multi_agent(policies=set(AGENTS), policy_mapping_fn=lambda agent_id, episode, **kw: agent_id)
        config = config.env_runners(num_env_runners=0, env_to_module_connector=lambda env, spaces=None, device=None:
                                    FlattenObservations(multi_agent=True))
    else:
        batched = name.endswith("-batched")
        config = config.env_runners(num_env_runners=0, num_envs_per_env_runner=worlds if batched else 1,
                                    gym_env_vectorize_mode="vector_entry_point" if batched else "sync",
                                    env_to_module_connector=lambda env, spaces=None, device=None:
                                    FlattenObservations())
    return config


def train(name: str, iterations: int = 3, *, seed: int = 0, env_config: dict | None = None, log=print,
          **ppo_settings) -> list[dict]:
    """Build RLlib's PPO for ``name`` and train ``iterations`` iterations; one row of metrics per iteration.

    Starts a local Ray instance (2 CPUs, no dashboard) when none is running, and stops it after."""
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    try:
        import ray
    except ImportError as error:
        raise ValueError(f"RLlib needs Ray, which is not installed ({error}); install it: {RAY_INSTALL}") from None
    config = ppo_config(name, seed=seed, env_config=env_config, **ppo_settings)
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    algorithm = None
    try:
        algorithm = config.build_algo()
        rows = []
        for iteration in range(1, iterations + 1):
            started = time.perf_counter()
            result = algorithm.train()
            rows.append(iteration_row(iteration, result, time.perf_counter() - started))
            log(f"{name} iteration {iteration}: env steps {rows[-1]['env_steps']}, episodes "
                f"{rows[-1]['episodes']}, return mean {rows[-1]['episode_return_mean']:.3f} "
                f"({rows[-1]['seconds']:.1f}s)")
        return rows
    finally:
        if algorithm is not None:
            algorithm.stop()
        if started_here:
            ray.shutdown()


def iteration_row(iteration: int, result: dict, seconds: float) -> dict:
    """The numbers of one ``Algorithm.train()`` result that say whether training ran: steps, episodes, returns."""
    runners = result.get("env_runners", {})
    learners = result.get("learners", {})
    losses = {module: values.get("total_loss") for module, values in learners.items()
              if isinstance(values, dict) and "total_loss" in values}
    return {"iteration": iteration, "env_steps": int(result.get("num_env_steps_sampled_lifetime", 0)),
            "episodes": int(runners.get("num_episodes_lifetime", 0)),
            "episode_return_mean": float(runners.get("episode_return_mean", float("nan"))),
            "module_returns": {k: float(v) for k, v in runners.get("module_episode_returns_mean", {}).items()},
            "losses": {k: float(v) for k, v in losses.items()}, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", choices=ENVS, default="marketing", help="which env (default: %(default)s)")
    parser.add_argument("--iterations", type=int, default=3, help="PPO iterations (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gamma", type=float, default=None,
                        help="discount (default: 0 on marketing and abtest, 0.95 on journey, 0 on rpp)")
    parser.add_argument("--env-config", default="{}", help="JSON settings of the env, over the small defaults")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args(argv)
    try:
        env_config = json.loads(args.env_config)
        if not isinstance(env_config, dict):
            raise ValueError("--env-config must be a JSON object, e.g. '{\"horizon\": 200}'")
        gamma = args.gamma if args.gamma is not None else (0.95 if args.env.startswith("journey") else 0.0)
        rows = train(args.env, args.iterations, seed=args.seed, env_config=env_config, gamma=gamma)
    except json.JSONDecodeError as error:
        print(f"abgym.rllib: error: --env-config is not valid JSON ({error})", file=sys.stderr)
        return 2
    except ValueError as error:
        print(f"abgym.rllib: error: {error}", file=sys.stderr)
        return 2
    if args.json:
        from abgym.paths import atomic_write

        with atomic_write(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
