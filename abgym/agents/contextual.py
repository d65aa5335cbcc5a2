"""Linear contextual bandits for PersonalizedMarketing-v0: LinUCB, linear Thompson sampling, epsilon-greedy.

Every agent here is a Bayesian ridge regression of reward on features (:mod:`abgym.agents.features`) plus a rule
that turns its posterior into a choice: an upper confidence bound (LinUCB, Li et al. 2010), a posterior sample
(linear Thompson sampling, Agrawal & Goyal 2013) or the posterior mean with a little uniform exploration.

Agent interface, the same as the A/B agents of docs/CONTRACTS.md::

    agent.reset(n_arms, info, seed)              # info: the env's reset info
    action = agent.act(observation, info)        # the observation and info the decision is made on
    agent.update(action, reward, next_observation, info)

``update`` learns from the features cached by the last ``act`` (the observation the variant was shown on), so the
``next_observation`` it is given is only used by agents that need it. ``model="disjoint"`` keeps one regression
per variant; ``model="shared"`` keeps one over variant features, so that variants share what is learnt.

An optional ``prior`` (the ranker's :class:`abgym.ranker.prior.RankerPrior`, or anything with
``ctr_prior(texts) -> (mean, std)``) gives each variant an expected reward before any data: the regression then
learns the residual ``reward - prior_scale * (prior_mean - mean of prior_means)`` and so starts from the prior's
ranking of the variants instead of from a tie (the base rate is learnt from data).

Speed: the inverse Gram matrices are kept up to date with Sherman-Morrison rank-one updates (O(d^2) per step, no
matrix inverse), and every arm is scored in one vectorized numpy expression.
"""
from __future__ import annotations

import abc
import io
import json
import math
from pathlib import Path

import numpy as np

from abgym.agents.features import FeatureMap
from abgym.paths import atomic_write

FORMAT_VERSION = 1


class RidgePosterior:
    """Bayesian ridge regression for ``n_heads`` independent models at once.

    Keeps ``A^-1`` (with ``A = l2 * I + sum x x^T``), ``b = sum r x`` and ``theta = A^-1 b`` per head.
    """

    def __init__(self, n_heads: int, dim: int, l2: float | np.ndarray = 1.0):
        l2 = np.broadcast_to(np.asarray(l2, dtype=np.float64), (dim,))
        if np.any(l2 <= 0):
            raise ValueError(f"l2 must be > 0, got {l2.min()}")
        self.A_inv = np.repeat(np.diag(1.0 / l2)[None], n_heads, axis=0)
        self.b = np.zeros((n_heads, dim))
        self.theta = np.zeros((n_heads, dim))
        self.counts = np.zeros(n_heads, dtype=np.int64)

    @property
    def dim(self) -> int:
        return self.b.shape[1]

    def update(self, head: int, x: np.ndarray, reward: float) -> None:
        A_inv = self.A_inv[head]
        Ax = A_inv @ x
        A_inv -= np.outer(Ax, Ax) / (1.0 + x @ Ax)
        self.b[head] += reward * x
        self.theta[head] = A_inv @ self.b[head]
        self.counts[head] += 1

    def mean_and_variance(self, X: np.ndarray, heads: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance (in units of the noise variance) of ``x_k . theta_head(k)`` per row k."""
        if heads is None:  # one shared head
            XA = X @ self.A_inv[0]
            return X @ self.theta[0], np.einsum("kd,kd->k", XA, X)
        if X.strides[0] == 0 and heads.size == self.b.shape[0]:  # every head sees the same x (disjoint model)
            x = X[0]
            return self.theta @ x, (self.A_inv @ x) @ x
        XA = np.einsum("kd,kde->ke", X, self.A_inv[heads])
        return np.einsum("kd,kd->k", X, self.theta[heads]), np.einsum("kd,kd->k", XA, X)

    def state(self) -> dict[str, np.ndarray]:
        return {"A_inv": self.A_inv, "b": self.b, "theta": self.theta, "counts": self.counts}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> "RidgePosterior":
        posterior = cls.__new__(cls)
        posterior.A_inv, posterior.b = np.array(state["A_inv"]), np.array(state["b"])
        posterior.theta, posterior.counts = np.array(state["theta"]), np.array(state["counts"])
        return posterior


class LinearBanditAgent(abc.ABC):
    """Shared machinery: features, the ridge posterior, the prior offset, seeding and save/load.

    Subclasses only say how to turn the posterior into scores (:meth:`scores`).
    """

    name = "linear"
    hyperparameters: tuple[str, ...] = ()

    def __init__(self, model: str = "disjoint", l2: float = 1.0, interaction_l2: float | None = None,
                 features: FeatureMap | None = None, prior=None, prior_scale: float = 1.0, seed: int | None = None):
        self.features = features or FeatureMap(model=model)  # an explicit feature map decides the model
        self.model = self.features.model
        self.l2 = float(l2)
        self.interaction_l2 = float(l2 if interaction_l2 is None else interaction_l2)
        if self.l2 <= 0 or self.interaction_l2 <= 0:
            raise ValueError(f"l2 and interaction_l2 must be > 0, got {self.l2} and {self.interaction_l2}")
        self.prior = prior
        self.prior_scale = float(prior_scale)
        self.seed = seed
        self.posterior: RidgePosterior | None = None
        self.n_arms = 0
        self.rng = np.random.default_rng(seed)
        self.prior_offset = np.zeros(0)
        self._prior_texts: tuple[str, ...] | None = None
        self._last_features: np.ndarray | None = None
        self.t = 0

    # -- the agent interface -------------------------------------------------------------------------------------
    def reset(self, n_arms: int, info: dict | None = None, seed: int | None = None) -> None:
        """Forget everything learnt; the posterior is sized on the first observation."""
        if n_arms < 1:
            raise ValueError(f"n_arms must be >= 1, got {n_arms}")
        self.n_arms = int(n_arms)
        if seed is not None:
            self.seed = seed
        self.rng = np.random.default_rng(self.seed)
        self.posterior = None
        self.prior_offset = np.zeros(self.n_arms)
        self._prior_texts = None
        self._last_features = None
        self.t = 0
        self._refresh_prior(info or {})

    def act(self, observation, info: dict | None = None) -> int:
        X = self.features.arm_features(observation, self.n_arms)
        if self.n_arms == 0:
            self.reset(X.shape[0], info)
        if X.shape[0] != self.n_arms:
            if self.model == "disjoint":
                raise ValueError(f"observation has {X.shape[0]} variants, the disjoint agent was reset for "
                                 f"{self.n_arms}; use model='shared' when the set of variants changes")
            self.n_arms = X.shape[0]  # the shared model scores any number of variants
            if self.prior is None:
                self.prior_offset = np.zeros(self.n_arms)
        if self.posterior is None:
            penalty = np.where(self.features.main_effects(observation), self.l2, self.interaction_l2)
            self.posterior = RidgePosterior(self.n_arms if self.model == "disjoint" else 1, X.shape[1], penalty)
        elif X.shape[1] != self.posterior.dim:
            raise ValueError(f"feature length changed from {self.posterior.dim} to {X.shape[1]}: "
                             "the observation space differs from the one the agent learnt on")
        self._refresh_prior(info or {})
        self._last_features = X
        return self._choose(X)

    def update(self, action: int, reward: float, observation=None, info: dict | None = None) -> None:
        if self._last_features is None:
            raise RuntimeError("update() called before act(): the agent has no decision to learn from")
        if not 0 <= action < self.n_arms:
            raise ValueError(f"action {action} out of range for {self.n_arms} variants")
        head = action if self.model == "disjoint" else 0
        residual = float(reward) - self.prior_offset[action]
        self.posterior.update(head, self._last_features[action], residual)
        self.t += 1

    def declared_winner(self) -> int | None:
        """A personalized agent ships no single winner."""
        return None

    # -- what subclasses define ------------------------------------------------------------------------------------
    @abc.abstractmethod
    def scores(self, X: np.ndarray) -> np.ndarray:
        """Per-variant scores of the residual model (the prior offset is added by :meth:`_choose`)."""

    def _choose(self, X: np.ndarray) -> int:
        return int(np.argmax(self.scores(X) + self.prior_offset))

    def _posterior_moments(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        heads = np.arange(self.n_arms) if self.model == "disjoint" else None
        mean, variance = self.posterior.mean_and_variance(X, heads)
        return mean, np.maximum(variance, 0.0)

    def expected_rewards(self, observation) -> np.ndarray:
        """The posterior mean reward of every variant (prior offset included), without exploring."""
        X = self.features.arm_features(observation, self.n_arms)
        offset = self.prior_offset if self.prior_offset.size == X.shape[0] else np.zeros(X.shape[0])
        if self.posterior is None:
            return offset.copy()
        heads = np.arange(X.shape[0]) if self.model == "disjoint" else None
        return self.posterior.mean_and_variance(X, heads)[0] + offset

    # -- the prior -------------------------------------------------------------------------------------------------
    def _refresh_prior(self, info: dict) -> None:
        """Recompute prior offsets when the variants' texts change (a new campaign)."""
        if self.prior is None:
            return
        texts = (info or {}).get("variant_texts")
        if texts is None:
            if self._prior_texts is None:
                raise KeyError("a prior needs the variants' texts, but the env's info has no 'variant_texts': "
                               "pass the env's reset info to reset()/act(), or build the agent without a prior")
            return
        texts = tuple(str(text) for text in texts)
        if texts != self._prior_texts:
            mean, _std = self.prior.ctr_prior(list(texts))
            mean = np.asarray(mean, dtype=np.float64)
            # Only the relative lift between variants is informative: the level (this campaign's base rate) is
            # learnt from data by the bias feature, so the offset is centred.
            self.prior_offset = self.prior_scale * (mean - mean.mean())
            self._prior_texts = texts

    # -- save / load -----------------------------------------------------------------------------------------------
    def config(self) -> dict:
        return {"model": self.model, "l2": self.l2, "interaction_l2": self.interaction_l2, "prior_scale": self.prior_scale, "seed": self.seed,
                **{name: getattr(self, name) for name in self.hyperparameters}}

    def save(self, path: str | Path) -> Path:
        """Write a ``.npz`` checkpoint atomically: posterior, prior offsets, RNG state, so that resuming is exact."""
        path = Path(path)
        meta = {
            "format_version": FORMAT_VERSION, "class": type(self).__name__, "config": self.config(),
            "features": self.features.to_dict(), "n_arms": self.n_arms, "t": self.t,
            "rng_state": self.rng.bit_generator.state, "prior_texts": self._prior_texts,
            "has_prior": self.prior is not None,
        }
        arrays = {"prior_offset": self.prior_offset}
        if self.posterior is not None:
            arrays.update({f"posterior_{key}": value for key, value in self.posterior.state().items()})
        if self._last_features is not None:
            arrays["last_features"] = self._last_features
        buffer = io.BytesIO()
        np.savez(buffer, meta=np.array(json.dumps(meta)), **arrays)
        with atomic_write(path) as handle:
            handle.write(buffer.getvalue())
        return path

    @classmethod
    def load(cls, path: str | Path, prior=None) -> "LinearBanditAgent":
        """Load any linear bandit saved by :meth:`save` (call on the base class or the right subclass)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no bandit checkpoint at {path}")
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                arrays = {key: data[key] for key in data.files if key != "meta"}
        except (ValueError, KeyError, OSError) as error:
            raise ValueError(f"{path} is not a bandit checkpoint written by LinearBanditAgent.save: {error}") from error
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: checkpoint format {meta.get('format_version')}, this abgym reads {FORMAT_VERSION}")
        agent_class = AGENT_CLASSES.get(meta["class"])
        if agent_class is None or not issubclass(agent_class, cls):
            raise ValueError(f"{path} holds a {meta['class']}, not a {cls.__name__}")
        if meta["has_prior"] and prior is None:
            raise ValueError(f"{path} was trained with a prior: pass the same prior to load(path, prior=...)")
        agent = agent_class(features=FeatureMap.from_dict(meta["features"]), prior=prior, **meta["config"])
        agent.n_arms, agent.t = meta["n_arms"], meta["t"]
        agent.rng.bit_generator.state = meta["rng_state"]
        agent.prior_offset = arrays["prior_offset"]
        agent._prior_texts = tuple(meta["prior_texts"]) if meta["prior_texts"] is not None else None
        if "posterior_A_inv" in arrays:
            agent.posterior = RidgePosterior.from_state(
                {key[len("posterior_"):]: value for key, value in arrays.items() if key.startswith("posterior_")})
        agent._last_features = arrays.get("last_features")
        return agent


class LinUCB(LinearBanditAgent):
    """Pick the variant with the highest ``mean + bonus_scale * standard deviation`` of the predicted reward.

    ``bonus_scale`` is ``alpha``; with ``reference_arms`` (disjoint model only) ``alpha`` is the scale at that many
    variants and it grows as ``sqrt(K / reference_arms)`` with the number K of variants. Why: the disjoint model is
    one ridge regression over K stacked blocks of d weights, and the confidence radius of such a regression (OFUL,
    Abbasi-Yadkori et al. 2011) grows as the square root of its dimension K * d. The shared model keeps one block
    whatever K, so its scale stays ``alpha``.
    """

    name = "linucb"
    hyperparameters = ("alpha", "reference_arms")

    def __init__(self, alpha: float = 1.0, reference_arms: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        if reference_arms is not None and (int(reference_arms) != reference_arms or reference_arms < 1):
            raise ValueError(f"reference_arms must be a whole number >= 1 (or None for a fixed alpha), "
                             f"got {reference_arms!r}")
        self.alpha = float(alpha)
        self.reference_arms = None if reference_arms is None else int(reference_arms)

    def bonus_scale(self, n_arms: int) -> float:
        """The multiplier of the standard deviation for ``n_arms`` variants (see the class docstring)."""
        if self.reference_arms is None or self.model != "disjoint":
            return self.alpha
        return self.alpha * math.sqrt(n_arms / self.reference_arms)

    def scores(self, X: np.ndarray) -> np.ndarray:
        mean, variance = self._posterior_moments(X)
        return mean + self.bonus_scale(X.shape[0]) * np.sqrt(variance)


class LinearThompson(LinearBanditAgent):
    """Pick the variant whose reward, sampled from the posterior (noise scale ``v``), is highest.

    Only the K scores are sampled, not the d-dimensional weights: in the disjoint model they are independent normals;
    in the shared model they are jointly normal with covariance ``v^2 X A^-1 X^T`` (a K x K Cholesky factor). Both
    have exactly the distribution of scores under a sampled weight vector, at a fraction of the cost.
    """

    name = "lints"
    hyperparameters = ("v",)

    def __init__(self, v: float = 0.25, **kwargs):
        super().__init__(**kwargs)
        if v < 0:
            raise ValueError(f"v must be >= 0, got {v}")
        self.v = float(v)

    def scores(self, X: np.ndarray) -> np.ndarray:
        noise = self.rng.standard_normal(X.shape[0])
        if self.model == "disjoint":
            mean, variance = self._posterior_moments(X)
            return mean + self.v * np.sqrt(variance) * noise
        mean = X @ self.posterior.theta[0]
        covariance = X @ self.posterior.A_inv[0] @ X.T
        jitter = 1e-9 * max(float(np.trace(covariance)) / X.shape[0], 1e-12)
        factor = np.linalg.cholesky(covariance + jitter * np.eye(X.shape[0]))
        return mean + self.v * (factor @ noise)


class LinearEpsilonGreedy(LinearBanditAgent):
    """Show the variant with the best predicted reward; with probability ``epsilon``, a uniform random one."""

    name = "egreedy"
    hyperparameters = ("epsilon",)

    def __init__(self, epsilon: float = 0.05, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.epsilon = float(epsilon)

    def scores(self, X: np.ndarray) -> np.ndarray:
        return self._posterior_moments(X)[0]

    def _choose(self, X: np.ndarray) -> int:
        if self.rng.random() < self.epsilon:
            return int(self.rng.integers(X.shape[0]))
        scores = self.scores(X) + self.prior_offset
        best = np.flatnonzero(scores >= scores.max() - 1e-12)  # break ties at random, not towards variant 0
        return int(best[0] if best.size == 1 else self.rng.choice(best))


AGENT_CLASSES: dict[str, type[LinearBanditAgent]] = {
    cls.__name__: cls for cls in (LinUCB, LinearThompson, LinearEpsilonGreedy)
}


def make_contextual_agent(name: str, **kwargs) -> LinearBanditAgent:
    """``linucb`` | ``lints`` | ``egreedy`` -> agent; keyword arguments go to its constructor."""
    by_name = {cls.name: cls for cls in AGENT_CLASSES.values()}
    if name not in by_name:
        raise ValueError(f"unknown contextual agent {name!r}; choose one of {sorted(by_name)}")
    return by_name[name](**kwargs)
