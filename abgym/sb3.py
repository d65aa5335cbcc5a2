"""Stable-Baselines3 vector environments for abgym's env ids: the batched simulator where there is one.

SB3 trains on its own ``VecEnv`` class, not on gymnasium's ``VectorEnv``, so ``PPO(..., gym.make_vec(...))`` fails
("not a Gymnasium environment"), and ``make_vec_env`` steps N single envs one Python call at a time.
:func:`make_sb3_vec_env` gives SB3 the env's ``vector_entry_point`` (PersonalizedMarketing-v0 steps N worlds in one
numpy operation) behind SB3's ``VecEnv`` contract, and falls back to SB3's own ``make_vec_env`` (a ``DummyVecEnv``
of ``Monitor``-wrapped single envs) for the envs that have none::

    import abgym
    from stable_baselines3 import PPO
    from abgym.tensorboard import EnvMetricsCallback

    venv = abgym.make_sb3_vec_env("abgym/PersonalizedMarketing-v0", n_envs=16, seed=0, drift=False)
    PPO("MultiInputPolicy", venv).learn(10_000, callback=EnvMetricsCallback())

SB3's contract, as :class:`~stable_baselines3.common.vec_env.DummyVecEnv` keeps it: ``step_wait`` returns
``(obs, rewards, dones, infos)`` with ``dones = terminated | truncated`` and one info dict per env; an env that is
done is reset at once, its last observation in ``infos[i]["terminal_observation"]`` and
``infos[i]["TimeLimit.truncated"]`` set when the episode was cut by time (so PPO bootstraps its value); ``seed(s)``
makes the next ``reset()`` use ``s`` (the worlds of a batched env share one random stream, seeded with the first
env's seed ``s``), and ``reset_infos`` holds the reset info of each env. Both kinds come wrapped in SB3's
``VecMonitor``/``Monitor``, so ``rollout/ep_rew_mean`` is logged as usual.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env import VecEnv  # the `rl` extra; abgym imports this module lazily


def make_sb3_vec_env(env_id: str, n_envs: int = 1, seed: int | None = None, **settings):
    """An SB3 ``VecEnv`` of ``n_envs`` copies of ``env_id``; ``settings`` are the env's own settings.

    Uses the env's ``vector_entry_point`` (one batched simulator) when it registered one, else
    ``stable_baselines3.common.env_util.make_vec_env`` over ``gymnasium.make(env_id, **settings)``.
    """
    import gymnasium
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecMonitor

    import abgym  # noqa: F401  (registers the ids)

    if isinstance(n_envs, bool) or not isinstance(n_envs, (int, np.integer)) or n_envs < 1:
        raise ValueError(f"n_envs must be a whole number >= 1, got {n_envs!r}")
    try:
        spec = gymnasium.spec(env_id)
    except gymnasium.error.Error as error:
        from abgym.envs.registration import env_ids

        raise ValueError(f"unknown environment {env_id!r}; registered abgym ids: {', '.join(env_ids())}") from error
    if spec.vector_entry_point is None:
        return make_vec_env(lambda: gymnasium.make(env_id, **settings), n_envs=int(n_envs), seed=seed)
    from gymnasium.envs.registration import load_env_creator

    # Sub-envs that end their episodes apart (CustomerJourney-v0) need same-step autoreset, as SB3's VecEnv does.
    if AutoresetMode.SAME_STEP in getattr(load_env_creator(spec.vector_entry_point), "autoreset_modes", ()):
        settings = {"autoreset_mode": AutoresetMode.SAME_STEP, **settings}
    vector_env = gymnasium.make_vec(env_id, num_envs=int(n_envs), vectorization_mode="vector_entry_point",
                                    **settings)
    venv = VecMonitor(BatchedVecEnv(vector_env))
    if seed is not None:
        venv.seed(seed)
    return venv


class BatchedVecEnv(VecEnv):
    """A gymnasium ``VectorEnv`` (one batched simulator) behind SB3's ``VecEnv`` interface.

    Autoreset: with gymnasium's ``SAME_STEP`` mode the final observation comes in ``info["final_obs"]``; with
    ``NEXT_STEP`` (PersonalizedMarketing-v0) the envs that ended are reset by one more step of the vector env, which
    gymnasium defines as the reset step (actions ignored, reward 0): that needs every sub-env to end together, as
    envs with one shared horizon do, and an env whose sub-envs end apart raises a ``ValueError`` saying so; with
    ``DISABLED`` the ended ones are reset through ``reset(options={"reset_mask": ...})``.
    """

    def __init__(self, vector_env):
        self.vector_env = vector_env
        self.autoreset_mode = vector_env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        super().__init__(vector_env.num_envs, vector_env.single_observation_space, vector_env.single_action_space)
        self._actions = None
        self._dict_obs = isinstance(self.observation_space, spaces.Dict)

    # ------------------------------------------------------------------------------------------------ SB3 API
    def reset(self):
        seed = self._seeds[0]
        options = self._options[0] or None
        obs, info = self.vector_env.reset(seed=seed, options=options)
        self.reset_infos = _split_infos(info, self.num_envs)
        self._reset_seeds()
        self._reset_options()
        return self._own(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        obs, rewards, terminated, truncated, info = self.vector_env.step(self._actions)
        dones = np.logical_or(terminated, truncated)
        infos = _split_infos(info, self.num_envs)
        for index in range(self.num_envs):
            infos[index]["TimeLimit.truncated"] = bool(truncated[index] and not terminated[index])
        if dones.any():
            if self.autoreset_mode == AutoresetMode.SAME_STEP:
                final = info["final_obs"]
                for index in np.flatnonzero(dones):
                    infos[index]["terminal_observation"] = final[index]
            else:
                final = self._own(obs)
                for index in np.flatnonzero(dones):
                    infos[index]["terminal_observation"] = _row(final, index)
                obs = self._reset_done(dones)
        return self._own(obs), np.asarray(rewards, dtype=np.float32), dones, infos

    def _reset_done(self, dones: np.ndarray):
        if self.autoreset_mode == AutoresetMode.DISABLED:
            obs, info = self.vector_env.reset(options={"reset_mask": dones})
            return obs
        if not dones.all():
            raise ValueError(
                f"{type(self.vector_env.unwrapped).__name__} ended {int(dones.sum())} of its {self.num_envs} "
                "sub-envs at one step: its NEXT_STEP autoreset cannot reset only those; use make_vec_env of single "
                "envs, or give the vector env AutoresetMode.SAME_STEP or DISABLED"
            )
        # gymnasium's NEXT_STEP reset step: every sub-env starts its next episode, the actions are ignored.
        obs, *_ = self.vector_env.step(np.zeros_like(self._actions))
        return obs

    def close(self) -> None:
        self.vector_env.close()

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        """The vector env's attribute, once per index (the sub-envs are worlds of one simulator)."""
        value = getattr(self.vector_env, attr_name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self.vector_env, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        method = getattr(self.vector_env, method_name)
        return [method(*method_args, **method_kwargs) for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None for _ in range(self.num_envs)]

    # ------------------------------------------------------------------------------------------------ helpers
    def _indices(self, indices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int):
            return [indices]
        return list(indices)

    def _own(self, obs):
        # Writable arrays of our own: the batched env may return read-only broadcast views (the shared variants),
        # which torch.as_tensor warns about and VecNormalize would write through.
        if self._dict_obs:
            return {key: np.array(value) for key, value in obs.items()}
        return np.array(obs)


def _row(obs, index: int):
    if isinstance(obs, dict):
        return {key: value[index].copy() for key, value in obs.items()}
    return obs[index].copy()


def _split_infos(info: dict, n: int) -> list[dict]:
    """gymnasium's dict of arrays (with ``_key`` masks) -> SB3's list of one dict per env."""
    infos: list[dict] = [{} for _ in range(n)]
    for key, value in info.items():
        if key.startswith("_"):
            continue
        mask = info.get("_" + key)
        array = value if isinstance(value, np.ndarray) and value.shape[:1] == (n,) else None
        if array is None:  # a value shared by every env (the campaign's texts, its test id)
            for item in infos:
                item[key] = value
            continue
        items = array.tolist() if array.ndim == 1 else list(array)
        present = range(n) if mask is None or np.all(mask) else np.flatnonzero(mask)
        for index in present:
            infos[index][key] = items[index]
    return infos


__all__ = ["BatchedVecEnv", "make_sb3_vec_env"]
