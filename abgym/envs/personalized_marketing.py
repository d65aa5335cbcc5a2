"""``abgym/PersonalizedMarketing-v0``: users arrive one by one; show each one of K content variants.

The environment of "A Reinforcement-Learning-Enhanced LLM Framework for Automated A/B Testing in Personalized
Marketing" (arXiv 2506.06316). By default the K variants are the real headlines of one Upworthy experiment and the
simulated users are calibrated so that each variant's population-average click-through rate is its recorded one;
users differ around that average by segment, portrait and individual taste, get tired of repeated content, grow
loyal when they convert, churn, and their preferences drift (see :mod:`abgym.envs.users`).

Observation (``observation_type="dict"``), as in docs/CONTRACTS.md::

    user      (user_dim,)               one-hots of segment, age band, device, home channel + interest vector
    context   (context_dim,)            time of day (sin, cos), day-of-week one-hot, channel one-hot, campaign one-hot
    memory    (memory_len, mem_dim)     the user's last interactions, newest first: [variant embedding, click, conv]
    variants  (n_variants, variant_dim) PCA-reduced embedding and attribute scores of each variant

``observation_type="flat"`` concatenates them in that order. Action: the variant shown, ``Discrete(n_variants)``.
Reward: configurable (``reward``: click, conversion, revenue or a weighted sum). Step ``info``: ``expected_rewards``
(each variant's true expected reward for this user now, for regret), ``oracle_action``, ``click``, ``conversion``,
``revenue``, ``segment``, ``regime_shift``, ``returning``, ``churned``. An episode is ``horizon`` arrivals (then
``truncated``). The simulator itself steps N worlds in one numpy operation; this class is its N = 1 view (through
``MarketingWorlds.step_one``, the same step compiled with numba, equal to it and several times faster for one world),
and ``gymnasium.make_vec(..., vectorization_mode="vector_entry_point")`` gives the batched one.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from abgym.envs import content as content_module
from abgym.envs.checks import PassiveChecksOnce
from abgym.envs.content import FEATURE_BOUND
from abgym.envs.settings import merge_settings
from abgym.envs.users import AGE_BANDS, CHANNELS, DEVICES, MarketingWorlds


def default_config() -> dict:
    """Every setting of the environment, with its default. ``config={...}`` overrides any of them."""
    return {
        # Content: where the K variants come from, and their features.
        "content_source": "upworthy",  # "upworthy" | "generated" | "texts"
        "experiment": content_module.DEFAULT_EXPERIMENT,  # Upworthy clickability_test_id, or an index
        "upworthy_path": None,  # None: the shipped exploratory subset
        "texts": None,  # content_source="texts": the variants, a list of strings
        "brief": content_module.DEFAULT_BRIEF,  # content_source="generated": the campaign brief
        "n_variants": 4,  # content_source="generated": K
        "target_attributes": None,  # generated: one dict per variant (tone, urgency, ...); None: drawn from a grid
        "generator_model": "smollm2",  # "smollm2" (real) or "tiny" (random weights, tests only)
        "generator_seed": 0,
        "generator_max_new_tokens": 32,
        "generator_temperature": 0.7,
        "variant_ctr": None,  # per-variant population CTR: None (recorded for upworthy, else uncalibrated),
        #                       "ranker" (the Experimentation Accelerator's prior), or a list of K rates
        "base_ctr": 0.03,  # click-through rate of an average user when no CTR is known (generated, texts)
        "attributes": content_module.DEFAULT_ATTRIBUTES,  # attribute-space columns used; None: all of them
        "embedding_dim": 8,  # principal components of the sentence embedding
        # Users.
        "population_seed": 0,  # the population (profiles, calibration) is part of the env's definition
        "population_size": 1000,  # profiles
        "active_users": 200,  # users around at once in a world; each arrival is one of them
        "n_segments": 4,
        "segment_scale": 0.5,  # spread of segment preferences (logit units)
        "portrait_scale": 0.25,  # spread of age-band and device preferences
        "preference_scale": 0.5,  # spread of individual preferences
        "interest_noise": 0.5,  # noise of the observed interest vector around the true taste
        "context_scale": 0.25,  # spread of channel and time-of-day effects
        "home_channel_prob": 0.7,  # a user arrives through their home channel, else a random one
        "fatigue": 0.4,  # logit penalty per log(1 + earlier exposures to the same variant)
        "loyalty_effect": 0.2,  # logit bonus per unit of loyalty
        "loyalty_gain": 1.0,  # loyalty gained per conversion
        "loyalty_decay": 0.9,  # loyalty kept per visit
        "loyalty_cap": 5.0,
        "conversion_rate": 0.1,  # average P(conversion | click)
        "conversion_scale": 0.7,  # how much conversion depends on the content (independently of clicks)
        "revenue_mean": 20.0,
        "revenue_sigma": 0.5,  # log-normal spread of revenue per conversion
        "churn_base": 0.02,  # P(leave) after an impression ...
        "churn_per_repeat": 0.1,  # ... plus this per earlier exposure to the shown variant
        "churn_click_relief": 0.02,  # ... minus this after a click; all times exp(-loyalty)
        # Drift of segment preferences.
        "drift": True,
        "drift_interval": 10,  # arrivals between two Ornstein-Uhlenbeck updates
        "ou_theta": 0.002,  # mean reversion per arrival
        "ou_sigma": 0.03,  # noise per sqrt(arrival), logit units
        "n_regimes": 3,  # campaign phases; regime 0 is the calibrated one
        "regime_shift_prob": 0.001,  # per arrival
        "regime_scale": 0.7,  # spread of a regime's preference offset
        "segment_trend": 0.3,  # preference change per 1,000 arrivals
        "record_drift": False,  # keep a history of the drift applied (env.unwrapped.drift_history)
        # Episode, observation, reward.
        "horizon": 1000,
        "arrivals_per_day": 200,
        "memory_len": 5,
        "observe_campaign": True,  # the context shows the campaign phase (regime); False: zeros
        "observation_type": "dict",  # "dict" | "flat"
        "reward": "weighted",  # "click" | "conversion" | "revenue" | "weighted"
        "reward_weights": {"click": 1.0, "conversion": 5.0, "revenue": 0.1},
    }


_POSITIVE_INTS = ("n_variants", "embedding_dim", "population_size", "active_users", "n_segments", "drift_interval",
                  "n_regimes", "horizon", "arrivals_per_day", "memory_len", "generator_max_new_tokens")
_PROBABILITIES = ("base_ctr", "home_channel_prob", "conversion_rate", "loyalty_decay", "regime_shift_prob",
                  "churn_base")
_NON_NEGATIVE = ("segment_scale", "portrait_scale", "preference_scale", "interest_noise", "context_scale", "fatigue",
                 "loyalty_effect", "loyalty_gain", "loyalty_cap", "conversion_scale", "revenue_mean",
                 "revenue_sigma", "churn_per_repeat", "churn_click_relief", "ou_theta", "ou_sigma", "regime_scale",
                 "segment_trend", "generator_temperature")


_BOOLEANS = ("drift", "record_drift", "observe_campaign")
_SEEDS = ("population_seed", "generator_seed")


def make_config(config: dict | None = None, **settings) -> dict:
    """``default_config()`` updated with ``config`` and keyword ``settings`` (keywords win); unknown keys and bad
    values raise ``ValueError`` (:func:`abgym.envs.settings.merge_settings`)."""
    merged = merge_settings("PersonalizedMarketing-v0", default_config(), config, settings,
                            see="abgym.envs.personalized_marketing.default_config()")
    for key in _POSITIVE_INTS:
        value = merged[key]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value < 2**62:
            raise ValueError(f"config {key!r} must be a positive whole number (below 2^62), got {value!r}")
    for key in _PROBABILITIES + _NON_NEGATIVE:
        value = merged[key]
        if not _is_finite_number(value):
            raise ValueError(f"config {key!r} must be a finite number, got {value!r}")
    for key in _PROBABILITIES:
        if not 0.0 <= float(merged[key]) <= 1.0:
            raise ValueError(f"config {key!r} must be a probability in [0, 1], got {merged[key]!r}")
    for key in _NON_NEGATIVE:
        if float(merged[key]) < 0:
            raise ValueError(f"config {key!r} must be >= 0, got {merged[key]!r}")
    if merged["active_users"] > merged["population_size"]:
        raise ValueError(f"active_users ({merged['active_users']}) cannot exceed population_size "
                         f"({merged['population_size']})")
    if merged["observation_type"] not in ("dict", "flat"):
        raise ValueError(f"observation_type {merged['observation_type']!r} is unknown; use 'dict' or 'flat'")
    if merged["content_source"] not in ("upworthy", "generated", "texts"):
        raise ValueError(f"content_source {merged['content_source']!r} is unknown; use 'upworthy', 'generated' "
                         f"or 'texts'")
    if merged["content_source"] == "texts" and merged["texts"] is None:
        raise ValueError("content_source='texts' needs config 'texts': a list of at least 2 variant texts")
    for key in _BOOLEANS:
        if not isinstance(merged[key], (bool, np.bool_)):
            raise ValueError(f"config {key!r} must be True or False, got {merged[key]!r} (a string such as 'no' "
                             "would be read as True)")
    for key in _SEEDS:
        value = merged[key]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < 2**63:
            raise ValueError(f"config {key!r} must be a whole number >= 0 (a seed, below 2^63), got {value!r}")
    _check_variant_ctr(merged["variant_ctr"])
    weights = merged["reward_weights"]
    if not isinstance(weights, dict):
        raise ValueError(f"config 'reward_weights' must be a dict such as {{'click': 1.0, 'conversion': 5.0}}, "
                         f"got {weights!r}")
    for name, weight in weights.items():
        if not _is_finite_number(weight):
            raise ValueError(f"config 'reward_weights' {name!r} must be a finite number, got {weight!r}")
    from abgym.envs.limits import check_memory, marketing_memory_terms
    from abgym.envs.users import reward_weights

    reward_weights(merged)  # validates reward and reward_weights
    check_memory("PersonalizedMarketing-v0", marketing_memory_terms(merged))
    return merged


def _is_finite_number(value) -> bool:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    try:
        return bool(np.isfinite(float(value)))  # float(): a Python int beyond int64 is still a number
    except OverflowError:
        return False


def _check_variant_ctr(value) -> None:
    """None, a name ('ranker', 'recorded') or a list of click-through rates in [0, 1] (NaN would click never)."""
    if value is None or isinstance(value, str):
        return
    try:
        rates = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"config 'variant_ctr' must be None, 'ranker', 'recorded' or a list of rates, "
                         f"got {value!r}") from None
    if rates.ndim != 1 or rates.size == 0 or not np.isfinite(rates).all() or (rates < 0).any() or (rates > 1).any():
        raise ValueError(f"config 'variant_ctr' must be a list of one click-through rate in [0, 1] per variant, "
                         f"got {value!r}")


def observation_spaces(worlds: MarketingWorlds, observation_type: str) -> spaces.Space:
    """The single-world observation space."""
    def box(low, high):
        return spaces.Box(np.asarray(low, np.float32), np.asarray(high, np.float32), dtype=np.float32)

    bound, one_hots, emb = FEATURE_BOUND, worlds.user_dim - worlds.embedding_dim, worlds.embedding_dim
    user = box([0.0] * one_hots + [-bound] * emb, [1.0] * one_hots + [bound] * emb)
    context = box([-1.0, -1.0] + [0.0] * (worlds.context_dim - 2), [1.0] * worlds.context_dim)
    memory_row_low, memory_row_high = [-bound] * emb + [0.0, 0.0], [bound] * emb + [1.0, 1.0]
    memory = box([memory_row_low] * worlds.memory_len, [memory_row_high] * worlds.memory_len)
    variants = box(np.full((worlds.n_variants, worlds.variant_dim), -bound), np.full((worlds.n_variants,
                                                                                     worlds.variant_dim), bound))
    parts = dict(user=user, context=context, memory=memory, variants=variants)
    if observation_type == "dict":
        return spaces.Dict(list(parts.items()))  # a list keeps the contract's key order (a dict gets sorted)
    return box(np.concatenate([space.low.ravel() for space in parts.values()]),
               np.concatenate([space.high.ravel() for space in parts.values()]))


def flatten_observations(user, context, memory, variants) -> np.ndarray:
    """(N, flat_dim): the observation arrays of N worlds, concatenated in the contract's order."""
    n = user.shape[0]
    return np.concatenate([user, context, memory.reshape(n, -1),
                           np.broadcast_to(variants.reshape(1, -1), (n, variants.size))], axis=1)


def build_worlds(config: dict | None, n_worlds: int, *, embed=None, attribute_scorer=None, language_model=None,
                 settings: dict | None = None):
    """Validated config, content features (cached) and the world simulator: what both env classes are made of."""
    config = make_config(config, **(settings or {}))
    if n_worlds > 1:  # make_config checked one world's memory
        from abgym.envs.limits import check_memory, marketing_memory_terms

        check_memory("PersonalizedMarketing-v0", marketing_memory_terms(config, n_worlds))
    content = content_module.build_content(config, embed=embed, scorer=attribute_scorer,
                                           language_model=language_model)
    return config, content, MarketingWorlds(config, content, n_worlds)


def restart_worlds(worlds, seed: int | None, np_random: np.random.Generator, seeded: bool) -> bool:
    """Reseed the worlds on an explicit seed (or the first reset), else start new episodes in the same stream.

    Returns the env's new ``seeded`` flag. Shared by the single and the vector env so that they cannot diverge."""
    if seed is not None or not seeded:
        worlds.seed(seed if seed is not None else int(np_random.integers(2**63)))
    else:
        worlds.reset_worlds(worlds.rows)
    return True


def campaign_info(content, n_variants: int, mask_shape: tuple[int, ...]) -> dict:
    """The reset info: the campaign every world shares (texts, names, targets) and an all-valid action mask."""
    return {"n_arms": n_variants, "action_mask": np.ones(mask_shape, np.int8),
            "variant_texts": list(content.texts), "attribute_names": list(content.attribute_names),
            "content_source": content.source,
            "target_ctr": None if content.target_ctr is None else content.target_ctr.copy(),
            "test_id": content.meta.get("test_id")}


class PersonalizedMarketingEnv(PassiveChecksOnce, gym.Env):
    """One world of the personalized-marketing simulator. See the module docstring for spaces and info.

    Settings (``default_config()``) come as keyword arguments, ``config={...}``, or both.
    ``embed`` (a function texts -> vectors) and ``attribute_scorer`` (``scores(texts)``) replace the default
    all-MiniLM-L6-v2 embedder and the ranker's attribute space; ``language_model`` replaces the generator's model.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, config: dict | None = None, render_mode: str | None = None, *, embed=None,
                 attribute_scorer=None, language_model=None, **settings):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode {render_mode!r} is not supported; use None or 'ansi'")
        self.render_mode = render_mode
        self.config, self.content, self.worlds = build_worlds(
            config, 1, embed=embed, attribute_scorer=attribute_scorer, language_model=language_model,
            settings=settings)
        self.flat = self.config["observation_type"] == "flat"
        self.observation_space = observation_spaces(self.worlds, self.config["observation_type"])
        self.action_space = spaces.Discrete(self.worlds.n_variants)
        self.n_variants = self.worlds.n_variants
        self._seeded = False
        self._last = None

    # ------------------------------------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if not self._reset_checked:
            return self._checked_reset(seed, options)
        super().reset(seed=seed)
        self._seeded = restart_worlds(self.worlds, seed, self.np_random, self._seeded)
        self._last = None
        return self._observation(), self._reset_info()

    def step(self, action):
        if type(action) is int and 0 <= action < self.n_variants:  # the common case, checked in one line
            index = action
        else:
            try:
                index = int(action)
            except (TypeError, ValueError, OverflowError):  # OverflowError: int(inf)
                raise ValueError(f"action must be a variant index in 0..{self.n_variants - 1}, "
                                 f"got {action!r}") from None
            if index != action or not 0 <= index < self.n_variants:
                raise ValueError(f"action must be a variant index in 0..{self.n_variants - 1}, got {action!r}")
        if not self._seeded:
            raise gym.error.ResetNeeded("call reset() before step()")
        if not self._step_checked:
            return self._checked_step(action)
        reward, truncated, info = self.worlds.step_one(index)
        self._last = (index, reward, info)
        return self._observation(), reward, False, truncated, info

    def _observation(self):
        user, context, memory = self.worlds.observe_one()
        if self.flat:
            return np.concatenate((user, context, memory.ravel(), self.worlds.variants.ravel()))
        return {"user": user, "context": context, "memory": memory, "variants": self.worlds.variants.copy()}

    def _reset_info(self) -> dict:
        return campaign_info(self.content, self.n_variants, mask_shape=(self.n_variants,))

    def render(self):
        if self.render_mode != "ansi":
            return None
        if not self._seeded:  # registered without OrderEnforcing (abgym.envs.checks): refuse it here
            raise gym.error.ResetNeeded("call reset() before render()")
        worlds, pop = self.worlds, self.worlds.population
        profile = int(worlds.profile[0])
        lines = [f"arrival {int(worlds.t[0])}/{worlds.horizon}  user #{profile}  segment {pop.segment[profile]}  "
                 f"channel {CHANNELS[worlds.channel[0]]}  regime {int(worlds.regime[0])}"]
        if self._last is not None:
            index, reward, info = self._last
            lines.append(f"last: showed {index}, click={info['click']}, conversion={info['conversion']}, "
                         f"reward={reward:.2f}")
        for k, text in enumerate(self.content.texts):
            lines.append(f"  [{k}] P(click)={worlds.p_click[0, k]:.3f} E[r]={worlds.expected[0, k]:.3f}  {text}")
        return "\n".join(lines)

    # ------------------------------------------------------------------------------------------- for analysis
    def segment_expected_rewards(self) -> np.ndarray:
        """(n_segments, n_variants): expected reward per segment for a fresh user, under the drift now."""
        return self.worlds.segment_expected_rewards(0)

    def drift_report(self) -> dict:
        """The drift applied so far: regime, and the preference and logit shift per segment (and variant)."""
        worlds = self.worlds
        return {"t": int(worlds.t[0]), "regime": int(worlds.regime[0]),
                "preference_shift": worlds.preference_shift()[0], "logit_shift": worlds.logit_shift(0)}

    @property
    def drift_history(self) -> list[dict]:
        """With ``record_drift=True``: one entry per drift update (t, regime, regime_shift, logit_shift (S, K))."""
        return self.worlds.history


__all__ = ["PersonalizedMarketingEnv", "default_config", "make_config", "AGE_BANDS", "DEVICES", "CHANNELS"]
