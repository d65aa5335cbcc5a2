"""The RL-LLM-AB agent's actor-critic: Stable-Baselines3 PPO or A2C with a policy that scores each variant.

SB3's stock policies end in a linear layer with one output per action, so they are tied to one number of variants
and learn nothing that transfers between them. Here the features extractor (:class:`VariantAttentionExtractor`)
fuses the user, the context, the user's memory and the variants' embeddings (LLM-derived, PCA-reduced, from the
env) with attention, and outputs one score per variant plus a pooled summary for the critic; the policy
(:class:`VariantScoringPolicy`) uses the scores directly as the logits of its categorical distribution. No weight
depends on K, so a trained policy handles any number of variants (:func:`transfer_policy_weights`).

When the env is wrapped in :class:`abgym.agents.reward_estimator.RewardEstimatorWrapper` with ``use="input"`` or
``"both"``, the observation has an ``"estimates"`` key (the Memory-Augmented Reward Estimator's per-variant reward
estimates): each variant token then carries its standardized estimate, and a learnable gain adds it straight to
that variant's score, so that the actor can follow the model from its first update.

:class:`ActorCriticAgent` puts it together (algorithm, optional estimator, TensorBoard, save/load/resume).
"""
from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from stable_baselines3 import A2C, PPO
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from abgym.agents.reward_estimator import OnlineRewardEstimator, RewardEstimatorWrapper
from abgym.paths import atomic_write

ALGORITHMS = {"ppo": PPO, "a2c": A2C}
REQUIRED_KEYS = ("user", "context", "memory", "variants")


def _standardize(values: torch.Tensor) -> torch.Tensor:
    """Per-row z-score across variants: what matters to the choice is how a variant compares with the others."""
    return (values - values.mean(-1, keepdim=True)) / (values.std(-1, keepdim=True, unbiased=False) + 1e-6)


class VariantAttentionExtractor(BaseFeaturesExtractor):
    """Dict observation -> ``[score of each variant (K), critic summary (2 * hidden)]``.

    1. user state ``u``: MLP of portrait and context, plus attention (query ``u``) over the memory rows;
    2. variant tokens: MLP of each variant's embedding (and its standardized estimate, if given);
    3. one multi-head attention layer over ``[u, variant_1..K]``, so that each variant is seen beside the others;
    4. score of variant ``a``: MLP of ``[token_a, u, token_a * u]`` (+ gain * estimate_a).
    """

    def __init__(self, observation_space: gym.spaces.Dict, hidden: int = 64, n_heads: int = 4):
        missing = [key for key in REQUIRED_KEYS if key not in observation_space.spaces]
        if missing:
            raise KeyError(f"VariantAttentionExtractor needs the Dict observation keys {missing} "
                           "(make the env with observation_type='dict')")
        n_variants = observation_space["variants"].shape[0]
        super().__init__(observation_space, features_dim=n_variants + 2 * hidden)
        self.n_variants, self.hidden = n_variants, hidden
        self.has_estimates = "estimates" in observation_space.spaces
        user_dim, context_dim = observation_space["user"].shape[0], observation_space["context"].shape[0]
        mem_dim, variant_dim = observation_space["memory"].shape[1], observation_space["variants"].shape[1]
        self.state_encoder = nn.Sequential(nn.Linear(user_dim + context_dim, hidden), nn.ReLU(),
                                           nn.Linear(hidden, hidden))
        self.memory_key = nn.Linear(mem_dim, hidden)
        self.memory_value = nn.Linear(mem_dim, hidden)
        self.user_merge = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU())
        self.variant_encoder = nn.Sequential(nn.Linear(variant_dim + int(self.has_estimates), hidden), nn.ReLU(),
                                             nn.Linear(hidden, hidden))
        self.attention = nn.MultiheadAttention(hidden, n_heads, batch_first=True)
        self.norm = nn.LayerNorm(hidden)
        self.scorer = nn.Sequential(nn.Linear(3 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        if self.has_estimates:
            self.estimate_gain = nn.Parameter(torch.tensor(1.0))

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        state = self.state_encoder(torch.cat([observations["user"], observations["context"]], dim=-1))  # (B, H)
        memory = observations["memory"]
        filled = memory.abs().sum(-1) > 0                                                               # (B, M)
        logits = (self.memory_key(memory) @ state.unsqueeze(-1)).squeeze(-1) / self.hidden ** 0.5
        weights = torch.softmax(logits.masked_fill(~filled, -1e9), dim=-1) * filled.any(-1, keepdim=True)
        recalled = (weights.unsqueeze(-1) * self.memory_value(memory)).sum(1)
        user = self.user_merge(torch.cat([state, recalled], dim=-1))                                   # (B, H)

        variants = observations["variants"]
        if self.has_estimates:
            estimates = _standardize(observations["estimates"])
            variants = torch.cat([variants, estimates.unsqueeze(-1)], dim=-1)
        tokens = torch.cat([user.unsqueeze(1), self.variant_encoder(variants)], dim=1)                 # (B, 1+K, H)
        attended, _ = self.attention(tokens, tokens, tokens, need_weights=False)
        tokens = self.norm(tokens + attended)
        user_token, variant_tokens = tokens[:, 0], tokens[:, 1:]
        user_k = user_token.unsqueeze(1).expand_as(variant_tokens)
        scores = self.scorer(torch.cat([variant_tokens, user_k, variant_tokens * user_k], -1)).squeeze(-1)
        if self.has_estimates:
            scores = scores + self.estimate_gain * estimates
        summary = torch.cat([user_token, variant_tokens.mean(1)], dim=-1)
        return torch.cat([scores, summary], dim=-1)


class ScoresAndCritic(nn.Module):
    """SB3's ``mlp_extractor`` slot: the actor latent is the K scores, the critic latent an MLP of the summary."""

    def __init__(self, n_variants: int, summary_dim: int, critic_hidden: int = 64):
        super().__init__()
        self.n_variants = n_variants
        self.latent_dim_pi, self.latent_dim_vf = n_variants, critic_hidden
        self.critic = nn.Sequential(nn.Linear(summary_dim, critic_hidden), nn.Tanh())

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        return features[:, : self.n_variants]

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        return self.critic(features[:, self.n_variants:])

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_actor(features), self.forward_critic(features)


class VariantScoringPolicy(ActorCriticPolicy):
    """Actor-critic whose action logits are the extractor's per-variant scores (no K-sized output layer)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("features_extractor_class", VariantAttentionExtractor)
        super().__init__(*args, **kwargs)

    def _build_mlp_extractor(self) -> None:
        n_variants = self.features_extractor.n_variants
        self.mlp_extractor = ScoresAndCritic(n_variants, self.features_dim - n_variants)

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        self.action_net = nn.Identity()  # the scores are the logits
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)


def transfer_policy_weights(source: VariantScoringPolicy, target: VariantScoringPolicy) -> None:
    """Copy a trained policy into one built for a different number of variants (no weight depends on K)."""
    target.load_state_dict(source.state_dict())


DEFAULT_HYPERPARAMETERS = {
    "ppo": dict(n_steps=256, batch_size=64, n_epochs=4, learning_rate=1e-3, gamma=0.0, gae_lambda=1.0,
                ent_coef=0.01, clip_range=0.2),
    "a2c": dict(n_steps=16, learning_rate=1e-3, gamma=0.0, gae_lambda=1.0, ent_coef=0.01),
}


class ActorCriticAgent:
    """An SB3 PPO or A2C with :class:`VariantScoringPolicy`, optionally fed by the reward estimator.

    ``estimator``: None (plain RL), or ``"input"`` | ``"shaping"`` | ``"both"`` (see
    :mod:`abgym.agents.reward_estimator`). ``gamma`` defaults to 0: each arrival is a new decision whose reward
    arrives at once; raise it when the env carries consequences across arrivals. Checkpoints are SB3 zips written
    atomically, with the estimator (weights, optimizer, replay window) beside them, and :meth:`learn` continues the
    step count, so that a run resumes where it stopped.
    """

    def __init__(self, env: gym.Env, algorithm: str = "ppo", estimator: str | None = None, use_memory: bool = True,
                 beta: float = 0.5, seed: int = 0, hidden: int = 64, tensorboard_log: str | None = None,
                 verbose: int = 0, estimator_kwargs: dict | None = None, _model=None, _estimator=None,
                 **hyperparameters):
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {algorithm!r}; choose one of {sorted(ALGORITHMS)}")
        self.algorithm, self.estimator_use, self.seed = algorithm, estimator, seed
        self.settings = dict(algorithm=algorithm, estimator=estimator, use_memory=use_memory, beta=beta, seed=seed,
                             hidden=hidden, estimator_kwargs=estimator_kwargs or {})
        if estimator is not None:
            env = RewardEstimatorWrapper(
                env, estimator=_estimator, use=estimator, beta=beta,
                **({} if _estimator is not None else dict(use_memory=use_memory, seed=seed, **(estimator_kwargs or {}))))
        self.env = env
        if _model is not None:
            self.model = _model
            self.model.set_env(env)
            return
        params = {**DEFAULT_HYPERPARAMETERS[algorithm], **hyperparameters}
        self.model = ALGORITHMS[algorithm](
            VariantScoringPolicy, env, seed=seed, verbose=verbose, tensorboard_log=tensorboard_log,
            policy_kwargs=dict(features_extractor_kwargs=dict(hidden=hidden)), device="cpu", **params)

    @property
    def reward_estimator(self) -> OnlineRewardEstimator | None:
        return self.env.estimator if isinstance(self.env, RewardEstimatorWrapper) else None

    @property
    def name(self) -> str:
        return self.algorithm + ("" if self.estimator_use is None else f"+mare-{self.estimator_use}")

    def learn(self, total_timesteps: int, callback=None, tb_log_name: str | None = None, progress_bar=False):
        """Train for ``total_timesteps`` more steps (continuing the count and the TensorBoard run after a load)."""
        self.model.learn(total_timesteps, callback=callback, tb_log_name=tb_log_name or self.name,
                         reset_num_timesteps=self.model.num_timesteps == 0, progress_bar=progress_bar)
        return self

    def act(self, observation, info: dict | None = None, deterministic: bool = True) -> int:
        if self.reward_estimator is not None and self.env.feeds_input and "estimates" not in observation:
            observation = {**observation, "estimates": self.reward_estimator.predict(observation).astype(np.float32)}
        action, _ = self.model.predict(observation, deterministic=deterministic)
        return int(action)

    def save(self, path: str | Path) -> Path:
        """``path`` (SB3 zip) and, with an estimator, ``path`` + ``.estimator.pt``; both atomic."""
        path = Path(path)
        if path.suffix != ".zip":
            path = path.with_suffix(path.suffix + ".zip")
        if self.reward_estimator is not None:
            self.reward_estimator.save(estimator_path(path))
        with atomic_write(path) as handle:
            self.model.save(handle)
        return path

    @classmethod
    def load(cls, path: str | Path, env: gym.Env, estimator: str | None = None, beta: float = 0.5,
             tensorboard_log: str | None = None) -> "ActorCriticAgent":
        """Load a checkpoint to continue training on ``env`` (the unwrapped env; the estimator is re-attached)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no actor-critic checkpoint at {path}")
        try:
            data, _, _ = load_from_zip_file(path, device="cpu")
        except Exception as error:  # noqa: BLE001 - a foreign file fails in zipfile, json or torch
            raise ValueError(f"{path} is not an SB3 checkpoint written by ActorCriticAgent.save: {error}") from error
        algorithm = "ppo" if "clip_range" in data else "a2c"
        model = ALGORITHMS[algorithm].load(path, device="cpu", tensorboard_log=tensorboard_log)
        saved_estimator = None
        if estimator is not None:
            if not estimator_path(path).exists():
                raise FileNotFoundError(f"estimator={estimator!r} but {estimator_path(path)} is missing")
            saved_estimator = OnlineRewardEstimator.load(estimator_path(path))
        agent = cls(env, algorithm=algorithm, estimator=estimator, beta=beta, _model=model, _estimator=saved_estimator)
        # Report the configuration that was saved, not the constructor's defaults.
        agent.seed = model.seed
        agent.settings.update(seed=model.seed,
                              hidden=model.policy_kwargs.get("features_extractor_kwargs", {}).get("hidden", 64))
        if saved_estimator is not None:
            saved = saved_estimator.hyperparameters
            agent.settings.update(use_memory=saved["use_memory"], estimator_kwargs={
                key: value for key, value in saved.items() if key not in ("use_memory", "seed")})
        return agent


def estimator_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".estimator.pt")
