"""``abgym/CustomerJourney-v0``: one episode follows one user through their visits; what is shown now shapes later.

In PersonalizedMarketing-v0 every arrival is a different user, so the best a policy can do is the next click: a
contextual bandit is enough. Here an episode is one user's journey (until they churn or reach ``max_visits``), and
the user's state moves with what they were shown (see :mod:`abgym.envs.journeys`): satiation with repeated
variants, interest that follows what they click, and trust that conversions build and disappointing clicks
(clickbait: click-worthy, conversion-poor) destroy, with churn that depends on it. A myopic policy takes the click
and loses the user; a long-term policy gives up a little now to keep them. ``abgym marketing headroom`` measures the
gaps (random, best fixed variant, myopic oracle, long-term oracle) and docs/customer_journey.md says which setting
creates which gap.

The users, the calibration and the content are PersonalizedMarketing-v0's (:mod:`abgym.envs.users`): by default
the variants are one real Upworthy experiment and each variant's population CTR at a first visit is its recorded
one. The world clock, the preference drift and the regime shifts continue across episodes.

Observation (``observation_type="dict"``): ``user``, ``context`` (time of day, weekday, channel, campaign phase,
and the visit index as a fraction of ``max_visits``), ``memory`` (the user's last interactions in this journey,
newest first) and ``variants``, with the same layouts as PersonalizedMarketing-v0; ``"flat"`` concatenates them.
Action: ``Discrete(n_variants)``. ``info`` of a step: ``expected_rewards`` (each variant's true immediate expected
reward for this user at this visit), ``oracle_action`` (the myopic oracle's choice), ``click``, ``conversion``,
``revenue``, ``churned``, ``visit``, ``trust``, ``segment``, ``regime_shift``. ``terminated`` when the user churns,
``truncated`` at ``max_visits``. Settings: keyword arguments or ``config={...}`` (both validated the same way).
``gymnasium.make_vec(..., vectorization_mode="vector_entry_point")`` steps N journeys in one numpy operation.
"""
from __future__ import annotations

import difflib

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from abgym.envs import content as content_module
from abgym.envs import personalized_marketing as marketing
from abgym.envs.checks import PassiveChecksOnce
from abgym.envs.journeys import JourneyWorlds

# The settings this env shares with PersonalizedMarketing-v0 (content, population, drift, reward): validated there.
SHARED_KEYS = ("content_source", "experiment", "upworthy_path", "texts", "brief", "n_variants", "target_attributes",
               "generator_model", "generator_seed", "generator_max_new_tokens", "generator_temperature", "variant_ctr",
               "base_ctr", "attributes", "embedding_dim", "population_seed", "population_size", "n_segments",
               "segment_scale", "portrait_scale", "preference_scale", "interest_noise", "context_scale",
               "home_channel_prob", "conversion_rate", "conversion_scale", "revenue_mean", "revenue_sigma", "drift",
               "drift_interval", "ou_theta", "ou_sigma", "n_regimes", "regime_shift_prob", "regime_scale",
               "segment_trend", "arrivals_per_day", "memory_len", "observe_campaign", "observation_type", "reward",
               "reward_weights")


def default_config() -> dict:
    """Every setting, with its default. Keyword arguments or ``config={...}`` override any of them."""
    shared = marketing.default_config()
    config = {key: shared[key] for key in SHARED_KEYS}
    config.update({
        "max_visits": 30,  # a journey ends at this many visits if the user has not churned
        "memory_len": 8,  # interactions of this journey the observation shows
        "regime_shift_prob": 0.0005,  # per visit (a visit is one tick of the world clock)
        "segment_trend": 0.03,  # preference change per 1,000 visits (a comparison runs ~10,000-20,000 visits)
        # Satiation.
        "fatigue": 0.4,  # click-logit penalty per log(1 + earlier views of the same variant)
        "churn_repeat": 0.02,  # churn added per log(1 + earlier views of the shown variant)
        # Trust: built by conversions, lost by disappointing clicks (clicks that do not convert).
        "clickbait": 1.0,  # conversion-logit penalty per z-score of a variant's click quality (0: independent)
        "trust_gain": 1.0,  # trust per conversion
        "trust_loss": 0.5,  # trust lost per disappointing click
        "bait_annoyance": 0.1,  # trust lost per impression per z-score of click quality (honest ones gain it)
        "trust_decay": 0.97,  # trust kept per visit
        "trust_cap": 5.0,
        "trust_click_effect": 0.2,  # click-logit change per unit of trust
        "trust_conversion_effect": 0.2,  # conversion-logit change per unit of trust
        "churn_base": 0.05,  # P(leave) after a visit at trust 0 ...
        "churn_trust": 0.8,  # ... times exp(-churn_trust * trust)
        # Interest follows consumption.
        "interest_rate": 0.1,  # click-logit change of variant j per click on k, times cos(c_k, c_j)
    })
    return config


_POSITIVE_INTS = ("max_visits",)
_PROBABILITIES = ("trust_decay", "churn_base")
_NON_NEGATIVE = ("fatigue", "churn_repeat", "clickbait", "bait_annoyance", "trust_gain", "trust_loss", "trust_cap",
                 "trust_click_effect", "trust_conversion_effect", "churn_trust", "interest_rate")
MAX_VISITS_LIMIT = 100_000


def make_config(config: dict | None = None, **settings) -> tuple[dict, dict]:
    """(the env's validated settings, the PersonalizedMarketing-v0 config of the shared part).

    ``config`` and keyword ``settings`` are merged (keywords win); an unknown key or a bad value raises
    ``ValueError`` naming it.
    """
    if config is not None and not isinstance(config, dict):
        raise ValueError(f"config must be a dict of settings, got {type(config).__name__}")
    given = {**(config or {}), **settings}
    merged = default_config()
    for key in given:
        if key not in merged:
            close = difflib.get_close_matches(str(key), merged, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown setting {key!r} for CustomerJourney-v0{hint} "
                             f"(see abgym.envs.customer_journey.default_config() for all of them)")
    merged.update(given)
    shared = marketing.make_config({key: merged[key] for key in SHARED_KEYS})
    for key in _POSITIVE_INTS:
        value = merged[key]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= MAX_VISITS_LIMIT:
            raise ValueError(f"setting {key!r} must be a whole number in 1..{MAX_VISITS_LIMIT}, got {value!r}")
    for key in _PROBABILITIES + _NON_NEGATIVE:
        value = merged[key]
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not np.isfinite(value) or value < 0:
            raise ValueError(f"setting {key!r} must be a finite number >= 0, got {value!r}")
        if key in _PROBABILITIES and value > 1:
            raise ValueError(f"setting {key!r} must be a probability in [0, 1], got {value!r}")
    if not isinstance(merged["drift"], (bool, np.bool_)):
        raise ValueError(f"setting 'drift' must be True or False, got {merged['drift']!r}")
    merged.update({key: shared[key] for key in SHARED_KEYS})
    return merged, shared


def build_journeys(config, settings, n_worlds: int, *, embed=None, attribute_scorer=None, language_model=None):
    config, shared = make_config(config, **settings)
    content = content_module.build_content(shared, embed=embed, scorer=attribute_scorer,
                                           language_model=language_model)
    return config, content, JourneyWorlds(config, content, n_worlds, shared)


INFO_KEYS = ("expected_rewards", "oracle_action", "click", "conversion", "revenue", "churned", "visit", "trust",
             "segment", "regime_shift")


def _check_actions(actions, n: int, k: int) -> np.ndarray:
    """The vector env's ``n`` actions as int64, or one error naming the expected shape and range."""
    array = np.asarray(actions)
    if array.shape != (n,) or array.dtype.kind not in "iu" or np.any(array < 0) or np.any(array >= k):
        raise ValueError(f"actions must be {n} integer variant indices in 0..{k - 1} (shape ({n},)), got "
                         f"{actions!r}")
    return array.astype(np.int64, copy=False)


class CustomerJourneyEnv(PassiveChecksOnce, gym.Env):
    """One user's journey per episode. See the module docstring for the spaces, ``info`` and the settings."""

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, config: dict | None = None, render_mode: str | None = None, *, embed=None,
                 attribute_scorer=None, language_model=None, **settings):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode {render_mode!r} is not supported; use None or 'ansi'")
        self.render_mode = render_mode
        self.config, self.content, self.worlds = build_journeys(
            config, settings, 1, embed=embed, attribute_scorer=attribute_scorer, language_model=language_model)
        self.flat = self.config["observation_type"] == "flat"
        self.observation_space = marketing.observation_spaces(self.worlds, self.config["observation_type"])
        self.action_space = spaces.Discrete(self.worlds.n_variants)
        self.n_variants = self.worlds.n_variants
        self._seeded, self._done, self._last = False, False, None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if not self._reset_checked:
            return self._checked_reset(seed, options)
        super().reset(seed=seed)
        if seed is not None or not self._seeded:
            self.worlds.seed(seed if seed is not None else int(self.np_random.integers(2**63)))
            self._seeded = True
        else:
            self.worlds.new_users(self.worlds.rows)  # the next user, on the same world clock
        self._done, self._last = False, None
        return self._observation(), marketing.campaign_info(self.content, self.n_variants, (self.n_variants,))

    def step(self, action):
        if not self._seeded:
            raise gym.error.ResetNeeded("call reset() before step()")
        if self._done:
            raise gym.error.ResetNeeded("the journey has ended (the user churned or reached max_visits): call reset()")
        if not self._step_checked:
            return self._checked_step(action)
        if type(action) is int and 0 <= action < self.n_variants:  # the common case, checked in one line
            index = action
        else:
            try:
                index = int(action)
            except (TypeError, ValueError, OverflowError):
                index = None
            if index is None or isinstance(action, (bool, np.bool_)) or index != action \
                    or not 0 <= index < self.n_variants:
                raise ValueError(f"action must be a variant index in 0..{self.n_variants - 1}, got {action!r}")
        # JourneyWorlds.step_one: the compiled N = 1 step, exactly JourneyWorlds.step's outcome.
        reward, terminated, truncated, info = self.worlds.step_one(index)
        self._done = terminated or truncated
        self._last = (index, reward, info)
        return self._observation(), reward, terminated, truncated, info

    def _observation(self):
        user, context, memory = self.worlds.observe_one()
        if self.flat:
            return np.concatenate((user, context, memory.ravel(), self.worlds.variants.ravel()))
        return {"user": user, "context": context, "memory": memory, "variants": self.worlds.variants.copy()}

    def render(self):
        if self.render_mode != "ansi":
            return None
        if not self._seeded:  # registered without OrderEnforcing (abgym.envs.checks): refuse it here
            raise gym.error.ResetNeeded("call reset() before render()")
        s = self.worlds.state
        lines = [f"user #{int(s['profile'][0])}  visit {int(s['visit'][0])}/{self.worlds.max_visits}  "
                 f"trust {float(s['trust'][0]):+.2f}  world clock {int(self.worlds.clock[0])}"]
        if self._last is not None:
            action, reward, info = self._last
            lines.append(f"last: showed {action}, click={info['click']}, conversion={info['conversion']}, "
                         f"reward={reward:.2f}, churned={info['churned']}")
        expected = self.worlds.expected_rewards()[0]
        for k, text in enumerate(self.content.texts):
            lines.append(f"  [{k}] E[r]={expected[k]:.3f} seen {int(s['exposures'][0, k])}x  {text}")
        return "\n".join(lines)


class CustomerJourneyVectorEnv(VectorEnv):
    """``num_envs`` journeys stepped together; each world starts its next user when its journey ends.

    Worlds end their journeys at different steps. ``autoreset_mode`` is gymnasium's default
    ``AutoresetMode.NEXT_STEP`` (the step after a world's journey ended starts that world's next user: its action is
    ignored, its reward is 0) or ``AutoresetMode.SAME_STEP`` (the ended world's next user is there in the same step's
    observation; the journey's last observation is in ``info["final_obs"]`` (an object array, masked by
    ``info["_final_obs"]``) and its last info in ``info["final_info"]``, a dict of batched arrays with ``_key``
    masks, as gymnasium's ``SyncVectorEnv`` lays them out), the mode SB3's VecEnv needs
    (:func:`abgym.make_sb3_vec_env` asks for it).
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}
    autoreset_modes = (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP)

    def __init__(self, num_envs: int = 1, config: dict | None = None, render_mode: str | None = None, *,
                 embed=None, attribute_scorer=None, language_model=None,
                 autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP, **settings):
        if render_mode is not None:
            raise ValueError("CustomerJourneyVectorEnv does not render; use render_mode=None")
        try:
            mode = AutoresetMode(autoreset_mode)
        except ValueError:
            mode = None
        if mode not in self.autoreset_modes:
            raise ValueError(f"autoreset_mode {autoreset_mode!r} is not supported; use AutoresetMode.NEXT_STEP or "
                             "AutoresetMode.SAME_STEP")
        self.metadata = {**type(self).metadata, "autoreset_mode": mode}
        self.config, self.content, self.worlds = build_journeys(
            config, settings, num_envs, embed=embed, attribute_scorer=attribute_scorer, language_model=language_model)
        self.num_envs, self.render_mode = self.worlds.n, None
        self.flat = self.config["observation_type"] == "flat"
        self.single_observation_space = marketing.observation_spaces(self.worlds, self.config["observation_type"])
        self.single_action_space = spaces.Discrete(self.worlds.n_variants)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._variants = np.broadcast_to(self.worlds.variants, (self.num_envs, *self.worlds.variants.shape))
        self._autoreset = np.zeros(self.num_envs, bool)
        self._seeded = False

    def reset(self, *, seed: int | list | None = None, options: dict | None = None):
        if isinstance(seed, (list, tuple)):  # one seed per sub-env is allowed; the worlds share one stream
            seed = seed[0]
        super().reset(seed=seed)
        if seed is not None or not self._seeded:
            self.worlds.seed(seed if seed is not None else int(self.np_random.integers(2**63)))
            self._seeded = True
        else:
            self.worlds.new_users(self.worlds.rows)
        self._autoreset[:] = False
        return self._observation(), marketing.campaign_info(self.content, self.worlds.n_variants,
                                                            (self.num_envs, self.worlds.n_variants))

    def step(self, actions):
        if not self._seeded:
            raise RuntimeError("call reset() before step()")
        actions = _check_actions(actions, self.num_envs, self.worlds.n_variants)
        restarting = self._autoreset.copy()
        out = self.worlds.step(actions)
        reward = np.where(restarting, 0.0, out["reward"])
        terminated = out["terminated"] & ~restarting
        truncated = out["truncated"] & ~restarting
        ended = terminated | truncated
        every = ~restarting
        info = {}
        for key in INFO_KEYS:
            info[key], info["_" + key] = out[key], every.copy()  # one mask array per key, as gymnasium does
        if self.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP:
            if ended.any():
                final = self._observation()
                rows = np.flatnonzero(ended)
                final_obs = np.empty(self.num_envs, dtype=object)
                for row in rows:
                    final_obs[row] = (final[row] if self.flat else {key: value[row].copy()
                                                                    for key, value in final.items()})
                # gymnasium's layout: final_info is a dict of batched arrays, each with its own "_key" mask.
                final_info = {}
                for key in INFO_KEYS:
                    final_info[key], final_info["_" + key] = out[key], ended.copy()
                info.update(final_obs=final_obs, _final_obs=ended, final_info=final_info, _final_info=ended.copy())
                self.worlds.new_users(rows)
            return self._observation(), reward, terminated, truncated, info
        if restarting.any():
            self.worlds.new_users(np.flatnonzero(restarting))
        self._autoreset = ended
        return self._observation(), reward, terminated, truncated, info

    def _observation(self):
        user, context, memory = self.worlds.observe()
        if self.flat:
            return marketing.flatten_observations(user, context, memory, self.worlds.variants)
        return {"user": user, "context": context, "memory": memory, "variants": self._variants}


__all__ = ["CustomerJourneyEnv", "CustomerJourneyVectorEnv", "default_config", "make_config"]
