"""The single CustomerJourney-v0 env's step (world 0 of :class:`abgym.envs.journeys.JourneyWorlds`), compiled with
numba, for the reason and in the way of :mod:`abgym.envs.marketing_step`: the visit in Python numbers cost about
15 us, most of it numpy and generator calls on one or four numbers; this is one call.

It does what ``JourneyWorlds.transition`` and ``SegmentDrift.advance`` do for one world, with the same operations in
the same order, on the worlds' own arrays (held by a :class:`abgym.envs.compiled_state.CompiledState`). The draws
come from the caller, from the same streams in the same order (the responses' six uniforms of a visit and the drift's uniform), and so do
revenue (the inverse normal CDF, for the few who convert), the drift's walk (``walk_one_world`` of
:mod:`abgym.envs.marketing_step`, called from Python: numba checks a cached function against its own file only, so a
cached function here must not call one compiled from another file) and the output arrays. ``exp`` is
the C library's, as in scipy's ``expit`` that the vectorized step uses for the click and conversion probabilities;
the churn probability's ``exp`` (numpy's in the vectorized step) can differ in the last bit, which could change a
churn draw that falls within 1e-16 of it. tests/test_env_fast_paths.py checks the two steps, visit for visit.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.experimental import structref

from abgym.envs.compiled_state import build_state, state_type

from abgym.envs.users import DAYS

F1, F2, I1, I2 = types.float64[::1], types.float64[:, ::1], types.int64[::1], types.int64[:, ::1]
# The JourneyWorlds / SegmentDrift arrays the compiled step reads or writes (shared, never copied), and its constants,
# with their numba types (declared for _new_state, as in abgym.envs.marketing_step).
ARRAY_TYPES = {
    # the responses' draws of a block of visits (visits, 6): click, conversion, revenue, churn, channel, time
    "uniforms": F2,
    "profile": I1, "visit": I1, "trust": F1, "exposures": I2, "interest": F2, "codes": I2, "channel": I1,
    "time_index": I1, "alive": types.boolean[::1], "clock": I1,
    "expected": F1,  # (K,): the expected rewards of the visit just made, for the caller's info
    "static_rows": F2, "time_logit_table": F2, "fatigue_table": F1, "conversion_logit": F2, "revenue_mean": F1,
    "bait": F1, "similarity": F2, "channel_p": F2, "segment": I1, "log1p_table": F1,
    # the drift (zeros when there is none): regime, its parts of the logit, the walk, the trend's clock
    "regime": I1, "regime_logit": F2, "ou_logit": F2, "trend_logit": F2, "drift_clock": F1,
}
CONSTANT_TYPES = {
    "has_drift": types.boolean, "n_segments": types.int64, "n_regimes": types.int64, "shift_prob": types.float64,
    "fatigue_scale": types.float64, "trust_click_effect": types.float64,
    "trust_conversion_effect": types.float64, "w_click": types.float64,
    "w_conversion": types.float64, "trust_decay": types.float64, "trust_gain": types.float64,
    "trust_loss": types.float64, "bait_annoyance": types.float64, "trust_cap": types.float64,
    "interest_rate": types.float64, "churn_base": types.float64, "churn_trust": types.float64,
    "churn_repeat": types.float64, "max_visits": types.int64, "n_channels": types.int64, "days": types.int64,
    "per_day": types.int64, "w_revenue": types.float64,
}
ARRAYS, CONSTANTS = tuple(ARRAY_TYPES), tuple(CONSTANT_TYPES)
STATE_TYPE = state_type(ARRAY_TYPES, CONSTANT_TYPES)


@njit(cache=True)
def _new_state(arrays, constants):
    """The state from ``arrays`` and ``constants`` in ARRAYS' and CONSTANTS' order, by compiled code numba caches
    (see abgym.envs.marketing_step._new_state; tests/test_env_fast_paths.py checks the order)."""
    s = structref.new(STATE_TYPE)
    (s.uniforms, s.profile, s.visit, s.trust, s.exposures, s.interest, s.codes, s.channel, s.time_index, s.alive,
     s.clock, s.expected, s.static_rows, s.time_logit_table, s.fatigue_table, s.conversion_logit, s.revenue_mean,
     s.bait, s.similarity, s.channel_p, s.segment, s.log1p_table, s.regime, s.regime_logit, s.ou_logit,
     s.trend_logit, s.drift_clock) = arrays
    (s.has_drift, s.n_segments, s.n_regimes, s.shift_prob, s.fatigue_scale, s.trust_click_effect,
     s.trust_conversion_effect, s.w_click, s.w_conversion, s.trust_decay, s.trust_gain, s.trust_loss,
     s.bait_annoyance, s.trust_cap, s.interest_rate, s.churn_base, s.churn_trust, s.churn_repeat, s.max_visits,
     s.n_channels, s.days, s.per_day, s.w_revenue) = constants
    return s


def state_parts(worlds) -> tuple[dict, dict]:
    """The arrays (by field name) and constants of the compiled step's state of ``worlds``."""
    pop, cfg, s, drift = worlds.population, worlds.config, worlds.state, worlds.drift
    k = worlds.n_variants
    arrays = dict(
        uniforms=worlds._uniforms, profile=s["profile"], visit=s["visit"], trust=s["trust"],
        exposures=s["exposures"], interest=s["interest"], codes=s["codes"], channel=s["channel"],
        time_index=s["time_index"], alive=s["alive"], clock=worlds.clock, expected=worlds._expected,
        static_rows=worlds._static_rows, time_logit_table=pop.time_logit_table, fatigue_table=worlds._fatigue,
        conversion_logit=worlds.conversion_logit, revenue_mean=pop.revenue_mean, bait=worlds.bait,
        similarity=worlds.similarity, channel_p=worlds.channel_p, segment=pop.segment,
        log1p_table=worlds._log1p_table)
    if drift is not None:
        arrays.update(regime=drift.regime, regime_logit=drift._regime_logit, ou_logit=drift._ou_logit,
                      trend_logit=drift._trend_logit, drift_clock=drift._clock)
    else:
        zeros = np.zeros((1, k))
        arrays.update(regime=np.zeros(1, np.int64), regime_logit=zeros, ou_logit=zeros, trend_logit=zeros,
                      drift_clock=np.zeros(1))
    constants = dict(
        has_drift=drift is not None, n_segments=worlds.n_segments, n_regimes=worlds.n_regimes,
        shift_prob=float(cfg["regime_shift_prob"]) if drift is not None and worlds.n_regimes > 1 else 0.0,
        fatigue_scale=float(cfg["fatigue"]),
        trust_click_effect=float(cfg["trust_click_effect"]), trust_conversion_effect=float(
            cfg["trust_conversion_effect"]), w_click=float(worlds.weights[0]),
        w_conversion=float(worlds.weights[1]), trust_decay=float(cfg["trust_decay"]),
        trust_gain=float(cfg["trust_gain"]), trust_loss=float(cfg["trust_loss"]),
        bait_annoyance=float(cfg["bait_annoyance"]), trust_cap=float(cfg["trust_cap"]),
        interest_rate=float(cfg["interest_rate"]), churn_base=float(cfg["churn_base"]),
        churn_trust=float(cfg["churn_trust"]), churn_repeat=float(cfg["churn_repeat"]),
        max_visits=worlds.max_visits, n_channels=worlds.channel_p.shape[1], days=DAYS, per_day=worlds.per_day,
        w_revenue=float(worlds.weights[2]))
    return arrays, constants


def make_state(worlds):
    """The state of ``worlds`` (N = 1, after ``seed``): to be rebuilt whenever one of its arrays is replaced."""
    return build_state(_new_state, state_parts(worlds), ARRAY_TYPES, CONSTANT_TYPES, "JourneyWorlds")


@njit(cache=True)
def _expit(x):
    """scipy's expit: ``1 / (1 + exp(-x))``, 0 where ``exp`` overflows."""
    return 1.0 / (1.0 + math.exp(-x))


@njit(cache=True)
def visit_one_world(s, action, b, drift_u):
    """One visit of world 0's user, shown ``action``, with the draws of row ``b`` and the drift's uniform; the
    drift's walk, when due, is the caller's to apply after it (SegmentDrift.walk_drawn_one). Returns (reward
    without revenue, click, conversion, churned, truncated, visit, trust, segment, regime shift, oracle action,
    profile, and the next observation's row of the context table); ``s.expected`` holds the visit's expected
    rewards."""
    u = s.uniforms
    k_variants = s.exposures.shape[1]
    profile = s.profile[0]
    trust = s.trust[0]
    segment = s.segment[profile]
    static_row = profile * s.n_channels + s.channel[0]
    regime_row = s.regime[0] * s.n_segments + segment
    click_trust = s.trust_click_effect * trust
    conversion_trust = s.trust_conversion_effect * trust
    after_click = s.w_conversion + s.w_revenue * s.revenue_mean[profile]
    p_click_shown, p_conversion_shown = 0.0, 0.0
    oracle = 0
    for k in range(k_variants):  # JourneyWorlds.response and value_per_click, in their order
        x = s.static_rows[static_row, k] + s.time_logit_table[s.time_index[0], k] + click_trust + s.interest[0, k]
        if s.fatigue_scale:
            e = s.exposures[0, k]  # at most the visits so far: beyond the table only if stepped past the end
            x -= s.fatigue_table[e] if e < s.fatigue_table.shape[0] else s.fatigue_scale * math.log1p(e)
        if s.has_drift:
            x += (s.regime_logit[regime_row, k] + s.ou_logit[segment, k]) + s.trend_logit[segment, k] * s.drift_clock[0]
        p_click = _expit(x)
        p_conversion = _expit(s.conversion_logit[profile, k] + conversion_trust)
        s.expected[k] = p_click * (s.w_click + p_conversion * after_click)
        if s.expected[k] > s.expected[oracle]:
            oracle = k
        if k == action:
            p_click_shown, p_conversion_shown = p_click, p_conversion
    click = u[b, 0] < p_click_shown
    conversion = click and u[b, 1] < p_conversion_shown
    reward = s.w_click * click + s.w_conversion * conversion  # the caller adds w_revenue * revenue

    disappointed = click and not conversion
    trust = (trust * s.trust_decay + s.trust_gain * conversion - s.trust_loss * disappointed
             - s.bait_annoyance * s.bait[action])
    trust = min(max(trust, -s.trust_cap), s.trust_cap)
    s.trust[0] = trust
    earlier = s.exposures[0, action]
    s.exposures[0, action] = earlier + 1
    if s.interest_rate and click:
        for k in range(k_variants):
            s.interest[0, k] += (s.interest_rate * 1.0) * s.similarity[action, k]
    for j in range(s.codes.shape[1] - 1, 0, -1):
        s.codes[0, j] = s.codes[0, j - 1]
    s.codes[0, 0] = 1 + 3 * action + click + conversion
    repeats = s.log1p_table[earlier] if earlier < s.log1p_table.shape[0] else math.log1p(earlier)
    p_churn = min(max(s.churn_base * math.exp(-s.churn_trust * trust) + s.churn_repeat * repeats, 0.0), 1.0)
    churned = u[b, 3] < p_churn
    visit = s.visit[0] + 1
    s.visit[0] = visit
    truncated = not churned and visit >= s.max_visits
    s.alive[0] = not (churned or truncated)

    # The world clock, and the drift's regime shift and clock (SegmentDrift.advance of one world, but the walk).
    clock = s.clock[0] + 1
    s.clock[0] = clock
    shifted = False
    if s.has_drift:
        if drift_u < s.shift_prob:
            shifted = True
            jump = np.int64(drift_u / s.shift_prob * (s.n_regimes - 1))
            s.regime[0] = (s.regime[0] + 1 + min(jump, s.n_regimes - 2)) % s.n_regimes
        s.drift_clock[0] = clock

    # The context of the next visit: the channel by the population's arrival model, and the time of week.
    channel = 0
    for c in range(s.n_channels):
        if u[b, 4] > s.channel_p[profile, c]:
            channel += 1
    channel = min(channel, s.n_channels - 1)
    time_index = np.int64(u[b, 5] * s.days * s.per_day)
    s.channel[0], s.time_index[0] = channel, time_index
    context_row = (time_index * s.n_channels + channel) * s.n_regimes + (s.regime[0] if s.has_drift else 0)
    return reward, click, conversion, churned, truncated, visit, trust, segment, shifted, oracle, profile, context_row
