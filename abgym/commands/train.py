"""``abgym train``: train an RL agent on an abgym environment with Stable-Baselines3, logging to TensorBoard.

    abgym train --env abgym/ABTest-v0 --algo ppo --steps 50000 --logdir runs/
    tensorboard --logdir runs/

``ppo`` is sb3-contrib's MaskablePPO with ``MultiInputPolicy`` (ABTest-v0's observation is a Dict, and its action
mask hides the padded arms of experiments with fewer than ``max_arms`` arms); plain PPO on envs without a mask. ``a2c`` has no action masking, so
its environment maps a padded arm onto a real one (``action mod n_arms``). Observations are normalised with
``VecNormalize`` (raw impression counts run to tens of thousands); the statistics are saved beside the model.
The model is saved to ``<logdir>/<run>/model.zip`` with ``vecnormalize.pkl`` and, written last, the manifest
``model.zip.manifest.json`` that binds the two (:mod:`abgym.checkpoint`); ``abgym evaluate --model`` evaluates it
and refuses a partial or mixed set.
"""
from __future__ import annotations

import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np

ALGOS = ("ppo", "a2c")
NORMALIZER_FILE = "vecnormalize.pkl"
CHECKPOINT_KIND = "abgym-train"


def register(subparsers) -> None:
    from abgym.commands.evaluate import add_env_options, positive_int
    from abgym.commands.options import non_negative_int

    parser = subparsers.add_parser("train", help="train PPO (MaskablePPO) or A2C with Stable-Baselines3",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="abgym/ABTest-v0", help="environment id (default: %(default)s)")
    parser.add_argument("--algo", choices=ALGOS, default="ppo", help="algorithm (default: %(default)s)")
    parser.add_argument("--steps", type=positive_int, default=50_000, help="environment steps (default: %(default)s)")
    parser.add_argument("--logdir", default="runs", help="TensorBoard folder (default: %(default)s)")
    parser.add_argument("--run-name", help="sub-folder of --logdir for this run (default: <algo>_seed<seed>)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--n-envs", type=positive_int, default=4, help="parallel environments (default: %(default)s)")
    parser.add_argument("--n-steps", type=positive_int, default=None,
                        help="rollout length per environment (default: the algorithm's own)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_env_options(parser)
    parser.set_defaults(handler=run, split=None)


def run(args) -> int:
    from abgym.commands.evaluate import env_kwargs_from

    env_kwargs = env_kwargs_from(args)
    if args.env == "abgym/ABTest-v0":
        env_kwargs.setdefault("split", "train")  # keep the test split for evaluation
    from abgym.commands.options import check_output_folder

    run_dir = check_output_folder(Path(args.logdir) / (args.run_name or f"{args.algo}_seed{args.seed}"), "--logdir")
    started = time.perf_counter()
    try:
        model, normalizer = train(args.env, args.algo, args.steps, run_dir, env_kwargs=env_kwargs, seed=args.seed,
                                  n_envs=args.n_envs, n_steps=args.n_steps, progress=not args.no_progress)
    except ValueError as error:
        print(f"abgym train: error: {error}", file=sys.stderr)
        return 2
    path = save(model, normalizer, run_dir / "model.zip")
    print(f"trained {args.algo} on {args.env} for {args.steps} steps in {time.perf_counter() - started:.0f} s; "
          f"model: {path}; TensorBoard: tensorboard --logdir {args.logdir}")
    return 0


def make_env_fn(env_id: str, env_kwargs: dict, algo: str):
    import gymnasium

    import abgym  # noqa: F401
    from abgym.wrappers import ValidActionWrapper

    def make():
        env = gymnasium.make(env_id, **env_kwargs)
        # A2C has no action masking: abgym.wrappers.ValidActionWrapper maps a padded arm onto a real one.
        masked = algo == "a2c" and hasattr(env.unwrapped, "action_masks")
        return ValidActionWrapper(env) if masked else env

    return make


def train(env_id: str, algo: str, steps: int, run_dir, *, env_kwargs=None, seed: int = 0, n_envs: int = 4,
          n_steps: int | None = None, progress: bool = True):
    """Train and return ``(model, VecNormalize)``; TensorBoard logs go to ``run_dir``."""
    import torch

    if algo not in ALGOS:
        raise ValueError(f"unknown algorithm {algo!r}; choose one of {', '.join(ALGOS)}")
    # The policy is a small MLP: extra intra-op threads only add overhead (measured: 8 ms per linear layer with
    # the default threads on a loaded 2-core machine). Honour an explicit OMP_NUM_THREADS.
    threads = torch.get_num_threads()
    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(1)
    try:
        return _train(env_id, algo, steps, run_dir, env_kwargs=env_kwargs, seed=seed, n_envs=n_envs, n_steps=n_steps,
                      progress=progress)
    finally:
        torch.set_num_threads(threads)  # leave the caller's process as it was


def _train(env_id, algo, steps, run_dir, *, env_kwargs, seed, n_envs, n_steps, progress):
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.vec_env import VecNormalize

    from abgym.tensorboard import metrics_callback

    env_kwargs = dict(env_kwargs or {})
    venv = make_vec_env(make_env_fn(env_id, env_kwargs, algo), n_envs=n_envs, seed=seed)
    box_keys = _box_keys(venv.observation_space)
    normalizer = VecNormalize(venv, norm_obs=bool(box_keys) or box_keys is None, norm_reward=True,
                              norm_obs_keys=box_keys or None)
    options = {} if n_steps is None else {"n_steps": n_steps}
    policy = "MultiInputPolicy" if box_keys is not None else "MlpPolicy"
    if algo == "ppo":
        from sb3_contrib import MaskablePPO
        from stable_baselines3 import PPO

        if n_steps is not None:
            options["batch_size"] = min(64, n_steps * n_envs)
        # MaskablePPO where the env has an action mask (ABTest-v0), plain PPO elsewhere.
        ppo = MaskablePPO if _has_action_masks(venv) else PPO
        model = ppo(policy, normalizer, seed=seed, verbose=0, **options)
    else:
        from stable_baselines3 import A2C

        model = A2C(policy, normalizer, seed=seed, verbose=0, **options)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    model.set_logger(configure(str(run_dir), ["tensorboard", "csv"]))
    model.learn(total_timesteps=steps, callback=metrics_callback(), progress_bar=progress)
    return model, normalizer


def _has_action_masks(venv) -> bool:
    # has_attr, not a call: ABTest-v0's action_masks() needs a reset first.
    return venv.has_attr("action_masks")


def _box_keys(space):
    """The Box entries of a Dict observation (the ones to normalise); None for a non-Dict space."""
    from gymnasium import spaces

    if not isinstance(space, spaces.Dict):
        return None
    return [key for key, sub in space.spaces.items() if isinstance(sub, spaces.Box)]


def save(model, normalizer, path) -> Path:
    """Save the model and its observation statistics as one checkpoint (:mod:`abgym.checkpoint`): both files, then
    a manifest with their hashes, so that a crash never leaves a model paired with another run's normaliser."""
    import io

    from abgym import checkpoint

    path = Path(path)
    model_bytes = io.BytesIO()
    model.save(model_bytes)
    venv = normalizer.venv
    normalizer.venv = None  # the environments themselves are not saved (VecNormalize.save does the same)
    try:
        normalizer_bytes = pickle.dumps(normalizer)
    finally:
        normalizer.venv = venv
    checkpoint.write(path, {path.name: model_bytes.getvalue(), NORMALIZER_FILE: normalizer_bytes},
                     kind=CHECKPOINT_KIND, metadata={"num_timesteps": int(model.num_timesteps)})
    return path


def load_policy(path):
    """An evaluation agent for a model saved by :func:`save` (``abgym evaluate --model``)."""
    import io

    from abgym import checkpoint
    from abgym.evaluation import SB3PolicyAgent

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model at {path}; train one with `abgym train --logdir runs/`")
    from sb3_contrib import MaskablePPO
    from stable_baselines3 import A2C
    from stable_baselines3.common.save_util import load_from_zip_file

    # The model and its normaliser as one verified set (a mismatched or partial set is refused).
    _, parts = checkpoint.read(path, kind=CHECKPOINT_KIND, required=[NORMALIZER_FILE],
                               what="a model saved by `abgym train`")
    try:
        data, _, _ = load_from_zip_file(io.BytesIO(parts[path.name]), device="cpu", load_data=True)
        policy_class = data["policy_class"].__name__
    except Exception as error:  # a zip that SB3 cannot read, or not a zip at all
        raise ValueError(f"{path} is not a model saved by `abgym train` ({type(error).__name__}: {error})") from error
    if policy_class.startswith("Maskable"):
        algo, cls = "ppo", MaskablePPO
    elif "clip_range" in data:  # PPO saves its clipping schedule, A2C has none
        from stable_baselines3 import PPO

        algo, cls = "ppo", PPO
    else:
        algo, cls = "a2c", A2C
    model = cls.load(io.BytesIO(parts[path.name]), device="cpu")
    normalizer = pickle.loads(parts[NORMALIZER_FILE])
    normalizer.training = False
    normalize = normalizer.normalize_obs
    return SB3PolicyAgent(model, name=f"{algo}:{path.parent.name}", obs_normalizer=normalize)
