"""The Memory-Augmented Reward Estimator (MARE) of the RL-LLM-AB agent (arXiv 2506.06316), learnt online.

Why: a click or a purchase is a rare, noisy signal, and the preferences behind it drift. The estimator predicts the
expected reward of every variant for the arriving user from three things: the user's state (portrait and context),
the variant's embedding, and an external memory of that user's past interactions (the env's ``memory``: shown
variant, click, conversion), read by attention with a query that depends on the variant, so that it looks up "how
did this user react to things like this variant". It is trained online, on a sliding window of recent
interactions, so that after a regime shift it forgets the old preferences within a window.

How the agent uses it (:class:`RewardEstimatorWrapper`, the ablations of the comparison):

- ``input``: its per-variant estimates are added to the observation (key ``"estimates"``), so that the actor and the
  critic of :mod:`abgym.agents.actor_critic` see a model-based value of every variant (a critic input).
- ``shaping``: the reward PPO learns from is ``(1 - beta) * r + beta * r_hat(s, a)``: the estimate is a
  lower-variance stand-in for the noisy observed reward (a control variate), which speeds up credit assignment.
  What the env pays and what the comparison measures is always the real reward.
- ``both``: the two together (the default "PPO + reward estimator" agent). ``use_memory=False`` drops the memory
  attention (the memory ablation).

What it estimates (``target`` of the wrapper): ``"immediate"`` (the next reward, the default, right where every
arrival is a new user) or ``"lifetime"``: the discounted reward of the rest of the user's journey from this visit,
``sum_t gamma^t r_t``, learnt by Monte Carlo when each journey ends. That is the paper's use of MARE, an estimate of
**long-term revenue** from real-time feedback, and where a visit's consequences outlast it (CustomerJourney-v0) it
hands the actor and the critic a per-variant long-term value.

A **prior** (:meth:`OnlineRewardEstimator.set_prior`, e.g. the Experimentation Accelerator's CTR for each variant
times the value of a click) is what the estimator predicts before it has data; it fades as interactions arrive:
``w = strength / (strength + n_seen)``, ``estimate = w * prior + (1 - w) * model``.
"""
from __future__ import annotations

import io
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from abgym.paths import atomic_write

USES = ("input", "shaping", "both")
TARGETS = ("immediate", "lifetime")


def _as_tensor(array, device="cpu") -> torch.Tensor:
    return torch.as_tensor(np.array(array, dtype=np.float32), device=device)  # a copy: views may be read-only


class MemoryAugmentedRewardEstimator(nn.Module):
    """Predicts the reward of each of K variants: ``(user, context, memory, variants) -> (batch, K)``."""

    def __init__(self, user_dim: int, context_dim: int, mem_dim: int, variant_dim: int, hidden: int = 64,
                 use_memory: bool = True):
        super().__init__()
        self.dims = dict(user_dim=user_dim, context_dim=context_dim, mem_dim=mem_dim, variant_dim=variant_dim,
                         hidden=hidden, use_memory=use_memory)
        self.use_memory = use_memory
        self.state_encoder = nn.Sequential(nn.Linear(user_dim + context_dim, hidden), nn.ReLU(),
                                           nn.Linear(hidden, hidden))
        self.variant_encoder = nn.Sequential(nn.Linear(variant_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        if use_memory:
            self.memory_key = nn.Linear(mem_dim, hidden)
            self.memory_value = nn.Linear(mem_dim, hidden)
            self.query = nn.Linear(2 * hidden, hidden)
        head_in = (4 if use_memory else 3) * hidden
        self.head = nn.Sequential(nn.Linear(head_in, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, user: torch.Tensor, context: torch.Tensor, memory: torch.Tensor,
                variants: torch.Tensor) -> torch.Tensor:
        state = self.state_encoder(torch.cat([user, context], dim=-1))            # (B, H)
        variant = self.variant_encoder(variants)                                  # (B, K, H)
        state_k = state.unsqueeze(1).expand_as(variant)
        parts = [state_k, variant, state_k * variant]
        if self.use_memory:
            query = self.query(torch.cat([state_k, variant], dim=-1))             # (B, K, H)
            keys, values = self.memory_key(memory), self.memory_value(memory)     # (B, M, H)
            logits = query @ keys.transpose(1, 2) / keys.shape[-1] ** 0.5         # (B, K, M)
            filled = memory.abs().sum(-1) > 0                                     # empty slots are all zeros
            logits = logits.masked_fill(~filled.unsqueeze(1), -1e9)
            weights = torch.softmax(logits, dim=-1) * filled.any(-1, keepdim=True).unsqueeze(-1)
            parts.append(weights @ values)                                        # no history: zeros
        return self.head(torch.cat(parts, dim=-1)).squeeze(-1)                    # (B, K)


class OnlineRewardEstimator:
    """The estimator plus its sliding replay window and optimizer: ``predict``, ``observe``, ``save``/``load``.

    ``observe`` stores one interaction and, every ``train_every`` of them, takes ``gradient_steps`` Adam steps on
    minibatches from the last ``window`` interactions (mean squared error of the shown variant's prediction).
    """

    def __init__(self, observation_space: gym.spaces.Dict, hidden: int = 64, use_memory: bool = True,
                 window: int = 4096, batch_size: int = 128, train_every: int = 32, gradient_steps: int = 4,
                 learning_rate: float = 3e-3, seed: int = 0):
        spaces = observation_space.spaces
        missing = [key for key in ("user", "context", "memory", "variants") if key not in spaces]
        if missing:
            raise KeyError(f"the reward estimator needs the Dict observation keys {missing} "
                           "(make the env with observation_type='dict')")
        self.shapes = {key: spaces[key].shape for key in ("user", "context", "memory", "variants")}
        self.hyperparameters = dict(hidden=hidden, use_memory=use_memory, window=window, batch_size=batch_size,
                                    train_every=train_every, gradient_steps=gradient_steps,
                                    learning_rate=learning_rate, seed=seed)
        self.window, self.batch_size = int(window), int(batch_size)
        self.train_every, self.gradient_steps = int(train_every), int(gradient_steps)
        with torch.random.fork_rng(devices=[]):  # seeded weights without reseeding the caller's global RNG
            torch.manual_seed(seed)
            self.model = MemoryAugmentedRewardEstimator(
                user_dim=self.shapes["user"][0], context_dim=self.shapes["context"][0],
                mem_dim=self.shapes["memory"][1], variant_dim=self.shapes["variants"][1], hidden=hidden,
                use_memory=use_memory)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=learning_rate)
        self.rng = np.random.default_rng(seed)
        self.buffer = {key: np.zeros((self.window, *shape), np.float32) for key, shape in self.shapes.items()}
        self.buffer["action"] = np.zeros(self.window, np.int64)
        self.buffer["reward"] = np.zeros(self.window, np.float32)
        self.n_seen = 0
        self.last_loss = float("nan")
        self.prior: np.ndarray | None = None
        self.prior_strength = 0.0

    def set_prior(self, values, strength: float = 256.0) -> None:
        """Predict ``values`` (one per variant) before any data, fading with weight strength / (strength + n_seen)."""
        values = np.asarray(values, dtype=np.float64)
        n_variants = self.shapes["variants"][0]
        if values.shape != (n_variants,) or not np.all(np.isfinite(values)):
            raise ValueError(f"the prior must be {n_variants} finite values (one per variant), got {values!r}")
        if not np.isfinite(strength) or strength < 0:
            raise ValueError(f"the prior's strength must be a finite number >= 0, got {strength!r}")
        self.prior, self.prior_strength = values, float(strength)

    def prior_weight(self) -> float:
        """The share of the prior in :meth:`predict` now (0 without a prior)."""
        if self.prior is None or self.prior_strength == 0:
            return 0.0
        return self.prior_strength / (self.prior_strength + self.n_seen)

    def predict(self, observation) -> np.ndarray:
        """Estimated reward of every variant, (K,) for one observation or (B, K) for a batch."""
        single = np.ndim(observation["user"]) == 1
        tensors = [_as_tensor(observation[key]) for key in ("user", "context", "memory", "variants")]
        if single:
            tensors = [tensor.unsqueeze(0) for tensor in tensors]
        with torch.no_grad():
            estimates = self.model(*tensors).numpy()
        weight = self.prior_weight()
        if weight:
            estimates = weight * self.prior + (1 - weight) * estimates
        return estimates[0] if single else estimates

    def observe(self, observation, action: int, reward: float) -> None:
        slot = self.n_seen % self.window
        for key in self.shapes:
            self.buffer[key][slot] = observation[key]
        self.buffer["action"][slot], self.buffer["reward"][slot] = action, reward
        self.n_seen += 1
        if self.n_seen % self.train_every == 0 and self.n_seen >= self.batch_size:
            self.train(self.gradient_steps)

    def train(self, steps: int) -> float:
        size = min(self.n_seen, self.window)
        for _ in range(steps):
            index = self.rng.integers(size, size=min(self.batch_size, size))
            batch = {key: torch.as_tensor(value[index]) for key, value in self.buffer.items()}
            predicted = self.model(batch["user"], batch["context"], batch["memory"], batch["variants"])
            chosen = predicted.gather(1, batch["action"].unsqueeze(1)).squeeze(1)
            loss = torch.mean((chosen - batch["reward"]) ** 2)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.last_loss = float(loss.detach())
        return self.last_loss

    # -- save / load: weights, optimizer, replay window and RNG, so that training resumes exactly ----------------
    def to_bytes(self) -> bytes:
        state = {"shapes": self.shapes, "hyperparameters": self.hyperparameters, "model": self.model.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "buffer": self.buffer, "n_seen": self.n_seen,
                 "rng_state": self.rng.bit_generator.state, "prior": self.prior,
                 "prior_strength": self.prior_strength}
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return buffer.getvalue()

    def save(self, path: str | Path) -> Path:
        with atomic_write(path) as handle:
            handle.write(self.to_bytes())
        return Path(path)

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "the estimator checkpoint") -> "OnlineRewardEstimator":
        try:
            state = torch.load(io.BytesIO(data), weights_only=False)
            shapes = state["shapes"]
        except Exception as error:  # torch raises many kinds on a foreign file
            raise ValueError(f"{source} is not a checkpoint written by OnlineRewardEstimator.save: {error}") from error
        space = gym.spaces.Dict({key: gym.spaces.Box(-np.inf, np.inf, shape) for key, shape in shapes.items()})
        estimator = cls(space, **state["hyperparameters"])
        estimator.model.load_state_dict(state["model"])
        estimator.optimizer.load_state_dict(state["optimizer"])
        estimator.buffer, estimator.n_seen = state["buffer"], state["n_seen"]
        estimator.rng.bit_generator.state = state["rng_state"]
        estimator.prior, estimator.prior_strength = state.get("prior"), state.get("prior_strength", 0.0)
        return estimator

    @classmethod
    def load(cls, path: str | Path) -> "OnlineRewardEstimator":
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no reward-estimator checkpoint at {path}")
        return cls.from_bytes(path.read_bytes(), source=str(path))


class RewardEstimatorWrapper(gym.Wrapper):
    """Plugs an :class:`OnlineRewardEstimator` into an env for an RL agent (see the module docstring for ``use``).

    The real reward stays in ``info["env_reward"]``; the estimate of the shown variant in ``info["reward_estimate"]``.
    """

    def __init__(self, env: gym.Env, estimator: OnlineRewardEstimator | None = None, use: str = "both",
                 beta: float = 0.5, target: str = "immediate", gamma: float = 0.95, **estimator_kwargs):
        super().__init__(env)
        if use not in USES:
            raise ValueError(f"use must be one of {USES}, got {use!r}")
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        if target == "lifetime" and use != "input":
            raise ValueError(f"target='lifetime' estimates the rest of the journey's return, which cannot shape a "
                             f"per-step reward: use use='input' with it, not {use!r}")
        self.target, self.gamma = target, float(gamma)
        self._journey: list[tuple[dict, int, float]] = []  # target="lifetime": this journey's visits so far
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        if not isinstance(env.observation_space, gym.spaces.Dict):
            raise TypeError("RewardEstimatorWrapper needs the Dict observation (observation_type='dict')")
        self.estimator = estimator or OnlineRewardEstimator(env.observation_space, **estimator_kwargs)
        self.use, self.beta = use, float(beta)
        self.feeds_input = use in ("input", "both")
        self.shapes_reward = use in ("shaping", "both")
        if self.feeds_input:
            n_variants = env.observation_space["variants"].shape[0]
            self.observation_space = gym.spaces.Dict(
                {**env.observation_space.spaces,
                 "estimates": gym.spaces.Box(-np.inf, np.inf, (n_variants,), np.float32)})
        self._observation = None
        self._estimates = None

    def _augment(self, observation):
        self._observation = observation
        self._estimates = self.estimator.predict(observation)
        if self.feeds_input:
            return {**observation, "estimates": self._estimates.astype(np.float32)}
        return observation

    def reset(self, **kwargs):
        self._journey = []  # a journey cut short by a reset has no known return: it is not learnt from
        observation, info = self.env.reset(**kwargs)
        return self._augment(observation), info

    def _learn_journey(self) -> None:
        """Every visit of the journey that just ended, with its discounted reward-to-go as the target."""
        to_go = 0.0
        returns = []
        for _, _, reward in reversed(self._journey):
            to_go = reward + self.gamma * to_go
            returns.append(to_go)
        for (observation, action, _), value in zip(self._journey, reversed(returns)):
            self.estimator.observe(observation, action, value)
        self._journey = []

    def step(self, action):
        action = int(action)
        estimate = float(self._estimates[action])
        observation, reward, terminated, truncated, info = self.env.step(action)
        if self.target == "immediate":
            self.estimator.observe(self._observation, action, float(reward))
        else:
            self._journey.append((self._observation, action, float(reward)))
            if terminated or truncated:
                self._learn_journey()
        info = {**info, "env_reward": float(reward), "reward_estimate": estimate}
        learnt_reward = (1 - self.beta) * reward + self.beta * estimate if self.shapes_reward else reward
        return self._augment(observation), float(learnt_reward), terminated, truncated, info
