"""The simulator core of CustomerJourney-v0: N worlds, each following one user through their visits.

The users are those of :mod:`abgym.envs.users` (the same population, portraits, calibrated response model and
segment drift), seen over a **journey** rather than one arrival at a time. At each visit the agent shows one variant
``k`` and the user's state moves with what they were shown::

    logit P(click)  = static_k(user, channel) + time_k + drift_{segment,k}          (as in PersonalizedMarketing)
                      + trust_click_effect * trust - fatigue * log(1 + times k was shown) + interest_k
    logit P(convert | click) = logit(conv_k(user)) - clickbait * z(q_k) + trust_conversion_effect * trust
    P(churn after the visit) = churn_base * exp(-churn_trust * trust) + churn_repeat * log(1 + earlier views of k)

- **Trust** starts at 0 (so the first visit is the calibrated one), rises by ``trust_gain`` with a conversion and
  falls by ``trust_loss`` with a *disappointing* click (a click that does not convert); it decays by
  ``trust_decay`` per visit and is clipped to ``[-trust_cap, trust_cap]``. With ``clickbait > 0`` the variants whose
  calibrated click quality ``q_k`` is high convert worse (``z`` is the z-score of ``q`` over the variants): the
  headline that wins the next click loses the user's trust. This is the long-term mechanism: a myopic policy takes
  the click and pays later in clicks, conversions and churn.
- **Satiation** (``fatigue``) lowers the click logit of a variant each time it is shown again, and repeats raise
  churn (``churn_repeat``): no single variant is best for a whole journey.
- **Interest** moves toward what the user consumes: a click on ``k`` adds ``interest_rate * cos(c_k, c_j)`` to the
  click logit of every variant ``j``.

Worlds share the population and the content; each has its own user, visit count, world clock and drift. The world
clock counts visits and keeps running across episodes, so the population's tastes drift while users come and go.
Random streams are separate (users, responses, drift), so two policies run from the same seed meet the same users
(common random numbers): the headroom study compares policies on the same people.
"""
from __future__ import annotations

import numpy as np
from scipy.special import ndtri

from abgym.envs.journey_step import make_state, visit_one_world
from abgym.envs.users import (
    CHANNELS,
    DAYS,
    SegmentDrift,
    batch_expit,
    build_population,
    channel_distribution,
    logit,
    observation_tables,
    reward_weights,
)

JOURNEY_STATE = ("profile", "visit", "trust", "exposures", "interest", "codes", "channel", "time_index", "alive")


class JourneyWorlds:
    """N worlds of one population and one campaign, stepped together by numpy operations over the world axis."""

    def __init__(self, config: dict, content, n_worlds: int, population_config: dict):
        if isinstance(n_worlds, bool) or int(n_worlds) != n_worlds or n_worlds < 1:
            raise ValueError(f"the number of worlds must be a positive whole number, got {n_worlds!r}")
        self.config = config
        self.n = int(n_worlds)
        self.rows = np.arange(self.n)
        self.content_matrix = content.matrix
        self.n_variants, self.n_features = self.content_matrix.shape
        self.n_segments = int(config["n_segments"])
        self.n_profiles = int(config["population_size"])
        self.max_visits = int(config["max_visits"])
        self.per_day = int(config["arrivals_per_day"])
        self.memory_len = int(config["memory_len"])
        self.n_regimes = int(config["n_regimes"])
        self.weights = reward_weights(config)
        self.population = build_population(population_config, self.content_matrix, content.target_ctr)
        pop = self.population
        quality = pop.quality
        z_quality = (quality - quality.mean()) / max(quality.std(), 1e-9)
        self.bait = z_quality  # (K,) how much more click-worthy than the campaign's average a variant is
        self.conversion_logit = logit(pop.conv_prob) - config["clickbait"] * z_quality[None, :]  # (P, K)
        self.channel_p = np.cumsum(channel_distribution(pop, config["home_channel_prob"]), axis=1)  # (P, C)
        unit = self.content_matrix / np.maximum(np.linalg.norm(self.content_matrix, axis=1, keepdims=True), 1e-9)
        self.similarity = unit @ unit.T  # (K, K) cosine of the content vectors
        self.drift = SegmentDrift(config, self.n, self.n_segments, self.content_matrix) if config["drift"] else None

        self.variants, self.memory_table = observation_tables(content)  # the memory codes of MarketingWorlds
        self.embedding_dim = content.embeddings.shape[1]
        self.user_dim = pop.portrait.shape[1]
        self.context_dim = 2 + DAYS + len(CHANNELS) + self.n_regimes + 1
        self.memory_dim = self.embedding_dim + 2
        self.variant_dim = self.variants.shape[1]
        self.rng_users = self.rng_responses = None
        self._observed = None  # (profile, context row, visit) after a step_one, for observe_one
        self.state: dict[str, np.ndarray] = {}
        # Tables of the vectorized step, so that it gathers rows (np.take) rather than computing them per step:
        # the static click logits by (profile, channel), the fatigue penalty by count, and every column of the
        # context but the last by (time of week, channel, regime), built by the same formulas as before.
        self._static_rows = pop.static_logit.reshape(-1, self.n_variants)
        self._log1p_table = np.log1p(np.arange(self.max_visits + 2, dtype=np.int64))
        self._fatigue = config["fatigue"] * self._log1p_table
        week, n_channels = DAYS * self.per_day, len(CHANNELS)
        time_index = np.repeat(np.arange(week), n_channels * self.n_regimes)
        channel = np.tile(np.repeat(np.arange(n_channels), self.n_regimes), week)
        regime = np.tile(np.arange(self.n_regimes), week * n_channels)
        table = np.zeros((len(time_index), self.context_dim), np.float32)
        phase = 2 * np.pi * (time_index % self.per_day) / self.per_day
        table[:, 0], table[:, 1] = np.sin(phase), np.cos(phase)
        rows = np.arange(len(table))
        table[rows, 2 + time_index // self.per_day] = 1.0
        table[rows, 2 + DAYS + channel] = 1.0
        if self.drift is not None and config["observe_campaign"]:
            table[rows, 2 + DAYS + n_channels + regime] = 1.0
        self._context_table = table

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_state", None)  # the compiled visit's view of the arrays: rebuilt from them
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if "_uniforms" in state:
            self._state = make_state(self)

    # ------------------------------------------------------------------------------------------------ seeding
    def seed(self, seed: int | None) -> None:
        """New random streams; every world starts its clock at 0 and takes its first user."""
        users, responses, drift = np.random.SeedSequence(seed).spawn(3)
        self.rng_users, self.rng_responses = np.random.default_rng(users), np.random.default_rng(responses)
        n, k = self.n, self.n_variants
        self.next_profile = self.rng_users.integers(self.n_profiles, size=n)
        if not self.state:  # the first seed makes the arrays; later seeds rewrite them (step_one's view holds them)
            self.clock = np.zeros(n, np.int64)
            self.state = dict(profile=np.zeros(n, np.int64), visit=np.zeros(n, np.int64), trust=np.zeros(n),
                              exposures=np.zeros((n, k), np.int64), interest=np.zeros((n, k)),
                              codes=np.zeros((n, self.memory_len), np.int64), channel=np.zeros(n, np.int64),
                              time_index=np.zeros(n, np.int64), alive=np.ones(n, bool))
            if n == 1:  # step_one's block of response draws and its output row
                self._uniforms, self._expected = np.empty((1024, 6)), np.zeros(k)
        else:  # in place (new_users below starts every world's user afresh)
            self.clock[:] = 0
        if self.drift is not None:
            self.drift.restart(np.random.default_rng(drift))
        if n == 1:
            self._block_pos = len(self._uniforms)  # none drawn from the new stream yet
            if getattr(self, "_state", None) is None:  # step_one's compiled view of the arrays, made once
                self._state = make_state(self)
        self.new_users(self.rows)

    def new_users(self, worlds: np.ndarray) -> None:
        """The next user of the population enters each of ``worlds`` (a new episode), at the world's clock."""
        s, m = self.state, len(worlds)
        self._observed = None
        if self.n == 1 and m == 1:  # the single env, at every reset: the same draws and values in Python numbers
            self._new_user_one()
            return
        s["profile"][worlds] = self.next_profile[worlds] % self.n_profiles
        self.next_profile[worlds] += 1 + self.rng_users.integers(7, size=m)  # users arrive in no fixed order
        for key in ("visit", "exposures", "codes"):
            s[key][worlds] = 0
        s["trust"][worlds] = 0.0
        s["interest"][worlds] = 0.0
        s["alive"][worlds] = True
        self._visit_context(worlds, self.rng_users.random((m, 2)))

    def _new_user_one(self) -> None:
        """``new_users`` of the single world: the same draws (``integers(7)`` and ``random(2)`` equal the sized
        calls' draws) and the same values, without numpy's overhead on one-element arrays."""
        s = self.state
        profile = int(self.next_profile[0]) % self.n_profiles
        s["profile"][0] = profile
        self.next_profile[0] += 1 + int(self.rng_users.integers(7))
        for key in ("visit", "exposures", "codes", "trust", "interest"):
            s[key].fill(0)
        s["alive"][0] = True
        u_channel, u_time = self.rng_users.random(2).tolist()
        s["channel"][0] = min(sum(u_channel > c for c in self.channel_p[profile].tolist()), len(CHANNELS) - 1)
        s["time_index"][0] = int(u_time * DAYS * self.per_day)

    def _visit_context(self, worlds: np.ndarray, u: np.ndarray) -> None:
        """Channel (home channel or another, by the population's arrival model) and time of week of a visit."""
        channel, time_index = self.visit_context(self.state["profile"][worlds], u)
        self.state["channel"][worlds], self.state["time_index"][worlds] = channel, time_index

    def visit_context(self, profile: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(channel, time of week) of the next visit of users ``profile`` from two uniforms each, ``u`` (n, 2).

        A pure function, so that a planner draws the contexts of simulated visits as the env draws real ones."""
        channel = np.minimum((u[:, :1] > self.channel_p.take(profile, axis=0)).sum(axis=1), len(CHANNELS) - 1)
        return channel, (u[:, 1] * DAYS * self.per_day).astype(np.int64)

    # ---------------------------------------------------------------------------------------------- the model
    def response(self, state: dict, drift_logit: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(P(click), P(conversion | click)), each (n, K), for the users in ``state`` at their current visit."""
        pop, cfg = self.population, self.config
        profile, trust = state["profile"], state["trust"][:, None]
        logits = self._static_rows.take(profile * len(CHANNELS) + state["channel"], axis=0)
        logits += pop.time_logit_table.take(state["time_index"], axis=0)
        logits += cfg["trust_click_effect"] * trust
        logits += state["interest"]
        if cfg["fatigue"]:
            exposures = state["exposures"]
            # A count is at most the visits so far (the table covers max_visits); beyond it, compute the log.
            logits -= (self._fatigue.take(exposures) if exposures.max(initial=0) < len(self._fatigue)
                       else cfg["fatigue"] * np.log1p(exposures))
        if drift_logit is not None:
            logits += drift_logit
        conversion = self.conversion_logit.take(profile, axis=0)
        conversion += cfg["trust_conversion_effect"] * trust
        return batch_expit(logits), batch_expit(conversion)

    def value_per_click(self, state: dict, p_conversion: np.ndarray) -> np.ndarray:
        """(n, K): expected reward of a click (its own weight plus the expected conversion and revenue)."""
        w_click, w_conversion, w_revenue = self.weights
        revenue = self.population.revenue_mean[state["profile"]][:, None]
        return w_click + p_conversion * (w_conversion + w_revenue * revenue)

    def drift_logits(self, worlds=None) -> np.ndarray | None:
        """(n, K): each world's drift of its current user's segment, or None without drift."""
        if self.drift is None:
            return None
        profile = self.state["profile"] if worlds is None else self.state["profile"][worlds]
        return self.drift.segment_logit(worlds, self.population.segment.take(profile))

    def expected_rewards(self) -> np.ndarray:
        """(N, K): the true immediate expected reward of each variant for each world's user now."""
        p_click, p_conversion = self.response(self.state, self.drift_logits())
        return p_click * self.value_per_click(self.state, p_conversion)

    def transition(self, state: dict, actions: np.ndarray, u: np.ndarray, drift_logit) -> dict:
        """Show ``actions`` to the users in ``state`` (changed in place) with uniforms ``u`` (n, 4); the outcome.

        A pure function of its arguments (the planner calls it on copies of the state): the response to the
        variants, the click, conversion and revenue draws, then trust, satiation, interest, memory and churn.
        """
        cfg, pop = self.config, self.population
        rows = np.arange(len(actions))
        shown = rows * self.n_variants + actions  # flat index into (n, K) arrays: one take instead of a pair
        p_click, p_conversion = self.response(state, drift_logit)
        expected = p_click * self.value_per_click(state, p_conversion)
        click = u[:, 0] < p_click.take(shown)
        conversion = click & (u[:, 1] < p_conversion.take(shown))
        sigma = cfg["revenue_sigma"]
        revenue = np.zeros(len(actions))
        converted = np.flatnonzero(conversion)  # the log-normal draw only where it is used
        if len(converted):
            revenue[converted] = (pop.revenue_mean.take(state["profile"].take(converted))
                                  * np.exp(sigma * ndtri(np.clip(u[converted, 2], 1e-12, 1 - 1e-12))
                                           - 0.5 * sigma * sigma))
        w_click, w_conversion, w_revenue = self.weights
        reward = w_click * click + w_conversion * conversion + w_revenue * revenue

        disappointed = click & ~conversion
        trust = (state["trust"] * cfg["trust_decay"] + cfg["trust_gain"] * conversion
                 - cfg["trust_loss"] * disappointed - cfg["bait_annoyance"] * self.bait[actions])
        np.clip(trust, -cfg["trust_cap"], cfg["trust_cap"], out=state["trust"])  # in place: see step_one
        earlier = state["exposures"][rows, actions]
        state["exposures"][rows, actions] = earlier + 1
        clicked = np.flatnonzero(click)
        if cfg["interest_rate"] and len(clicked):  # a user who did not click gains no interest (the term is 0)
            state["interest"][clicked] += (cfg["interest_rate"] * 1.0) * self.similarity.take(actions[clicked], axis=0)
        codes = state["codes"]
        codes[:, 1:] = codes[:, :-1].copy()
        codes[:, 0] = 1 + 3 * actions + click + conversion
        p_churn = np.clip(cfg["churn_base"] * np.exp(-cfg["churn_trust"] * state["trust"])
                          + cfg["churn_repeat"] * (self._log1p_table.take(earlier)
                                                   if earlier.max(initial=0) < len(self._log1p_table)
                                                   else np.log1p(earlier)), 0.0, 1.0)
        churned = u[:, 3] < p_churn
        state["visit"] += 1
        return dict(reward=reward, click=click, conversion=conversion, revenue=revenue, expected_rewards=expected,
                    churned=churned, p_churn=p_churn)

    # ------------------------------------------------------------------------------------------------- a step
    def step(self, actions: np.ndarray) -> dict:
        """One visit in every world: the outcome arrays; ``terminated`` (churn) and ``truncated`` (max_visits).

        A world whose user has left keeps its final state until :meth:`new_users` starts the next episode.
        """
        s = self.state
        self._observed = None
        drift_logit = self.drift_logits()
        out = self.transition(s, actions, self.rng_responses.random((self.n, 4)), drift_logit)
        out["oracle_action"] = out["expected_rewards"].argmax(axis=1)
        out["segment"] = self.population.segment.take(s["profile"])
        out["visit"] = s["visit"].copy()
        out["trust"] = s["trust"].copy()
        terminated = out["churned"]
        truncated = ~terminated & (s["visit"] >= self.max_visits)
        np.logical_not(terminated | truncated, out=s["alive"])  # in place, as every state array here
        out["terminated"], out["truncated"] = terminated, truncated
        self.clock += 1
        out["regime_shift"] = (self.drift.advance(self.clock) if self.drift is not None
                               else np.zeros(self.n, bool))
        self._visit_context(self.rows, self.rng_responses.random((self.n, 2)))
        return out

    def step_one(self, action: int) -> tuple[float, bool, bool, dict]:
        """:meth:`step` of the single world (N = 1) in Python values: (reward, terminated, truncated, info).

        One call of the compiled visit (:mod:`abgym.envs.journey_step`) on the same state arrays, with the same
        draws from the same streams in the same order, drawn ahead in blocks (so a world is stepped by this or by
        :meth:`step`, not both), and the same operations in the same order as :meth:`step`, which stays the
        reference (tests/test_env_fast_paths.py checks the two visit for visit).
        """
        if self._block_pos >= len(self._uniforms):  # the responses' six uniforms of 1,024 visits at once
            self.rng_responses.random(out=self._uniforms)
            self._block_pos = 0
        b = self._block_pos
        self._block_pos = b + 1
        drift_u, walk = self.drift.draws_one() if self.drift is not None else (0.0, False)
        reward, click, conversion, churned, truncated, visit, trust, segment, regime_shift, oracle, profile, row = \
            visit_one_world(self._state, action, b, drift_u)
        self._observed = (profile, row, visit)  # what observe_one reads, known here without numpy
        if walk:  # after the visit, as SegmentDrift.advance walks after the regime shift
            self.drift.walk_drawn_one()
        revenue = 0.0
        if conversion:
            sigma = self.config["revenue_sigma"]
            u = min(max(float(self._uniforms[b, 2]), 1e-12), 1 - 1e-12)
            revenue = (float(self.population.revenue_mean[self.state["profile"][0]])
                       * float(np.exp(sigma * float(ndtri(u)) - 0.5 * sigma * sigma)))
        reward += self.weights[2] * revenue
        info = {"expected_rewards": self._expected.copy(), "oracle_action": oracle, "click": click,
                "conversion": conversion, "revenue": revenue, "churned": churned, "visit": visit, "trust": trust,
                "segment": segment, "regime_shift": regime_shift}
        return reward, churned, truncated, info

    def observe_one(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`observe` of the single world (N = 1): new arrays (user, context, memory), from the same tables."""
        s = self.state
        if self._observed is not None:  # (profile, context row, visit) of the last step_one
            profile, row, visit = self._observed
        else:
            profile, visit = int(s["profile"][0]), int(s["visit"][0])
            row = (int(s["time_index"][0]) * len(CHANNELS) + int(s["channel"][0])) * self.n_regimes
            if self.drift is not None:
                row += int(self.drift.regime[0])
        context = self._context_table[row].copy()
        context[-1] = visit / self.max_visits
        return self.population.portrait[profile].copy(), context, self.memory_table.take(s["codes"][0], axis=0)

    # ---------------------------------------------------------------------------------------- observations
    def observe(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(user (N, user_dim), context (N, context_dim), memory (N, memory_len, memory_dim))."""
        s = self.state
        rows = (s["time_index"] * len(CHANNELS) + s["channel"]) * self.n_regimes
        if self.drift is not None:
            rows += self.drift.regime
        context = self._context_table.take(rows, axis=0)
        context[:, -1] = s["visit"] / self.max_visits
        return (self.population.portrait.take(s["profile"], axis=0), context,
                self.memory_table.take(s["codes"], axis=0))

    def copy_state(self, worlds: np.ndarray, repeats: int) -> dict:
        """The users of ``worlds``, each repeated ``repeats`` times (for planning on copies)."""
        return {key: np.repeat(self.state[key][worlds], repeats, axis=0) for key in JOURNEY_STATE}
