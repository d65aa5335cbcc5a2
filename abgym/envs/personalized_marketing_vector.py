"""``PersonalizedMarketing-v0`` batched: N worlds stepped by one sequence of numpy operations, not N Python calls.

``gymnasium.make_vec("abgym/PersonalizedMarketing-v0", num_envs=N, vectorization_mode="vector_entry_point")`` builds
this class. It runs the same simulator as the single environment (:class:`abgym.envs.users.MarketingWorlds`, which the
single env uses with N = 1), so that the two cannot diverge: with the same seed, the single env and this class with
N = 1 return the same observations, rewards and infos.

Autoreset follows gymnasium's default, ``AutoresetMode.NEXT_STEP``: the step after a world's episode ends resets
that world (its action is ignored, its reward is 0). All worlds share one horizon and start together, so they end
and reset together. ``info`` holds one array per key (with gymnasium's ``_key`` masks), as for
``SyncVectorEnv``. The ``variants`` observation is a read-only broadcast view of the K variants (they are the same
in every world and every step): copy it before writing to it.
"""
from __future__ import annotations

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from abgym.envs.personalized_marketing import (
    build_worlds,
    campaign_info,
    flatten_observations,
    observation_spaces,
    restart_worlds,
)

INFO_KEYS = ("expected_rewards", "oracle_action", "click", "conversion", "revenue", "segment", "regime_shift",
             "returning", "churned")


class PersonalizedMarketingVectorEnv(VectorEnv):
    """``num_envs`` worlds of PersonalizedMarketing-v0 sharing one population, stepped together."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, config: dict | None = None, render_mode: str | None = None, *,
                 embed=None, attribute_scorer=None, language_model=None, **settings):
        if render_mode is not None:
            raise ValueError("PersonalizedMarketingVectorEnv does not render; use render_mode=None")
        self.config, self.content, self.worlds = build_worlds(
            config, num_envs, embed=embed, attribute_scorer=attribute_scorer, language_model=language_model,
            settings=settings)
        self.num_envs = self.worlds.n
        self.render_mode = None
        self.flat = self.config["observation_type"] == "flat"
        self.single_observation_space = observation_spaces(self.worlds, self.config["observation_type"])
        self.single_action_space = spaces.Discrete(self.worlds.n_variants)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._variants = np.broadcast_to(self.worlds.variants, (self.num_envs, *self.worlds.variants.shape))
        self._all = np.ones(self.num_envs, bool)
        self._autoreset = np.zeros(self.num_envs, bool)
        self._zeros = np.zeros(self.num_envs)
        self._false = np.zeros(self.num_envs, bool)
        self._seeded = False

    def reset(self, *, seed: int | list | None = None, options: dict | None = None):
        if isinstance(seed, (list, tuple)):  # gymnasium allows one seed per sub-env; the worlds share one stream
            seed = seed[0]
        super().reset(seed=seed)
        self._seeded = restart_worlds(self.worlds, seed, self.np_random, self._seeded)
        self._autoreset[:] = False
        return self._observation(), self._reset_info()

    def step(self, actions):
        actions = np.asarray(actions)
        if actions.shape != (self.num_envs,) or actions.dtype.kind not in "iu":
            raise ValueError(f"actions must be {self.num_envs} integer variant indices (shape ({self.num_envs},)), "
                             f"got shape {actions.shape} dtype {actions.dtype}")
        if np.any(actions < 0) or np.any(actions >= self.worlds.n_variants):
            raise ValueError(f"actions must be in 0..{self.worlds.n_variants - 1}, got {actions}")
        if not self._seeded:
            raise RuntimeError("call reset() before step()")
        if self._autoreset.all():
            # Every world finished its episode at the last step (they share the horizon): start new ones.
            self.worlds.reset_worlds(self.worlds.rows)
            self._autoreset[:] = False
            return self._observation(), self._zeros.copy(), self._false.copy(), self._false.copy(), {}
        out = self.worlds.step(actions.astype(np.int64, copy=False))
        reward, truncated = out["reward"], out["truncated"]
        if self._autoreset.any():  # only some worlds ended (not reachable with a shared horizon; kept for safety)
            done = np.flatnonzero(self._autoreset)
            self.worlds.reset_worlds(done)
            reward = np.where(self._autoreset, 0.0, reward)
            truncated = truncated & ~self._autoreset
        self._autoreset = truncated.copy()
        info = {}
        for key in INFO_KEYS:
            info[key] = out[key]
            info["_" + key] = self._all
        return self._observation(), reward, self._false.copy(), truncated, info

    def _observation(self):
        user, context, memory = self.worlds.observe()
        if self.flat:
            return flatten_observations(user, context, memory, self.worlds.variants)
        return {"user": user, "context": context, "memory": memory, "variants": self._variants}

    def _reset_info(self) -> dict:
        # The campaign is shared by every world: its texts and names are plain values, the mask is per world.
        return campaign_info(self.content, self.worlds.n_variants, mask_shape=(self.num_envs, self.worlds.n_variants))

    def segment_expected_rewards(self, world: int = 0) -> np.ndarray:
        """(n_segments, n_variants) expected reward per segment for a fresh user, under world ``world``'s drift."""
        return self.worlds.segment_expected_rewards(world)

    def drift_report(self) -> dict:
        """Per world: regime, preference shift (N, S, A) and logit shift (N, S, K) applied so far."""
        worlds = self.worlds
        return {"t": worlds.t.copy(), "regime": worlds.regime.copy(), "preference_shift": worlds.preference_shift(),
                "logit_shift": worlds.drift_logit.reshape(worlds.n, worlds.n_segments, -1).copy()}
