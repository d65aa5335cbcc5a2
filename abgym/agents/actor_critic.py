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

import io
import pickle
import random
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from stable_baselines3 import A2C, PPO
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from abgym import checkpoint
from abgym.agents.reward_estimator import OnlineRewardEstimator, RewardEstimatorWrapper

ALGORITHMS = {"ppo": PPO, "a2c": A2C}
CHECKPOINT_KIND = "abgym-actor-critic"
SAVED = "saved"  # load(estimator=SAVED): the estimator setting the checkpoint was saved with
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
    arrives at once; raise it when the env carries consequences across arrivals. A checkpoint is one unit (an SB3
    zip, the estimator's weights, optimizer and window, the env and RNG states, and a manifest written last that
    binds them, :mod:`abgym.checkpoint`), and :meth:`learn` continues the step count, so that ``load(path)``
    resumes exactly where the run stopped.
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
        """Save one checkpoint (:mod:`abgym.checkpoint`): ``path`` (SB3 zip), with an estimator ``path`` +
        ``.estimator.pt``, the resume state ``path`` + ``.resume.pkl``, then the manifest that binds them.

        The resume state is what SB3's zip leaves out and an exact continuation needs: the environment as it stands
        (its RNG, the current user, the estimator's window inside its wrapper) and the global RNG states of torch,
        numpy and ``random``. An env that cannot be pickled is saved without it (``load`` then needs an ``env``).
        """
        path = Path(path)
        if path.suffix != ".zip":
            path = path.with_suffix(path.suffix + ".zip")
        model_bytes = io.BytesIO()
        self.model.save(model_bytes)
        parts = {path.name: model_bytes.getvalue()}
        if self.reward_estimator is not None:
            parts[estimator_path(path).name] = self.reward_estimator.to_bytes()
        metadata = {"algorithm": self.algorithm, "estimator": self.estimator_use,
                    "beta": getattr(self.env, "beta", None), "num_timesteps": int(self.model.num_timesteps),
                    "estimator_n_seen": None if self.reward_estimator is None else int(self.reward_estimator.n_seen),
                    "settings": self.settings}
        try:
            parts[resume_path(path).name] = pickle.dumps({"venv": self.model.get_env(), "agent_env": self.env,
                                                       "rng": _global_rng_states()})
            metadata["exact_resume"] = True
        except Exception as error:  # noqa: BLE001 - an env holding a lock, a model handle, a lambda...
            metadata["exact_resume"] = False
            metadata["no_resume_because"] = f"{type(error).__name__}: {error}"
        checkpoint.write(path, parts, kind=CHECKPOINT_KIND, metadata=metadata)
        return path

    @classmethod
    def load(cls, path: str | Path, env: gym.Env | None = None, estimator: str | None = SAVED,
             beta: float | None = None, tensorboard_log: str | None = None) -> "ActorCriticAgent":
        """Load a checkpoint saved by :meth:`save`; a partial or mixed set of files is refused (CheckpointError).

        ``env=None`` resumes exactly: the saved environment, its last observation and the RNG states come back, so
        that ``learn`` continues as if the run had never stopped. With an ``env`` (the unwrapped env), training
        continues on it from its own reset (the estimator is re-attached), which is not the same trajectory.
        ``estimator`` and ``beta`` default to the saved ones.
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no actor-critic checkpoint at {path}")
        manifest, parts = checkpoint.read(path, kind=CHECKPOINT_KIND)
        saved = manifest["metadata"]
        estimator = saved["estimator"] if estimator == SAVED else estimator
        beta = saved.get("beta") if beta is None else beta
        beta = 0.5 if beta is None else beta
        try:
            data, _, _ = load_from_zip_file(io.BytesIO(parts[path.name]), device="cpu")
        except Exception as error:  # noqa: BLE001 - a foreign file fails in zipfile, json or torch
            raise ValueError(f"{path} is not an SB3 checkpoint written by ActorCriticAgent.save: {error}") from error
        algorithm = "ppo" if "clip_range" in data else "a2c"
        saved_estimator = None
        if estimator is not None:
            if estimator_path(path).name not in parts:
                raise checkpoint.CheckpointError(
                    f"estimator={estimator!r} but checkpoint {path} was saved without a reward estimator; "
                    "load it with estimator=None")
            saved_estimator = OnlineRewardEstimator.from_bytes(parts[estimator_path(path).name],
                                                               source=str(estimator_path(path)))
        logging = {} if tensorboard_log is None else {"tensorboard_log": tensorboard_log}
        if env is None:
            agent = cls._resume(path, parts, saved, algorithm, estimator, beta, logging)
        else:
            model = ALGORITHMS[algorithm].load(io.BytesIO(parts[path.name]), device="cpu", **logging)
            agent = cls(env, algorithm=algorithm, estimator=estimator, beta=beta, _model=model,
                        _estimator=saved_estimator)
        model = agent.model
        # Report the configuration that was saved, not the constructor's defaults.
        agent.seed = model.seed
        agent.settings.update(seed=model.seed,
                              hidden=model.policy_kwargs.get("features_extractor_kwargs", {}).get("hidden", 64))
        if saved_estimator is not None:
            hyper = saved_estimator.hyperparameters
            agent.settings.update(use_memory=hyper["use_memory"], estimator_kwargs={
                key: value for key, value in hyper.items() if key not in ("use_memory", "seed")})
        return agent

    @classmethod
    def _resume(cls, path, parts, saved, algorithm, estimator, beta, logging):
        if resume_path(path).name not in parts:
            raise ValueError(f"checkpoint {path} holds no resume state (its env could not be pickled: "
                             f"{saved.get('no_resume_because')}); pass env= to continue on a fresh env")
        if estimator != saved["estimator"] or (estimator is not None and beta != saved.get("beta")):
            raise ValueError(f"an exact resume keeps the saved estimator={saved['estimator']!r} and "
                             f"beta={saved.get('beta')!r}; pass env= to change them")
        state = pickle.loads(parts[resume_path(path).name])
        venv = state["venv"]
        seeds, options = list(venv._seeds), list(venv._options)
        # force_reset=False keeps the saved last observation; SB3's load re-seeds the global RNGs and the env's
        # next reset, so both are put back as they were at the save.
        model = ALGORITHMS[algorithm].load(io.BytesIO(parts[path.name]), env=venv, device="cpu", force_reset=False,
                                           **logging)
        venv._seeds, venv._options = seeds, options
        _set_global_rng_states(state["rng"])
        agent = cls.__new__(cls)
        agent.algorithm, agent.estimator_use, agent.seed = algorithm, estimator, model.seed
        agent.settings = dict(saved.get("settings") or {})
        agent.env, agent.model = state["agent_env"], model  # the same object as inside venv (one pickle)
        return agent


def _global_rng_states() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _set_global_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])


def estimator_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".estimator.pt")


def resume_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".resume.pkl")
