"""Gymnasium wrappers that let any RL library train on abgym's envs as they are.

:class:`ValidActionWrapper` is for algorithms without action masking (plain SB3 PPO, A2C, DQN, RLlib's PPO).
ABTest-v0's action space is ``Discrete(max_arms)`` because experiments have 2 to 14 arms; an experiment with 3 arms
rejects action 13 (``invalid action np.int64(13): experiment ... has 3 arms``). The wrapper maps every action onto
a valid arm, ``valid_arms[action % n_valid]``, so that a policy over the full ``Discrete(max_arms)`` is always
legal; the policy still sees the mask in the observation (``observation["action_mask"]``) and learns which of its
outputs land where. MaskablePPO (sb3-contrib) needs no wrapper: it reads ``env.action_masks()``, which the wrapper
passes through, so the same wrapped env serves both::

    import gymnasium as gym
    from stable_baselines3 import PPO
    from abgym.wrappers import ValidActionWrapper

    env = ValidActionWrapper(gym.make("abgym/ABTest-v0", split="train"))
    PPO("MultiInputPolicy", env).learn(10_000)

Envs whose every action is always valid (PersonalizedMarketing-v0) pass through unchanged.
"""
from __future__ import annotations

import gymnasium
import numpy as np


def valid_action(action, mask) -> int:
    """``action`` mapped onto the valid actions of ``mask``: ``valid[action % n_valid]`` (identity when valid).

    The one mapping shared by training (:class:`ValidActionWrapper`) and evaluation of an unmasked policy, so that
    a model is scored on the arms it was trained to reach."""
    valid = np.flatnonzero(np.asarray(mask, dtype=bool))
    if valid.size == 0:
        raise ValueError("the action mask allows no action at all")
    action = int(np.asarray(action).reshape(-1)[0])
    return int(valid[action % valid.size])


class ValidActionWrapper(gymnasium.ActionWrapper):
    """Maps any action of a masked ``Discrete`` env onto a valid one (``valid[action % n_valid]``).

    The mask is read from the env's ``action_masks()`` (ABTest-v0, and the convention of sb3-contrib) at each step;
    an env without one is passed through unchanged.
    """

    def __init__(self, env: gymnasium.Env):
        super().__init__(env)
        if not isinstance(env.action_space, gymnasium.spaces.Discrete):
            raise ValueError(f"ValidActionWrapper needs a Discrete action space, got {env.action_space}")

    def action(self, action):
        masks = getattr(self.env.unwrapped, "action_masks", None)
        if masks is None:
            return action
        return valid_action(action, masks())

    def action_masks(self) -> np.ndarray:
        """The wrapped env's mask, for MaskablePPO (``np.ones`` when the env has none)."""
        masks = getattr(self.env.unwrapped, "action_masks", None)
        return masks() if masks is not None else np.ones(self.env.action_space.n, dtype=bool)


__all__ = ["ValidActionWrapper", "valid_action"]
