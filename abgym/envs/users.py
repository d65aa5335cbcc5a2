"""The simulated users of PersonalizedMarketing-v0: population, response model, drift, and N worlds stepped at once.

A **population** of user profiles is drawn once (from ``population_seed``). A profile has a portrait (segment, age
band, device, home channel, interest vector) and latent preference weights over the content vector of
:mod:`abgym.envs.content` (attribute scores and embedding coordinates). Preferences add up from the segment, the
age band, the device and the individual; the interest vector the agent sees is a noisy view of the individual's
taste in embedding space.

**Response** to variant ``k``, for the user at hand::

    P(click)  = logistic(q_k + w_user . c_k + channel and time effects + drift_segment . c_k
                         + loyalty_effect * loyalty - fatigue * log(1 + times this user saw k))
    P(convert | click) = logistic(logit(conversion_rate) + conversion_scale * v_user . c_k)
    revenue | conversion ~ revenue_mean_user * LogNormal(mean 1, sigma)

``q_k`` is calibrated so that the population-average CTR of variant ``k`` (fresh users, arrival distribution of
channels and times, no drift) equals its recorded CTR. What makes people click is not what makes them convert, and
conversions build loyalty, which raises later clicks and lowers churn: long-term value differs from the next click.

**Worlds.** Each world has ``active_users`` slots of users who come back during an episode (uniform arrivals over
slots): they carry fatigue, loyalty and a short memory of what they were shown. After each impression a user may
churn (more likely when shown the same variant again, less when they click or are loyal); a fresh profile takes the
slot. All N worlds are arrays with a leading world axis and are stepped by one sequence of numpy operations, which the
single environment (N = 1) and the vector environment share.

**Drift** of segment preferences, seeded: an Ornstein-Uhlenbeck walk (updated exactly every ``drift_interval``
arrivals), abrupt regime shifts among ``n_regimes`` campaign phases, and a linear trend per segment.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit, ndtri

from abgym.envs.content import FEATURE_BOUND
from abgym.envs.marketing_step import fill_standard_normal, make_state, step_world_zero, walk_one_world

AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")
DEVICES = ("mobile", "desktop", "tablet")
CHANNELS = ("search", "social", "email", "direct")
DAYS = 7
CALIBRATION_TIMES = 28  # time-of-week points the calibration averages over (4 per day, spread over the phases)
FATIGUE_LEVELS = 256  # exposures are counted in uint8 and saturate here


def logit(p):
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def reward_weights(config: dict) -> tuple[float, float, float]:
    """(click, conversion, revenue) weights of the configured reward."""
    kind = config["reward"]
    if kind == "click":
        return 1.0, 0.0, 0.0
    if kind == "conversion":
        return 0.0, 1.0, 0.0
    if kind == "revenue":
        return 0.0, 0.0, 1.0
    if kind == "weighted":
        weights = config["reward_weights"]
        unknown = set(weights) - {"click", "conversion", "revenue"}
        if unknown:
            raise ValueError(f"reward_weights has unknown key(s) {sorted(unknown)}; use click, conversion, revenue")
        return (float(weights.get("click", 0.0)), float(weights.get("conversion", 0.0)),
                float(weights.get("revenue", 0.0)))
    raise ValueError(f"reward {kind!r} is unknown; use 'click', 'conversion', 'revenue' or 'weighted'")


@dataclass(eq=False)
class Population:
    """Profiles and the static parts of the response model, for one seed. Shared by all worlds of an environment."""

    segment: np.ndarray  # (P,) int
    home_channel: np.ndarray  # (P,) int
    portrait: np.ndarray  # (P, user_dim) float32: the "user" observation
    base_logit: np.ndarray  # (P, K): w_user . c_k
    conv_prob: np.ndarray  # (P, K)
    revenue_mean: np.ndarray  # (P,)
    channel_logit: np.ndarray  # (C, K)
    time_logit_table: np.ndarray  # (DAYS * arrivals_per_day, K): time of day and day of week
    segment_base: np.ndarray  # (S, A) segment preference weights before drift
    quality: np.ndarray | None = None  # (K,) q_k
    static_logit: np.ndarray | None = None  # (P, C, K): q + base + channel
    value_after_click: np.ndarray | None = None  # (P, K): expected reward after a click, beyond the click's own


def sample_population(rng: np.random.Generator, config: dict, content_matrix: np.ndarray) -> Population:
    """Draw profiles and the response model's static parameters."""
    n_profiles, n_segments = int(config["population_size"]), int(config["n_segments"])
    n_variants, n_features = content_matrix.shape
    embedding_dim = int(config["embedding_dim"])
    scale = 1.0 / np.sqrt(n_features)  # so that w . c has standard deviation ~ the configured scale

    segment_share = rng.dirichlet(np.full(n_segments, 5.0))
    segment = rng.choice(n_segments, size=n_profiles, p=segment_share)

    def per_segment_category(n_values: int) -> np.ndarray:
        table = rng.dirichlet(np.full(n_values, 2.0), size=n_segments)  # (S, n_values)
        cumulative = table.cumsum(axis=1)[segment]
        return np.minimum((rng.random((n_profiles, 1)) > cumulative).sum(axis=1), n_values - 1)

    age, device, home_channel = (per_segment_category(len(AGE_BANDS)), per_segment_category(len(DEVICES)),
                                 per_segment_category(len(CHANNELS)))

    segment_base = rng.normal(0.0, config["segment_scale"] * scale, (n_segments, n_features))
    age_pref = rng.normal(0.0, config["portrait_scale"] * scale, (len(AGE_BANDS), n_features))
    device_pref = rng.normal(0.0, config["portrait_scale"] * scale, (len(DEVICES), n_features))
    individual = rng.normal(0.0, config["preference_scale"] * scale, (n_profiles, n_features))
    weights = segment_base[segment] + age_pref[age] + device_pref[device] + individual
    base_logit = weights @ content_matrix.T

    # The interest vector: the individual's taste in embedding space (the last embedding_dim features), in units of
    # its spread, plus observation noise.
    taste = weights[:, -embedding_dim:] / (scale * max(config["preference_scale"], 1e-9))
    interest = np.clip(taste + rng.normal(0.0, config["interest_noise"], taste.shape), -FEATURE_BOUND, FEATURE_BOUND)

    conversion_weights = (rng.normal(0.0, scale, (n_segments, n_features))[segment]
                          + rng.normal(0.0, scale, (n_profiles, n_features)))
    conv_prob = expit(logit(config["conversion_rate"])
                      + config["conversion_scale"] * conversion_weights @ content_matrix.T)
    spend = rng.normal(0.0, 0.3, n_segments)[segment] + rng.normal(0.0, 0.3, n_profiles)
    revenue_mean = config["revenue_mean"] * np.exp(spend) / np.exp(spend).mean()

    context_scale = config["context_scale"] * scale
    channel_logit = (rng.normal(0.0, context_scale, (len(CHANNELS), n_features)) @ content_matrix.T
                     + rng.normal(0.0, config["context_scale"], (len(CHANNELS), 1)))
    time_pref = rng.normal(0.0, context_scale, (2, n_features)) @ content_matrix.T  # (2, K): sin and cos
    day_bias = rng.normal(0.0, 0.5 * config["context_scale"], DAYS)
    per_day = int(config["arrivals_per_day"])
    phase = 2 * np.pi * np.arange(per_day) / per_day
    tod = np.stack([np.sin(phase), np.cos(phase)], axis=1) @ time_pref  # (per_day, K)
    time_logit_table = (day_bias[:, None, None] + tod[None]).reshape(DAYS * per_day, n_variants)

    portrait = np.concatenate([
        np.eye(n_segments)[segment], np.eye(len(AGE_BANDS))[age], np.eye(len(DEVICES))[device],
        np.eye(len(CHANNELS))[home_channel], interest], axis=1).astype(np.float32)
    return Population(segment=segment, home_channel=home_channel, portrait=portrait, base_logit=base_logit,
                      conv_prob=conv_prob, revenue_mean=revenue_mean, channel_logit=channel_logit,
                      time_logit_table=time_logit_table, segment_base=segment_base)


def channel_distribution(population: Population, home_channel_prob: float) -> np.ndarray:
    """(P, C): the probability that a profile arrives through each channel."""
    n_channels = population.channel_logit.shape[0]
    probs = np.full((len(population.segment), n_channels), (1 - home_channel_prob) / n_channels)
    probs[np.arange(len(probs)), population.home_channel] += home_channel_prob
    return probs


def calibration_times(per_day: int) -> np.ndarray:
    """Indices into the time table, evenly spread over the week and the day."""
    return np.linspace(0, DAYS * per_day, CALIBRATION_TIMES, endpoint=False).astype(int)


def population_average_ctr(population: Population, quality: np.ndarray, home_channel_prob: float,
                           per_day: int) -> np.ndarray:
    """(K,): the average click probability of fresh users (no fatigue, no drift) over the arrival distribution."""
    ctr, _ = _average_over_arrivals(population, quality, home_channel_prob, per_day)
    return ctr


CHUNK = 2048  # profiles per block when averaging over (profile, channel, time): bounds the memory used


def _average_over_arrivals(population, quality, home_channel_prob, per_day):
    """Mean of P(click) and of its derivative p (1 - p) over profiles, their channels and the times of the week."""
    channel_p = channel_distribution(population, home_channel_prob)  # (P, C)
    times = population.time_logit_table[calibration_times(per_day)]  # (T, K)
    total, slope = 0.0, 0.0
    for start in range(0, len(population.segment), CHUNK):
        block = slice(start, start + CHUNK)
        logits = (quality + population.base_logit[block, None, None, :] + population.channel_logit[None, :, None, :]
                  + times[None, None, :, :])  # (chunk, C, T, K)
        p = expit(logits)
        weights = channel_p[block, :, None, None]
        total = total + (weights * p).sum(axis=(0, 1, 2))
        slope = slope + (weights * p * (1 - p)).sum(axis=(0, 1, 2))
    scale = len(population.segment) * len(times)
    return total / scale, slope / scale


def calibrate_quality(population: Population, target_ctr: np.ndarray, home_channel_prob: float,
                      per_day: int, tolerance: float = 1e-10) -> np.ndarray:
    """Newton's method for q (K,) such that the population-average CTR of each variant equals ``target_ctr``."""
    target = np.clip(np.asarray(target_ctr, dtype=np.float64), 1e-5, 1 - 1e-5)
    quality = logit(target) - population.base_logit.mean(axis=0)
    for _ in range(50):
        ctr, slope = _average_over_arrivals(population, quality, home_channel_prob, per_day)
        step = (ctr - target) / np.maximum(slope, 1e-12)
        quality = quality - np.clip(step, -2.0, 2.0)
        if np.all(np.abs(ctr - target) < tolerance):
            break
    return quality


def finish_population(population: Population, target_ctr, config: dict) -> Population:
    """Set the content quality (calibrated to ``target_ctr``, or logit(base_ctr) if None) and the lookup tables."""
    n_variants = population.base_logit.shape[1]
    if target_ctr is None:
        population.quality = np.full(n_variants, logit(config["base_ctr"]))
    else:
        target = np.asarray(target_ctr, dtype=np.float64)
        if target.shape != (n_variants,) or np.any(target <= 0) or np.any(target >= 1):
            raise ValueError(f"variant_ctr must be {n_variants} click-through rates strictly between 0 and 1, got "
                             f"{target_ctr!r}")
        population.quality = calibrate_quality(population, target, config["home_channel_prob"],
                                               int(config["arrivals_per_day"]))
    population.static_logit = (population.quality + population.base_logit[:, None, :]
                               + population.channel_logit[None, :, :])
    w_click, w_conv, w_revenue = reward_weights(config)
    population.value_after_click = population.conv_prob * (w_conv + w_revenue * population.revenue_mean[:, None])
    return population


_POPULATIONS: dict[str, Population] = {}  # in-process memo: envs of one config share one (read-only) population


def build_population(config: dict, content_matrix: np.ndarray, target_ctr) -> Population:
    """The calibrated population of ``config`` and the content; memoised in-process (the calibration is the cost)."""
    import hashlib
    import json

    key = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode() + content_matrix.tobytes()
                         + (b"" if target_ctr is None else np.asarray(target_ctr, np.float64).tobytes())).hexdigest()
    if key not in _POPULATIONS:
        if len(_POPULATIONS) >= 8:
            _POPULATIONS.pop(next(iter(_POPULATIONS)))
        rng = np.random.default_rng(config["population_seed"])
        _POPULATIONS[key] = finish_population(sample_population(rng, config, content_matrix), target_ctr, config)
    return _POPULATIONS[key]


def observation_tables(content) -> tuple[np.ndarray, np.ndarray]:
    """(variants (K, variant_dim), memory table): the content's observation rows, shared by every world.

    ``variants`` is each variant's embedding and attribute scores (read-only). A memory row is ``[embedding of the
    variant shown, click, conversion]``, looked up by the code ``1 + 3k + outcome`` (outcome 0: no click, 1: a click,
    2: a conversion); code 0 is an empty memory slot.
    """
    embeddings = content.embeddings.astype(np.float32)
    variants = np.concatenate([embeddings, content.attributes.astype(np.float32)], axis=1)
    variants.flags.writeable = False
    rows = [np.zeros(embeddings.shape[1] + 2, np.float32)]
    for k in range(len(embeddings)):
        for click, conversion in ((0, 0), (1, 0), (1, 1)):
            rows.append(np.concatenate([embeddings[k], [click, conversion]]).astype(np.float32))
    return variants, np.stack(rows)


class MarketingWorlds:
    """N independent worlds of one population, stepped together.

    The population (profiles, response model, calibration) is drawn once from ``config["population_seed"]``: it is
    part of the environment's definition, like a data set, and costs a calibration. ``seed(s)`` only restarts the
    random stream of arrivals, responses and drift. Per-user state is stored flat, one row per (world, slot), so that
    the hot path indexes with one integer array (``take``) rather than with pairs of arrays.
    """

    def __init__(self, config: dict, content, n_worlds: int):
        if isinstance(n_worlds, bool) or int(n_worlds) != n_worlds or n_worlds < 1:
            raise ValueError(f"the number of worlds must be a positive whole number, got {n_worlds!r}")
        self.config = config
        self.n = int(n_worlds)
        self.content_matrix = content.matrix  # (K, A)
        self.n_variants, self.n_features = self.content_matrix.shape
        self.n_segments = int(config["n_segments"])
        self.n_slots = int(config["active_users"])
        self.n_profiles = int(config["population_size"])
        self.horizon = int(config["horizon"])
        self.per_day = int(config["arrivals_per_day"])
        self.week = DAYS * self.per_day
        self.memory_len = int(config["memory_len"])
        self.n_regimes = int(config["n_regimes"])
        self.drift = bool(config["drift"])
        self.weights = reward_weights(config)
        # The Ornstein-Uhlenbeck walk's exact discretisation over drift_interval arrivals: decay and noise per update.
        interval, theta = config["drift_interval"], config["ou_theta"]
        sigma = config["ou_sigma"] / np.sqrt(self.n_features)
        self._ou_decay = np.exp(-theta * interval)
        self._ou_spread = (sigma * np.sqrt((1 - self._ou_decay**2) / (2 * theta)) if theta > 0
                           else sigma * np.sqrt(interval))
        self.fatigue_table = (config["fatigue"] * np.log1p(np.arange(FATIGUE_LEVELS))).astype(np.float64)
        self.rows = np.arange(self.n)
        self.slot_base = self.rows * self.n_slots
        self.variant_base = self.rows * self.n_variants
        self.segment_base = self.rows * self.n_segments

        self.population = build_population(config, self.content_matrix, content.target_ctr)
        pop = self.population
        n_channels = len(CHANNELS)
        # An arrival's channel "choice" is 0..C-1 (a random channel) or C (the user's home channel); tables indexed
        # by profile * (C + 1) + choice give the channel and the static click logits in one lookup each.
        choices = len(CHANNELS) + 1
        self.choice_channel = np.where(np.arange(choices)[None, :] == len(CHANNELS), pop.home_channel[:, None],
                                       np.arange(choices)[None, :]).ravel()
        self.choice_logit = pop.static_logit.reshape(-1, self.n_variants)[
            np.repeat(np.arange(self.n_profiles), choices) * len(CHANNELS) + self.choice_channel]

        # Observation tables that depend on the content and the config only.
        self.variants, self.memory_table = observation_tables(content)
        self.embedding_dim = content.embeddings.shape[1]
        self.action_code = (1 + 3 * np.arange(self.n_variants)).astype(np.int16)
        # P(churn) before the loyalty factor, by (earlier exposures to the shown variant + 1, click).
        seen = np.arange(FATIGUE_LEVELS)[:, None]
        self.increment = np.minimum(np.arange(FATIGUE_LEVELS) + 1, FATIGUE_LEVELS - 1).astype(np.uint8)
        self.twice = 2 * np.arange(FATIGUE_LEVELS)
        # A user's memory codes are stored in a row of 2, 4, 8 or 16 int16 (the next power of two of memory_len;
        # the columns beyond memory_len hold older codes nobody reads): numpy's take and put copy rows of 4, 8, 16
        # or 32 bytes by a fast path, rows of 10 bytes (memory_len 5) element by element, several times slower.
        self.code_width = 1 << (self.memory_len - 1).bit_length() if self.memory_len <= 16 else self.memory_len
        self._code_item = np.dtype((np.void, 2 * self.code_width))
        self.memory_shift = np.concatenate([[0], np.arange(self.code_width - 1)])
        self.next_time = (np.arange(self.week) + 1) % self.week
        self.click_value = self.weights[0] + self.population.value_after_click  # expected reward per click
        w_click, w_conversion, w_revenue = self.weights
        self._const = {name: np.array([value]) for name, value in dict(
            w_click=w_click, w_conversion=w_conversion, w_revenue=w_revenue, loyalty_effect=config["loyalty_effect"],
            loyalty_decay=config["loyalty_decay"], loyalty_gain=config["loyalty_gain"],
            loyalty_cap=config["loyalty_cap"]).items()}
        self._const.update(one=np.array([1]), horizon=np.array([self.horizon]), variants=np.array([self.n_variants]),
                           channels=np.array([len(CHANNELS)]), choices=np.array([len(CHANNELS) + 1]),
                           regimes=np.array([self.n_regimes]))
        self.churn_table = np.clip(config["churn_base"] + config["churn_per_repeat"] * np.maximum(seen - 1, 0)
                                   - config["churn_click_relief"] * np.arange(2)[None, :], 0.0, 1.0).ravel()
        phase = 2 * np.pi * (np.arange(self.per_day) / self.per_day)
        tod = np.stack([np.sin(phase), np.cos(phase)], axis=1)
        time_obs = np.concatenate([np.tile(tod, (DAYS, 1)), np.repeat(np.eye(DAYS), self.per_day, axis=0)], axis=1)
        campaign_obs = np.eye(self.n_regimes) * float(bool(config["observe_campaign"]))
        # One row per (time of week, channel, regime): the whole context is one lookup.
        self.context_table = np.concatenate([
            np.repeat(time_obs, n_channels * self.n_regimes, axis=0),
            np.tile(np.repeat(np.eye(n_channels), self.n_regimes, axis=0), (self.week, 1)),
            np.tile(campaign_obs, (self.week * n_channels, 1))], axis=1).astype(np.float32)
        self.user_dim = self.n_segments + len(AGE_BANDS) + len(DEVICES) + n_channels + self.embedding_dim
        self.context_dim = self.context_table.shape[1]
        self.memory_dim = self.embedding_dim + 2
        self.variant_dim = self.variants.shape[1]
        self.rng: np.random.Generator | None = None
        self.history: list[dict] = []
        self._observed = None  # (slot, profile, context row) after a step_one, for observe_one

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        # Views of exposures and codes (pickle would make them separate copies) and the compiled step's view of
        # the arrays: rebuilt from the arrays.
        for view in ("exposures_flat", "_code_items", "_state"):
            state.pop(view, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if getattr(self, "exposures", None) is not None:
            self.exposures_flat = self.exposures.reshape(-1)
            self._code_items = self.codes.view(self._code_item).reshape(-1)
            self._state = make_state(self)

    # ----------------------------------------------------------------------------------------------- seeding
    def seed(self, seed: int | None) -> None:
        """A new random stream (arrivals, responses, drift); every world starts a new episode."""
        self.rng = np.random.default_rng(seed)
        n, k, slots = self.n, self.n_variants, self.n * self.n_slots
        self.occupant = np.zeros(slots, np.int64)
        self.next_profile = np.zeros(n, np.int64)
        self.exposures = np.zeros((slots, k), np.uint8)
        self.exposures_flat = self.exposures.reshape(-1)
        self.loyalty = np.zeros(slots, np.float64)
        self.codes = np.zeros((slots, self.code_width), np.int16)  # the first memory_len columns are the memory
        self._code_items = self.codes.view(self._code_item).reshape(-1)  # one 2 * code_width-byte item per slot
        self.t = np.zeros(n, np.int64)
        self.time_index = np.zeros(n, np.int64)
        self.regime = np.zeros(n, np.int64)
        self.regime_offsets = np.zeros((n, self.n_regimes, self.n_segments, self.n_features))
        self.ou = np.zeros((n, self.n_segments, self.n_features))
        self.trend = np.zeros((n, self.n_segments, self.n_features))
        self.drift_logit = np.zeros((n * self.n_segments, k))  # row: world * S + segment
        # The drift's logit is linear in the preference shift: its regime, walk and trend parts are each multiplied
        # by the content once (regime and trend at reset, the walk at each walk) and added (see _drift_rows).
        self._regime_logit = np.zeros((n * self.n_regimes * self.n_segments, k))  # (world * R + regime) * S + seg
        self._trend_logit = np.zeros((n * self.n_segments, k))
        self._ou_logit = np.zeros((n * self.n_segments, k))
        self._noise = np.empty((n, self.n_segments, self.n_features))
        self.slot = np.zeros(n, np.int64)  # flat (world, slot) row of the current user
        self.profile = np.zeros(n, np.int64)
        self.channel = np.zeros(n, np.int64)
        self.p_click = np.zeros((n, k))
        self.p_conversion = np.zeros((n, k))
        self.expected = np.zeros((n, k))
        self._uniforms = np.empty((max(1, min(1024, 65536 // n)), n, 8))  # the draws of a block of steps
        self._block, self._block_len, self._block_pos = {}, 0, 0
        self._since_walk = 0  # steps since the last Ornstein-Uhlenbeck update (all worlds walk together)
        self.history = []
        self._state = make_state(self)
        self.reset_worlds(self.rows)

    def reset_worlds(self, worlds: np.ndarray) -> None:
        """Start new episodes in ``worlds`` (the population is kept; user slots are filled afresh)."""
        rng, m, k = self.rng, len(worlds), self.n_variants
        self._observed = None
        start = rng.integers(self.n_profiles, size=m)
        slots = (self.slot_base[worlds][:, None] + np.arange(self.n_slots)).ravel()
        self.occupant[slots] = ((start[:, None] + np.arange(self.n_slots)) % self.n_profiles).ravel()
        self.next_profile[worlds] = start + self.n_slots
        self.exposures[slots] = 0
        self.loyalty[slots] = 0.0
        self.codes[slots] = 0
        self.t[worlds] = 0
        self.time_index[worlds] = rng.integers(DAYS, size=m) * self.per_day  # midnight of a random weekday
        self.regime[worlds] = 0
        offsets = np.zeros((m, self.n_regimes, self.n_segments, self.n_features))
        offsets[:, 1:] = rng.normal(0.0, self.config["regime_scale"] / np.sqrt(self.n_features),
                                    (m, self.n_regimes - 1, self.n_segments, self.n_features))
        self.regime_offsets[worlds] = offsets
        self.ou[worlds] = 0.0
        # Trend: preference change per 1,000 arrivals, a random direction per segment.
        self.trend[worlds] = rng.normal(0.0, self.config["segment_trend"] / 1000 / np.sqrt(self.n_features),
                                        (m, self.n_segments, self.n_features))
        self.drift_logit.reshape(self.n, self.n_segments, -1)[worlds] = 0.0
        if self.drift:
            self._regime_logit.reshape(self.n, -1, k)[worlds] = content_product(
                offsets.reshape(-1, self.n_features), self.content_matrix).reshape(m, -1, k)
            self._trend_logit.reshape(self.n, -1, k)[worlds] = content_product(
                self.trend[worlds].reshape(-1, self.n_features), self.content_matrix).reshape(m, -1, k)
            self._ou_logit.reshape(self.n, -1, k)[worlds] = 0.0
        if self.config["record_drift"]:
            self._record(worlds, np.zeros(m, bool))
        if len(worlds) == self.n:
            self._since_walk = 0
        self._arrive(worlds, *self._arrival_draws(rng.random((m, 3))))

    # ----------------------------------------------------------------------------------------------- dynamics
    def _refill(self) -> None:
        """Draw the uniforms of the next block of steps at once and turn them into what the steps use.

        One generator call and a few array operations serve up to 1,024 steps: the single environment's step is
        mostly fixed overhead per numpy call, so the fewer calls per step the faster it runs. Columns of a step's
        draws: click, conversion, churn, regime shift, arrival slot, channel choice, channel, revenue.
        """
        cfg = self.config
        u = self.rng.random(out=self._uniforms)  # the same draws as rng.random(self._uniforms.shape)
        shift_prob = cfg["regime_shift_prob"] if self.drift and self.n_regimes > 1 else 0.0
        shift = u[..., 3] < shift_prob
        # Given that the shift uniform fell below the probability, its rescaled value picks the new regime.
        choice = (u[..., 3] / max(shift_prob, 1e-300) * (self.n_regimes - 1)).astype(np.int64) if shift_prob else None
        self._block = dict(click=u[..., 0], conversion=u[..., 1], churn=u[..., 2], shift=shift,
                           shift_any=shift.any(axis=1).tolist(), choice=choice,
                           arrival=self._arrival_draws(u[..., 4:7]),
                           revenue=u[..., 7])
        self._block_len, self._block_pos = len(u), 0

    def _arrival_draws(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(slot offset, channel choice) from three uniforms per arrival; choice C means the home channel."""
        return ((u[..., 0] * self.n_slots).astype(np.int64),
                np.where(u[..., 1] < self.config["home_channel_prob"], len(CHANNELS),
                         (u[..., 2] * len(CHANNELS)).astype(np.int64)))

    def _arrive(self, worlds: np.ndarray | None, slot_offset, choice) -> None:
        """The next user of each of ``worlds`` (None: all): slot, channel, and their click probabilities."""
        pop, c = self.population, self._const
        all_worlds = worlds is None
        rows = self.rows if all_worlds else worlds
        slot = slot_offset if self.n == 1 else (self.slot_base if all_worlds else self.slot_base[rows]) + slot_offset
        profile = self.occupant.take(slot)
        row = profile * c["choices"] + choice
        channel = self.choice_channel.take(row)
        logits = (self.choice_logit.take(row, axis=0)
                  + pop.time_logit_table.take(self.time_index if all_worlds else self.time_index[rows], axis=0))
        if self.drift:
            segment_rows = pop.segment.take(profile)
            if self.n > 1:
                segment_rows = segment_rows + (self.segment_base if all_worlds else self.segment_base[rows])
            logits += self.drift_logit.take(segment_rows, axis=0)
        if self.config["loyalty_effect"]:
            logits += self.loyalty.take(slot)[:, None] * c["loyalty_effect"]
        if self.config["fatigue"]:
            logits -= self.fatigue_table.take(self.exposures.take(slot, axis=0))
        p_click = batch_expit(logits)
        expected = p_click * self.click_value.take(profile, axis=0)
        p_conversion = pop.conv_prob.take(profile, axis=0)
        if all_worlds:  # in place: the compiled single step (self._state) holds these arrays
            self.slot[:], self.profile[:], self.channel[:] = slot, profile, channel
            self.p_click[:], self.expected[:], self.p_conversion[:] = p_click, expected, p_conversion
        else:
            self.slot[worlds], self.profile[worlds], self.channel[worlds] = slot, profile, channel
            self.p_click[worlds], self.expected[worlds] = p_click, expected
            self.p_conversion[worlds] = p_conversion

    def step(self, actions: np.ndarray) -> dict:
        """Show ``actions`` (N,) to the current users; return the outcome arrays and move to the next arrivals.

        Constants enter the arithmetic as one-element arrays (``self._const``): numpy combines two arrays several
        times faster than an array and a Python number, and the single environment's step is made of such tiny ops.
        """
        c, pop, slot, profile = self._const, self.population, self.slot, self.profile
        self._observed = None
        if self._block_pos >= self._block_len:
            self._refill()
        b, block = self._block_pos, self._block
        self._block_pos += 1
        expected = self.expected.copy()  # the arrival below overwrites self.expected in place
        shown = actions if self.n == 1 else self.variant_base + actions  # flat index into (N, K) arrays
        click = block["click"][b] < self.p_click.take(shown)
        conversion = click & (block["conversion"][b] < self.p_conversion.take(shown))
        if np.count_nonzero(conversion):
            # Log-normal revenue with mean revenue_mean of the user, drawn by inverse CDF for the converted only.
            sigma, converted = self.config["revenue_sigma"], np.flatnonzero(conversion)
            revenue = np.zeros(self.n)
            revenue[converted] = (pop.revenue_mean.take(profile[converted])
                                  * np.exp(sigma * ndtri(block["revenue"][b][converted]) - 0.5 * sigma * sigma))
            reward = click * c["w_click"] + conversion * c["w_conversion"] + revenue * c["w_revenue"]
            loyalty = np.minimum(self.loyalty.take(slot) * c["loyalty_decay"] + conversion * c["loyalty_gain"],
                                 c["loyalty_cap"])
        else:  # the common case: nobody converted, so loyalty only decays
            revenue = np.zeros(self.n)
            reward = click * c["w_click"]
            loyalty = self.loyalty.take(slot) * c["loyalty_decay"]

        # The user remembers: exposures (fatigue), loyalty, the memory of what they saw, and may churn.
        exposure_index = slot * c["variants"] + actions
        seen = self.increment.take(self.exposures_flat.take(exposure_index))  # uint8, saturating
        self.exposures_flat[exposure_index] = seen
        self.loyalty[slot] = loyalty
        codes = self.codes.take(slot, axis=0)
        returning = codes[:, 0].astype(bool)
        codes = codes.take(self.memory_shift, axis=1)  # newest first: column 0 is overwritten below
        click_int = click.view(np.int8)
        codes[:, 0] = self.action_code.take(actions) + (click_int + conversion.view(np.int8))
        np.put(self._code_items, slot, codes.view(self._code_item).reshape(-1))  # = self.codes[slot] = codes
        churn = self.churn_table.take(self.twice.take(seen) + click_int)
        churned = block["churn"][b] < churn * np.exp(-loyalty)
        if np.count_nonzero(churned):
            self._replace_users(self.rows[churned], slot[churned])
        segment = pop.segment.take(profile)

        self.t += c["one"]
        self.time_index[:] = self.next_time.take(self.time_index)
        if self.drift:
            regime_shift = block["shift"][b]
            self._drift(regime_shift, block["choice"][b] if block["shift_any"][b] else None)
        else:
            regime_shift = np.zeros(self.n, bool)
        truncated = self.t >= c["horizon"]
        slot_offset, choice = block["arrival"]
        self._arrive(None, slot_offset[b], choice[b])
        return dict(reward=reward, click=click, conversion=conversion, revenue=revenue, expected_rewards=expected,
                    oracle_action=expected.argmax(axis=1), segment=segment, regime_shift=regime_shift,
                    returning=returning, churned=churned, truncated=truncated)

    def step_one(self, action: int) -> tuple[float, bool, dict]:
        """``step`` for a single world (N = 1) in Python values: (reward, truncated, info of the single env).

        One call of the compiled step (:mod:`abgym.envs.marketing_step`) on the same draws and the same state
        arrays, with the same operations in the same order, so that it returns exactly what ``step`` would and the
        two can be mixed (tests/test_marketing_env.py checks the two step for step): the numpy step's per-call
        overhead on one-element arrays is what the single env was slow for. The click probabilities' ``exp`` is the
        C library's in both; the churn factor's is numpy's in ``step`` (see abgym.envs.marketing_step)."""
        if self._block_pos >= self._block_len:
            self._refill()
        b = self._block_pos
        self._block_pos = b + 1
        walk = False
        if self.drift:
            self._since_walk += 1
            if self._since_walk >= self.config["drift_interval"]:
                self._walk()
                walk = True
        expected = self.expected[0].copy()
        (click, conversion, reward, churned, returning, segment, regime_shift, truncated, profile,
         *self._observed) = step_world_zero(self._state, action, b, walk)  # the last three: for observe_one
        revenue = 0.0
        if conversion:  # the step's arithmetic on one-element arrays, as the vectorized step does it
            sigma = self.config["revenue_sigma"]
            revenue = float((self.population.revenue_mean.take(np.array([profile]))
                             * np.exp(sigma * ndtri(self._uniforms[b, :1, 7]) - 0.5 * sigma * sigma))[0])
            reward += revenue * self.weights[2]
        if self.config["record_drift"] and (walk or regime_shift):
            self._record(self.rows, np.array([regime_shift]))
        return reward, truncated, {
            "expected_rewards": expected, "oracle_action": int(expected.argmax()), "click": click,
            "conversion": conversion, "revenue": revenue, "segment": segment, "regime_shift": regime_shift,
            "returning": returning, "churned": churned}

    def observe_one(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``observe`` of the single world of N = 1: new arrays (user, context, memory)."""
        if self._observed is not None:  # (slot, profile, context row) of the last step_one
            slot, profile, context_row = self._observed
        else:
            slot, profile = int(self.slot[0]), int(self.profile[0])
            context_row = ((int(self.time_index[0]) * len(CHANNELS) + int(self.channel[0])) * self.n_regimes
                           + int(self.regime[0]))
        return (self.population.portrait[profile].copy(), self.context_table[context_row].copy(),
                self.memory_table.take(self.codes[slot, :self.memory_len], axis=0))

    def _replace_users(self, worlds: np.ndarray, slots: np.ndarray) -> None:
        self.occupant[slots] = self.next_profile[worlds] % self.n_profiles
        self.next_profile[worlds] += 1
        self.exposures[slots] = 0
        self.loyalty[slots] = 0.0
        self.codes[slots] = 0

    def _drift(self, shift: np.ndarray, choice: np.ndarray | None) -> None:
        """Regime shifts (where ``choice`` is given), the Ornstein-Uhlenbeck walk every ``drift_interval`` steps."""
        if choice is not None:
            self.regime[shift] = (self.regime[shift] + 1 + choice[shift]) % self.n_regimes
        self._since_walk += 1
        walk = self._since_walk >= self.config["drift_interval"]
        if walk:
            self._walk()
        if walk or (choice is not None and shift.all()):  # every world's drift changed
            self._drift_rows(None, out=self.drift_logit)
            if self.config["record_drift"]:
                self._record(self.rows, shift)
        elif choice is not None:
            worlds = np.flatnonzero(shift)
            self.drift_logit.reshape(self.n, self.n_segments, -1)[worlds] = self._drift_rows(worlds).reshape(
                len(worlds), self.n_segments, -1)
            if self.config["record_drift"]:
                self._record(worlds, shift[worlds])

    def _walk(self) -> None:
        """The Ornstein-Uhlenbeck walk of every world's segment preferences, and its part of the logit."""
        self._since_walk = 0
        draw_walk_noise(self.rng, self._noise)
        apply_walk(self._noise, self.ou, self._ou_logit, self.content_matrix, self._ou_spread, self._ou_decay)

    def _drift_rows(self, worlds: np.ndarray | None, out: np.ndarray | None = None) -> np.ndarray:
        """(m * S, K): ``preference_shift(worlds) @ content.T`` as the sum of its parts (regime + walk + trend * t),
        which equals the product of the sum up to the last bits and costs (m, S, K) operations, not (m, S, A)."""
        s = self.n_segments
        if worlds is None and self.n == 1:  # the single env, every drift_interval steps: basic slices, no gathers
            regime = int(self.regime[0]) * s
            out = np.empty_like(self._ou_logit) if out is None else out
            np.copyto(out, self._regime_logit[regime:regime + s])
            out += self._ou_logit
            out += self._trend_logit * float(self.t[0])
            return out
        if worlds is None:
            regime_rows = ((self.rows * self.n_regimes + self.regime) * s)[:, None] + np.arange(s)
            rows, t = None, self.t
        else:
            regime_rows = ((worlds * self.n_regimes + self.regime[worlds]) * s)[:, None] + np.arange(s)
            rows, t = (worlds * s)[:, None] + np.arange(s), self.t[worlds]
        out = self._regime_logit.take(regime_rows.ravel(), axis=0, out=out)
        out += self._ou_logit if rows is None else self._ou_logit.take(rows.ravel(), axis=0)
        trend = self._trend_logit if rows is None else self._trend_logit.take(rows.ravel(), axis=0)
        out += trend * np.repeat(t, s).astype(np.float64)[:, None]
        return out

    def preference_shift(self, worlds=None) -> np.ndarray:
        """(n, S, A): how far each segment's preference weights have drifted from the population's."""
        if not self.drift:
            return np.zeros((self.n if worlds is None else len(worlds), self.n_segments, self.n_features))
        if worlds is None:
            shift = self.regime_offsets[self.rows, self.regime]  # a new array: add in place, in the same order
            shift += self.ou
            shift += self.trend * self.t[:, None, None]
            return shift
        return (self.regime_offsets[worlds, self.regime[worlds]] + self.ou[worlds]
                + self.trend[worlds] * self.t[worlds, None, None])

    def logit_shift(self, world: int) -> np.ndarray:
        """(S, K): the drift's change of each segment's click logit for each variant, in world ``world``."""
        return self.drift_logit.reshape(self.n, self.n_segments, -1)[world].copy()

    def _record(self, worlds: np.ndarray, shift: np.ndarray) -> None:
        for i, world in enumerate(worlds):
            self.history.append(dict(world=int(world), t=int(self.t[world]), regime=int(self.regime[world]),
                                     regime_shift=bool(shift[i]), logit_shift=self.logit_shift(world)))

    # ------------------------------------------------------------------------------------------- observations
    def observe(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The N observations of the current arrivals: (user, context, memory); the variants are ``self.variants``."""
        c = self._const
        context_rows = (self.time_index * c["channels"] + self.channel) * c["regimes"] + self.regime
        return (self.population.portrait.take(self.profile, axis=0), self.context_table.take(context_rows, axis=0),
                self.memory_table.take(self.codes.take(self.slot, axis=0)[:, :self.memory_len], axis=0))

    def segment_expected_rewards(self, world: int = 0) -> np.ndarray:
        """(S, K): expected reward of each variant for a fresh user of each segment, at world ``world``'s drift now.

        Averaged over the segment's profiles, their channels and the times of the week; no fatigue or loyalty.
        """
        pop = self.population
        channel_p = channel_distribution(pop, self.config["home_channel_prob"])  # (P, C)
        times = pop.time_logit_table[calibration_times(self.per_day)]
        drifting = self.drift and self.rng is not None  # before the first reset nothing has drifted
        shift = self.logit_shift(world)[pop.segment] if drifting else np.zeros_like(pop.base_logit)
        per_profile = np.empty((self.n_profiles, self.n_variants))
        for start in range(0, self.n_profiles, CHUNK):
            block = slice(start, start + CHUNK)
            logits = pop.static_logit[block, :, None, :] + times[None, None] + shift[block, None, None, :]
            value = expit(logits) * self.click_value[block, None, None, :]  # (chunk, C, T, K)
            per_profile[block] = (value * channel_p[block, :, None, None]).sum(axis=1).mean(axis=1)
        counts = np.bincount(pop.segment, minlength=self.n_segments)
        sums = np.zeros((self.n_segments, self.n_variants))
        np.add.at(sums, pop.segment, per_profile)
        return sums / np.maximum(counts, 1)[:, None]


def draw_walk_noise(rng: np.random.Generator, noise: np.ndarray) -> None:
    """The Ornstein-Uhlenbeck walk's standard normals into ``noise`` (N, S, A): ``rng.standard_normal(out=noise)``,
    through numba for many worlds (the same numbers, about 3x faster; handing it the generator costs about 8 us, so
    one world keeps numpy's call)."""
    if len(noise) == 1:
        rng.standard_normal(out=noise)
    else:
        fill_standard_normal(rng, noise.reshape(-1))


def apply_walk(noise, ou, ou_logit, content_matrix, spread: float, decay: float) -> None:
    """One walk of N worlds' preference shifts ``ou`` (N, S, A) by the drawn ``noise``, and its logit part
    ``ou_logit`` (N * S, K), in place. One world goes through one compiled call (numpy's calls on such small
    arrays cost more than the arithmetic), and so does the N = 1 vector env, so that it stays equal to the single
    env; many worlds through numpy, whose matrix-vector products may add the features in another order."""
    if len(noise) == 1:
        walk_one_world(noise[0], ou[0], ou_logit, content_matrix, spread, decay)
        return
    noise *= spread
    ou *= decay
    ou += noise
    content_product(ou.reshape(-1, ou.shape[-1]), content_matrix, out=ou_logit)


def batch_expit(x: np.ndarray) -> np.ndarray:
    """The logistic function of ``x`` (in place) for a batch of worlds: ``1 / (1 + exp(-x))`` with numpy's SIMD
    ``exp``, about 3x faster than scipy's ``expit`` (whose scalar ``exp`` the N = 1 paths keep, so that the single
    envs' compiled steps, with the C library's ``exp``, stay equal to the N = 1 vectorized step). The two agree to
    1 ulp; a batch of more than one row takes this one. Below about -709 ``exp`` overflows and the result is 0, as
    scipy's.
    """
    if len(x) == 1:
        return expit(x, out=x)
    with np.errstate(over="ignore"):
        np.negative(x, out=x)
        np.exp(x, out=x)
        x += 1.0
        return np.reciprocal(x, out=x)


def content_product(x: np.ndarray, content_matrix: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """(m, K): ``x`` (m, A) times the content (K, A) transposed, as one matrix-vector product per variant.

    The drift multiplies tens of thousands of short rows by a handful of variants. As one matrix product, OpenBLAS
    hands that to its threads, and on a loaded machine the hand-off cost 5-8 ms of CPU for 1M multiply-adds (2-core
    EPYC, load 5); K matrix-vector products take about 0.15 ms. The result equals ``x @ content_matrix.T`` up to the
    last bits (another summation order).
    """
    if x.shape[0] * content_matrix.size < 262_144:  # below OpenBLAS's threading threshold: one call is cheapest
        return np.matmul(x, content_matrix.T, out=out)
    columns = np.empty((content_matrix.shape[0], x.shape[0]))
    for k, row in enumerate(content_matrix):
        np.matmul(x, row, out=columns[k])
    if out is None:
        return np.ascontiguousarray(columns.T)
    np.copyto(out, columns.T)
    return out


class SegmentDrift:
    """The drift of segment preferences in N worlds, advanced one step (one arrival or visit) at a time.

    The same three parts as :class:`MarketingWorlds`' drift, as a component of its own so that the journey
    simulator (:mod:`abgym.envs.journeys`) shares it: abrupt regime shifts among ``n_regimes`` campaign phases
    (probability ``regime_shift_prob`` per step), an Ornstein-Uhlenbeck walk updated exactly every
    ``drift_interval`` steps, and a linear trend per segment. ``logit`` (N, S, K) is the resulting change of each
    segment's click logit for each variant.

    The logit is linear in the preference shift, so it is kept as three (N, S, K) parts, each multiplied by the
    content once: the regime offsets' and the trend's (at restart) and the walk's (at each walk). A step then adds
    the parts of the segments it needs (:meth:`segment_logit`) instead of forming the (N, S, A) shift and
    multiplying it every step; the sum differs from the product of the sum only in the last bits.
    """

    def __init__(self, config: dict, n_worlds: int, n_segments: int, content_matrix: np.ndarray):
        self.config, self.n, self.n_segments = config, int(n_worlds), int(n_segments)
        self.content_matrix = content_matrix
        self.n_features = content_matrix.shape[1]
        self.n_regimes = int(config["n_regimes"])
        interval, theta = int(config["drift_interval"]), float(config["ou_theta"])
        sigma = config["ou_sigma"] / np.sqrt(self.n_features)
        self.interval = interval
        self.ou_decay = np.exp(-theta * interval)
        self.ou_spread = (sigma * np.sqrt((1 - self.ou_decay**2) / (2 * theta)) if theta > 0
                          else sigma * np.sqrt(interval))

    def restart(self, rng: np.random.Generator) -> None:
        """New regime offsets and trends from ``rng``; every world back in regime 0 with no walk.

        The arrays are made at the first restart and rewritten in place afterwards: a compiled step holds them
        (abgym.envs.journey_step), and rebuilding its view costs more than a short journey."""
        n, s, a, cfg = self.n, self.n_segments, self.n_features, self.config
        k = self.content_matrix.shape[0]
        self.rng = rng
        if not hasattr(self, "regime"):
            self.regime = np.zeros(n, np.int64)
            self.regime_offsets = np.zeros((n, self.n_regimes, s, a))
            self.ou, self.trend = np.zeros((n, s, a)), np.zeros((n, s, a))
            # Flat rows: regime part (world * R + regime) * S + segment; walk and trend parts world * S + segment.
            self._regime_logit = np.zeros((n * self.n_regimes * s, k))
            self._trend_logit, self._ou_logit = np.zeros((n * s, k)), np.zeros((n * s, k))
            self._noise = np.empty((n, s, a))
            self._clock = np.zeros(n)  # the world clock of the last advance: the trend's multiplier
            self._world_regime_row = np.arange(n) * (self.n_regimes * s)
            self._world_row = np.arange(n) * s
        self.regime[:] = 0
        self.regime_offsets[:, 1:] = rng.normal(0.0, cfg["regime_scale"] / np.sqrt(a), (n, self.n_regimes - 1, s, a))
        self.ou[:] = 0.0
        self.trend[:] = rng.normal(0.0, cfg["segment_trend"] / 1000 / np.sqrt(a), (n, s, a))
        self.steps = 0
        content_product(self.regime_offsets.reshape(-1, a), self.content_matrix, out=self._regime_logit)
        content_product(self.trend.reshape(-1, a), self.content_matrix, out=self._trend_logit)
        self._ou_logit[:] = 0.0
        self._clock[:] = 0.0

    @property
    def logit(self) -> np.ndarray:
        """(N, S, K): the drift's change of each segment's click logit for each variant, as of the last advance."""
        n, s = self.n, self.n_segments
        regime = self._regime_logit.reshape(n, self.n_regimes, s, -1)[np.arange(n), self.regime]
        return regime + self._ou_logit.reshape(n, s, -1) + self._trend_logit.reshape(n, s, -1) * self._clock[:, None,
                                                                                                             None]

    def segment_logit(self, worlds: np.ndarray | None, segments: np.ndarray) -> np.ndarray:
        """(m, K): ``logit[worlds, segments]`` (worlds None: all, with one segment each), summed in the same order."""
        if worlds is None:
            world_row, regime_row, regime, clock = self._world_row, self._world_regime_row, self.regime, self._clock
        else:
            world_row, regime_row = self._world_row[worlds], self._world_regime_row[worlds]
            regime, clock = self.regime[worlds], self._clock[worlds]
        rows = world_row + segments
        out = self._regime_logit.take(regime_row + regime * self.n_segments + segments, axis=0)
        out += self._ou_logit.take(rows, axis=0)
        out += self._trend_logit.take(rows, axis=0) * clock[:, None]
        return out

    def draws_one(self) -> tuple[float, bool]:
        """For one world (N = 1) stepped by a compiled visit: this step's uniform, and whether the walk moves at it
        (its normals then in ``_noise``, for :meth:`walk_drawn_one`). The same stream in the same order as
        :meth:`advance` (``interval`` uniforms, then the walk's normals), drawn once per walk rather than once per
        step; the caller applies them as :meth:`advance` would (abgym.envs.journey_step)."""
        position = self.steps % self.interval
        if position == 0:
            self._cycle = self.rng.random(self.interval).tolist()
            draw_walk_noise(self.rng, self._noise)
        self.steps += 1
        return self._cycle[position], position == self.interval - 1

    def walk_drawn_one(self) -> None:
        """The walk of world 0 (N = 1) with the normals :meth:`draws_one` drew, as :meth:`advance` walks one world."""
        apply_walk(self._noise, self.ou, self._ou_logit, self.content_matrix, self.ou_spread, self.ou_decay)

    def advance(self, clock: np.ndarray) -> np.ndarray:
        """One step of every world at world time ``clock`` (N,); returns where a regime shift happened (N,)."""
        u = self.rng.random(self.n)
        shift = u < (self.config["regime_shift_prob"] if self.n_regimes > 1 else 0.0)
        if np.count_nonzero(shift):
            jump = (u[shift] / self.config["regime_shift_prob"] * (self.n_regimes - 1)).astype(np.int64)
            self.regime[shift] = (self.regime[shift] + 1 + np.minimum(jump, self.n_regimes - 2)) % self.n_regimes
        self.steps += 1
        if self.steps % self.interval == 0:
            draw_walk_noise(self.rng, self._noise)
            apply_walk(self._noise, self.ou, self._ou_logit, self.content_matrix, self.ou_spread, self.ou_decay)
        self._clock[:] = clock
        return shift
