"""From PersonalizedMarketing-v0's Dict observation to the feature vectors a linear bandit regresses on.

A linear bandit needs, for every variant ``a`` it may show, one vector ``phi(s, a)`` whose dot product with a learned
weight vector predicts the reward. Two shapes are useful:

- **disjoint** (one model per variant, as in Li et al. 2010): every variant sees the same context vector
  ``x(s) = [1, user, context, memory summary]``; variants share nothing, so a variant never shown stays cold.
- **shared** (one model over variant features, "hybrid" LinUCB without the per-arm part): ``phi(s, a)`` is the
  outer product of a short user vector with the variant's own features, so that what is learnt about one variant's
  embedding transfers to every variant near it, and a new variant starts warm.

The map is fixed and parameter free, so it needs no fitting and saves as a few numbers in the agent's checkpoint.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

OBSERVATION_KEYS = ("user", "context", "memory", "variants")


def has_context(observation) -> bool:
    """Whether ``observation`` is the marketing envs' Dict observation (user, context, memory, variants)."""
    return isinstance(observation, dict) and all(key in observation for key in OBSERVATION_KEYS)


def check_observation(observation) -> None:
    """Reject observations this module cannot read, with the fix in the message."""
    if not isinstance(observation, dict):
        raise TypeError(
            "contextual agents need PersonalizedMarketing-v0's Dict observation (observation_type='dict'), "
            f"got {type(observation).__name__}; make the env with config={{'observation_type': 'dict'}}"
        )
    missing = [key for key in OBSERVATION_KEYS if key not in observation]
    if missing:
        raise KeyError(f"observation lacks the key(s) {missing}; expected the keys {list(OBSERVATION_KEYS)}")


def memory_summary(memory: np.ndarray) -> np.ndarray:
    """Mean of the user's recent interactions, and the mean embedding of what they clicked.

    A memory row is ``[shown variant's embedding, click, conversion]``; empty slots are all zeros. The clicked
    embedding mean is the user's revealed taste, the plain mean tells how active and how responsive they are.
    """
    memory = np.asarray(memory, dtype=np.float64)
    if memory.ndim != 2 or memory.shape[1] < 3:
        raise ValueError(f"memory must be (memory_len, mem_dim >= 3), got shape {memory.shape}")
    clicks = memory[:, -2]
    n_filled = max(int(memory.any(axis=1).sum()), 1)
    mean_row = memory.sum(axis=0) / n_filled
    clicked = (clicks @ memory[:, :-2]) / max(clicks.sum(), 1.0)
    return np.concatenate([mean_row, clicked])


@dataclass
class FeatureMap:
    """Which parts of the observation a linear bandit sees.

    ``model``: "disjoint" or "shared" (see the module docstring). ``use_memory``: append the memory summary to the
    context. ``shared_user_parts``: observation keys crossed with the variant features in the shared model (the
    outer product grows as their length times the variant length, so the default keeps it to the user portrait).
    """

    model: str = "disjoint"
    use_memory: bool = True
    shared_user_parts: tuple[str, ...] = ("user",)

    def __post_init__(self):
        if self.model not in ("disjoint", "shared"):
            raise ValueError(f"model must be 'disjoint' or 'shared', got {self.model!r}")
        unknown = [part for part in self.shared_user_parts if part not in ("user", "context", "memory")]
        if unknown:
            raise ValueError(f"shared_user_parts: unknown part(s) {unknown}; use 'user', 'context' or 'memory'")
        self.shared_user_parts = tuple(self.shared_user_parts)

    def context(self, observation) -> np.ndarray:
        """``x(s)``: bias, user portrait, context and (optionally) the memory summary."""
        check_observation(observation)
        parts = [np.ones(1), np.asarray(observation["user"], np.float64).ravel(),
                 np.asarray(observation["context"], np.float64).ravel()]
        if self.use_memory:
            parts.append(memory_summary(observation["memory"]))
        return np.concatenate(parts)

    def _shared_user(self, observation) -> np.ndarray:
        parts = [np.ones(1)]
        for part in self.shared_user_parts:
            if part == "memory":
                parts.append(memory_summary(observation["memory"]))
            else:
                parts.append(np.asarray(observation[part], np.float64).ravel())
        return np.concatenate(parts)

    def arm_features(self, observation, n_arms: int | None = None) -> np.ndarray:
        """``phi(s, a)`` for every variant: (n_variants, dim).

        On an env whose observation carries no user context (ABTest-v0, PromptPersonalization-v0), and given
        ``n_arms``, every arm's feature vector is the bias alone: the agent is then a context-free bandit (LinUCB
        becomes UCB on ridge-regularised means, linear TS becomes Gaussian Thompson sampling).
        """
        if n_arms and not has_context(observation):
            return np.ones((int(n_arms), 1))
        check_observation(observation)
        variants = np.asarray(observation["variants"], np.float64)
        if self.model == "disjoint":
            x = self.context(observation)
            return np.broadcast_to(x, (variants.shape[0], x.size))
        user = self._shared_user(observation)
        variants = np.concatenate([np.ones((variants.shape[0], 1)), variants], axis=1)
        # Row a is vec(user ⊗ [1, v_a]): user main effects, variant main effects and every user-variant product.
        return (user[None, :, None] * variants[:, None, :]).reshape(variants.shape[0], -1)

    def main_effects(self, observation) -> np.ndarray:
        """Boolean mask over ``phi``'s entries: True for the bias and the main effects, False for interactions.

        The agents give interactions their own ridge penalty (``interaction_l2``): a prior that personal deviations
        from the population's preferences are small, so that they are learnt only as fast as the data supports.
        """
        if not has_context(observation):
            return np.ones(1, dtype=bool)  # the context-free case: the bias is each arm's main effect
        if self.model == "disjoint":
            mask = np.zeros(self.context(observation).size, dtype=bool)
            mask[0] = True  # each variant's own bias; the context terms are its personalisation
            return mask
        n_user = self._shared_user(observation).size
        n_variant = np.asarray(observation["variants"]).shape[1] + 1
        grid = np.zeros((n_user, n_variant), dtype=bool)
        grid[0, :] = True  # 1 x [1, v]: the bias and the variants' main effects
        grid[:, 0] = True  # user x 1: the users' main effects (the same for every variant)
        return grid.ravel()

    def dim(self, observation) -> int:
        return int(self.arm_features(observation).shape[1])

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureMap":
        return cls(**{**data, "shared_user_parts": tuple(data.get("shared_user_parts", ("user",)))})
