"""The simulated users of PersonalizedMarketing-v0: population, response model, drift, and N worlds stepped at once.

A **population** of user profiles is drawn once per seed. A profile has a portrait (segment, age band, device, home
channel, interest vector) and latent preference weights over the content vector of :mod:`abgym.envs.content`
(attribute scores and embedding coordinates). Preferences add up from the segment, the age band, the device and the
individual; the interest vector the agent sees is a noisy view of the individual's taste in embedding space.

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


def _average_over_arrivals(population, quality, home_channel_prob, per_day):
    channel_p = channel_distribution(population, home_channel_prob)  # (P, C)
    times = population.time_logit_table[calibration_times(per_day)]  # (T, K)
    logits = (quality + population.base_logit[:, None, None, :] + population.channel_logit[None, :, None, :]
              + times[None, None, :, :])  # (P, C, T, K)
    weights = channel_p[:, :, None, None] / (len(population.segment) * len(times))
    p = expit(logits)
    return (weights * p).sum(axis=(0, 1, 2)), (weights * p * (1 - p)).sum(axis=(0, 1, 2))


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


class MarketingWorlds:
    """N independent worlds of one population, stepped together. Arrays have a leading world axis."""

    def __init__(self, config: dict, content, n_worlds: int):
        if int(n_worlds) != n_worlds or n_worlds < 1:
            raise ValueError(f"the number of worlds must be a positive whole number, got {n_worlds!r}")
        self.config = config
        self.n = int(n_worlds)
        self.content_matrix = content.matrix  # (K, A)
        self.target_ctr = content.target_ctr
        self.n_variants, self.n_features = self.content_matrix.shape
        self.n_segments = int(config["n_segments"])
        self.n_slots = int(config["active_users"])
        self.n_profiles = int(config["population_size"])
        self.horizon = int(config["horizon"])
        self.per_day = int(config["arrivals_per_day"])
        self.memory_len = int(config["memory_len"])
        self.n_regimes = int(config["n_regimes"])
        self.drift = bool(config["drift"])
        self.weights = reward_weights(config)
        self.fatigue_table = (config["fatigue"] * np.log1p(np.arange(FATIGUE_LEVELS))).astype(np.float64)
        self.rows = np.arange(self.n)

        # Observation tables that depend on the content and the config only.
        embeddings = content.embeddings.astype(np.float32)
        self.embedding_dim = embeddings.shape[1]
        self.variants = np.concatenate([embeddings, content.attributes.astype(np.float32)], axis=1)
        self.variants.flags.writeable = False
        memory_rows = [np.zeros(self.embedding_dim + 2, np.float32)]
        for k in range(self.n_variants):
            for click in (0, 1):
                for conversion in (0, 1):
                    memory_rows.append(np.concatenate([embeddings[k], [click, conversion]]).astype(np.float32))
        self.memory_table = np.stack(memory_rows)  # code 1 + 4k + 2 click + conversion; 0 is an empty slot
        phase = 2 * np.pi * (np.arange(self.per_day) / self.per_day)
        tod = np.stack([np.sin(phase), np.cos(phase)], axis=1)
        self.time_obs = np.concatenate([np.tile(tod, (DAYS, 1)), np.repeat(np.eye(DAYS), self.per_day, axis=0)],
                                       axis=1).astype(np.float32)  # (DAYS * per_day, 2 + 7)
        self.channel_obs = np.eye(len(CHANNELS), dtype=np.float32)
        self.campaign_obs = np.eye(self.n_regimes, dtype=np.float32)
        if not config["observe_campaign"]:
            self.campaign_obs[:] = 0.0
        self.user_dim = self.n_segments + len(AGE_BANDS) + len(DEVICES) + len(CHANNELS) + self.embedding_dim
        self.context_dim = 2 + DAYS + len(CHANNELS) + self.n_regimes
        self.memory_dim = self.embedding_dim + 2
        self.variant_dim = self.variants.shape[1]
        self.population: Population | None = None
        self.rng: np.random.Generator | None = None
        self.history: list[dict] = []

    # ----------------------------------------------------------------------------------------------- seeding
    def seed(self, seed: int | None) -> None:
        """A new population and random stream; every world is reset."""
        self.rng = np.random.default_rng(seed)
        population_rng = np.random.default_rng(self.rng.integers(2**63))
        self.population = finish_population(sample_population(population_rng, self.config, self.content_matrix),
                                            self.target_ctr, self.config)
        n, k = self.n, self.n_variants
        self.occupant = np.zeros((n, self.n_slots), np.int64)
        self.next_profile = np.zeros(n, np.int64)
        self.exposures = np.zeros((n, self.n_slots, k), np.uint8)
        self.loyalty = np.zeros((n, self.n_slots), np.float64)
        self.codes = np.zeros((n, self.n_slots, self.memory_len), np.int16)
        self.t = np.zeros(n, np.int64)
        self.day0 = np.zeros(n, np.int64)
        self.regime = np.zeros(n, np.int64)
        self.regime_offsets = np.zeros((n, self.n_regimes, self.n_segments, self.n_features))
        self.ou = np.zeros((n, self.n_segments, self.n_features))
        self.trend = np.zeros((n, self.n_segments, self.n_features))
        self.drift_logit = np.zeros((n, self.n_segments, k))
        self.slot = np.zeros(n, np.int64)
        self.profile = np.zeros(n, np.int64)
        self.channel = np.zeros(n, np.int64)
        self.time_index = np.zeros(n, np.int64)
        self.p_click = np.zeros((n, k))
        self.expected = np.zeros((n, k))
        self._block = np.empty((0, n, 8))
        self._block_pos = 0
        self.history = []
        self.reset_worlds(self.rows)

    def reset_worlds(self, worlds: np.ndarray) -> None:
        """Start new episodes in ``worlds`` (the population is kept; user slots are filled afresh)."""
        rng, m = self.rng, len(worlds)
        start = rng.integers(self.n_profiles, size=m)
        self.occupant[worlds] = (start[:, None] + np.arange(self.n_slots)) % self.n_profiles
        self.next_profile[worlds] = start + self.n_slots
        self.exposures[worlds] = 0
        self.loyalty[worlds] = 0.0
        self.codes[worlds] = 0
        self.t[worlds] = 0
        self.day0[worlds] = rng.integers(DAYS, size=m)
        self.regime[worlds] = 0
        offsets = np.zeros((m, self.n_regimes, self.n_segments, self.n_features))
        offsets[:, 1:] = rng.normal(0.0, self.config["regime_scale"] / np.sqrt(self.n_features),
                                    (m, self.n_regimes - 1, self.n_segments, self.n_features))
        self.regime_offsets[worlds] = offsets
        self.ou[worlds] = 0.0
        # Trend: preference change per 1,000 arrivals, a random direction per segment.
        self.trend[worlds] = rng.normal(0.0, self.config["segment_trend"] / 1000 / np.sqrt(self.n_features),
                                        (m, self.n_segments, self.n_features))
        self.drift_logit[worlds] = 0.0
        if self.config["record_drift"]:
            self._record(worlds, np.zeros(m, bool))
        self._arrive(worlds, rng.random((m, 3)))

    # ----------------------------------------------------------------------------------------------- dynamics
    def _draws(self) -> np.ndarray:
        """(N, 8) uniforms for one step, taken from a pre-drawn block (one generator call per many steps).

        Columns: click, conversion, churn, regime shift, arrival slot, channel choice, channel, revenue.
        """
        if self._block_pos >= len(self._block):
            self._block = self.rng.random((max(1, min(1024, 65536 // self.n)), self.n, 8))
            self._block_pos = 0
        draws = self._block[self._block_pos]
        self._block_pos += 1
        return draws

    def _arrive(self, worlds: np.ndarray | None, draws: np.ndarray) -> None:
        """The next user of each of ``worlds`` (None: all): slot, channel, time, and their click probabilities."""
        pop = self.population
        rows = self.rows if worlds is None else worlds
        slot = (draws[:, 0] * self.n_slots).astype(np.int64)
        profile = self.occupant[rows, slot]
        channel = np.where(draws[:, 1] < self.config["home_channel_prob"], pop.home_channel[profile],
                           (draws[:, 2] * len(CHANNELS)).astype(np.int64))
        t = self.t[rows]
        time_index = ((self.day0[rows] + t // self.per_day) % DAYS) * self.per_day + t % self.per_day
        logits = pop.static_logit[profile, channel] + pop.time_logit_table[time_index]
        if self.drift:
            logits += self.drift_logit[rows, pop.segment[profile]]
        if self.config["loyalty_effect"]:
            logits += self.config["loyalty_effect"] * self.loyalty[rows, slot][:, None]
        if self.config["fatigue"]:
            logits -= self.fatigue_table[self.exposures[rows, slot]]
        p_click = expit(logits)
        expected = p_click * (self.weights[0] + pop.value_after_click[profile])
        if worlds is None:
            self.slot, self.profile, self.channel, self.time_index = slot, profile, channel, time_index
            self.p_click, self.expected = p_click, expected
        else:
            self.slot[worlds], self.profile[worlds], self.channel[worlds] = slot, profile, channel
            self.time_index[worlds] = time_index
            self.p_click[worlds], self.expected[worlds] = p_click, expected

    def step(self, actions: np.ndarray) -> dict:
        """Show ``actions`` (N,) to the current users; return the outcome arrays and move to the next arrivals."""
        cfg, pop, rows, slot, profile = self.config, self.population, self.rows, self.slot, self.profile
        draws = self._draws()
        revenue_draws = draws[:, 7]
        expected = self.expected
        click = draws[:, 0] < self.p_click[rows, actions]
        conversion = click & (draws[:, 1] < pop.conv_prob[profile, actions])
        sigma = cfg["revenue_sigma"]
        revenue = np.where(conversion, pop.revenue_mean[profile]
                           * np.exp(sigma * ndtri(revenue_draws) - 0.5 * sigma * sigma), 0.0)
        w_click, w_conv, w_revenue = self.weights
        reward = w_click * click + w_conv * conversion + w_revenue * revenue

        # The user remembers: exposures (fatigue), loyalty, the memory of what they saw, and may churn.
        seen = np.minimum(self.exposures[rows, slot, actions].astype(np.int64) + 1, FATIGUE_LEVELS - 1)
        self.exposures[rows, slot, actions] = seen
        loyalty = np.minimum(self.loyalty[rows, slot] * cfg["loyalty_decay"] + cfg["loyalty_gain"] * conversion,
                             cfg["loyalty_cap"])
        self.loyalty[rows, slot] = loyalty
        codes = self.codes[rows, slot]
        returning = codes[:, 0] > 0
        codes[:, 1:] = codes[:, :-1]
        codes[:, 0] = 1 + 4 * actions + 2 * click + conversion
        self.codes[rows, slot] = codes
        churn = ((cfg["churn_base"] + cfg["churn_per_repeat"] * (seen - 1) - cfg["churn_click_relief"] * click)
                 * np.exp(-loyalty))
        churned = draws[:, 2] < churn
        if churned.any():
            self._replace_users(rows[churned], slot[churned])
        segment = pop.segment[profile]

        self.t += 1
        regime_shift = np.zeros(self.n, bool)
        if self.drift:
            regime_shift = self._drift(draws)
        truncated = self.t >= self.horizon
        self._arrive(None, draws[:, 4:7])
        return dict(reward=reward, click=click, conversion=conversion, revenue=revenue, expected_rewards=expected,
                    oracle_action=expected.argmax(axis=1), segment=segment, regime_shift=regime_shift,
                    returning=returning, churned=churned, truncated=truncated)

    def _replace_users(self, worlds: np.ndarray, slots: np.ndarray) -> None:
        self.occupant[worlds, slots] = self.next_profile[worlds] % self.n_profiles
        self.next_profile[worlds] += 1
        self.exposures[worlds, slots] = 0
        self.loyalty[worlds, slots] = 0.0
        self.codes[worlds, slots] = 0

    def _drift(self, draws: np.ndarray) -> np.ndarray:
        cfg = self.config
        shift = draws[:, 3] < cfg["regime_shift_prob"] if self.n_regimes > 1 else np.zeros(self.n, bool)
        # The second half of the shift uniform picks the new regime (the first half decided that it happens).
        if shift.any():
            choice = (draws[shift, 3] / cfg["regime_shift_prob"] * (self.n_regimes - 1)).astype(np.int64)
            self.regime[shift] = (self.regime[shift] + 1 + choice) % self.n_regimes
        interval = int(cfg["drift_interval"])
        walk = self.t % interval == 0
        if walk.any():
            theta, sigma = cfg["ou_theta"], cfg["ou_sigma"] / np.sqrt(self.n_features)
            decay = np.exp(-theta * interval)
            spread = sigma * np.sqrt((1 - decay**2) / (2 * theta)) if theta > 0 else sigma * np.sqrt(interval)
            worlds = self.rows[walk]
            self.ou[worlds] = self.ou[worlds] * decay + spread * self.rng.standard_normal(
                (len(worlds), self.n_segments, self.n_features))
        changed = walk | shift
        if changed.any():
            worlds = self.rows[changed]
            self.drift_logit[worlds] = self.preference_shift(worlds) @ self.content_matrix.T
            if cfg["record_drift"]:
                self._record(worlds, shift[changed])
        return shift

    def preference_shift(self, worlds=None) -> np.ndarray:
        """(n, S, A): how far each segment's preference weights have drifted from the population's."""
        rows = self.rows if worlds is None else worlds
        return (self.regime_offsets[rows, self.regime[rows]] + self.ou[rows]
                + self.trend[rows] * self.t[rows, None, None])

    def _record(self, worlds: np.ndarray, shift: np.ndarray) -> None:
        for i, world in enumerate(worlds):
            self.history.append(dict(world=int(world), t=int(self.t[world]), regime=int(self.regime[world]),
                                     regime_shift=bool(shift[i]), logit_shift=self.drift_logit[world].copy()))

    # ------------------------------------------------------------------------------------------- observations
    def observe(self) -> dict:
        """The N observations of the current arrivals, as the Dict observation's arrays."""
        rows, slot = self.rows, self.slot
        context = np.concatenate([self.time_obs[self.time_index], self.channel_obs[self.channel],
                                  self.campaign_obs[self.regime]], axis=1)
        return dict(user=self.population.portrait[self.profile], context=context,
                    memory=self.memory_table[self.codes[rows, slot]],
                    variants=np.broadcast_to(self.variants, (self.n, *self.variants.shape)))

    def segment_expected_rewards(self, world: int = 0) -> np.ndarray:
        """(S, K): expected reward of each variant for a fresh user of each segment, at world ``world``'s drift now.

        Averaged over the segment's profiles, their channels and the times of the week; no fatigue or loyalty.
        """
        pop = self.population
        channel_p = channel_distribution(pop, self.config["home_channel_prob"])  # (P, C)
        times = pop.time_logit_table[calibration_times(self.per_day)]
        logits = (pop.static_logit[:, :, None, :] + times[None, None]
                  + (self.drift_logit[world, pop.segment] if self.drift else 0.0)[:, None, None, :])
        value = expit(logits) * (self.weights[0] + pop.value_after_click[:, None, None, :])
        per_profile = (value * channel_p[:, :, None, None]).sum(axis=1).mean(axis=1)  # (P, K)
        counts = np.bincount(pop.segment, minlength=self.n_segments)
        sums = np.zeros((self.n_segments, self.n_variants))
        np.add.at(sums, pop.segment, per_profile)
        return sums / np.maximum(counts, 1)[:, None]
