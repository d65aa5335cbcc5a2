"""The single PersonalizedMarketing-v0 env's step (world 0 of :class:`abgym.envs.users.MarketingWorlds`), compiled
with numba.

Why compiled: the vectorized numpy step costs about 7 us for one world, nearly all of it numpy's per-call overhead
on one-element arrays (and Python numbers do little better). One compiled function that does the user's whole step
takes under 1 us, including the call. The N-world step stays numpy (:meth:`MarketingWorlds.step`): at N = 4,096 it
is bound by scattered memory reads, which numpy's gathers overlap better than a loop that does one user at a time
(measured: a compiled loop over 4,096 worlds was no faster).

What stays outside: the random draws (numpy's generator, in the same order; the walk's normals through
:func:`fill_standard_normal`, which numba draws from the same generator and state, bit for bit), the walk itself,
resets, revenue (the inverse normal CDF, for the few who convert) and recording the drift. The function reads and
writes MarketingWorlds' own arrays, held by a :class:`abgym.envs.compiled_state.CompiledState` (a numba structref:
one object to pass, about 0.5 us per call, where passing thirty arrays costs 4 us).

The same draws and the same operations in the same order as the numpy step with N = 1, which computes the click
probabilities with scipy's ``expit`` (the C library's ``exp``, as here). The churn factor ``exp(-loyalty)`` is numpy's
SIMD ``exp`` there, which differs from the C library's in the last bit for some inputs on AVX-512 machines, so a
churn decision whose uniform falls in that gap (about 1e-16 a step) would go the other way; otherwise
tests/test_marketing_env.py checks that the two return the same values and leave the same state, step for step.
A cached compiled function here calls only functions of this file: numba checks a cache against its own file.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.experimental import structref

from abgym.envs.compiled_state import build_state, state_type

F1, F2, F3 = types.float64[::1], types.float64[:, ::1], types.float64[:, :, ::1]
I1 = types.int64[::1]
# The MarketingWorlds arrays the compiled step reads or writes (shared, never copied), and its constants, with their
# numba types: declared, so that the state is made by compiled code numba caches on disk (_new_state).
ARRAY_TYPES = {
    # the draws of the current block, (block steps, N, 8): click, conversion, churn, regime shift, arrival slot,
    # channel choice, channel, revenue
    "uniforms": F3,
    # per user slot (N * active_users rows)
    "occupant": I1, "exposures": types.uint8[:, ::1], "loyalty": F1, "codes": types.int16[:, ::1],
    # per world
    "next_profile": I1, "t": I1, "time_index": I1, "regime": I1, "slot": I1, "profile": I1, "channel": I1,
    "p_click": F2, "p_conversion": F2, "expected": F2,
    # drift: the logit per (world, segment) and its parts
    "drift_logit": F2, "regime_logit": F2, "ou_logit": F2, "trend_logit": F2,
    # population and content tables (read only)
    "segment": I1, "choice_channel": I1, "choice_logit": F2, "time_logit_table": F2, "conv_prob": F2,
    "click_value": F2, "fatigue_table": F1, "churn_table": F1, "next_time": I1, "increment": types.uint8[::1],
    "action_code": types.int16[::1],
}
CONSTANT_TYPES = {
    "n_slots": types.int64, "n_segments": types.int64, "n_regimes": types.int64, "n_profiles": types.int64,
    "n_channels": types.int64, "horizon": types.int64, "w_click": types.float64, "w_conversion": types.float64,
    "loyalty_decay": types.float64, "loyalty_gain": types.float64, "loyalty_cap": types.float64,
    "loyalty_effect": types.float64, "fatigue": types.boolean, "drift": types.boolean, "shift_prob": types.float64,
    "home_channel_prob": types.float64,
}
ARRAYS, CONSTANTS = tuple(ARRAY_TYPES), tuple(CONSTANT_TYPES)
STATE_TYPE = state_type(ARRAY_TYPES, CONSTANT_TYPES)


@njit(cache=True)
def _new_state(arrays, constants):
    """The state from ``arrays`` and ``constants`` in ARRAYS' and CONSTANTS' order (tests/test_env_fast_paths.py
    checks that every field is the array it is named after). The proxy's own constructor would be compiled again in
    every process, about 0.8 s for this many fields; this one is compiled once and cached."""
    s = structref.new(STATE_TYPE)
    (s.uniforms, s.occupant, s.exposures, s.loyalty, s.codes, s.next_profile, s.t, s.time_index, s.regime, s.slot,
     s.profile, s.channel, s.p_click, s.p_conversion, s.expected, s.drift_logit, s.regime_logit, s.ou_logit,
     s.trend_logit, s.segment, s.choice_channel, s.choice_logit, s.time_logit_table, s.conv_prob, s.click_value,
     s.fatigue_table, s.churn_table, s.next_time, s.increment, s.action_code) = arrays
    (s.n_slots, s.n_segments, s.n_regimes, s.n_profiles, s.n_channels, s.horizon, s.w_click, s.w_conversion,
     s.loyalty_decay, s.loyalty_gain, s.loyalty_cap, s.loyalty_effect, s.fatigue, s.drift, s.shift_prob,
     s.home_channel_prob) = constants
    return s


def state_parts(worlds) -> tuple[dict, dict]:
    """The arrays (by field name) and constants of the compiled step's state of ``worlds``."""
    pop, cfg, w = worlds.population, worlds.config, worlds.weights
    shift_prob = float(cfg["regime_shift_prob"]) if worlds.drift and worlds.n_regimes > 1 else 0.0
    arrays = dict(
        uniforms=worlds._uniforms, occupant=worlds.occupant, exposures=worlds.exposures, loyalty=worlds.loyalty,
        codes=worlds.codes, next_profile=worlds.next_profile, t=worlds.t, time_index=worlds.time_index,
        regime=worlds.regime, slot=worlds.slot, profile=worlds.profile, channel=worlds.channel,
        p_click=worlds.p_click, p_conversion=worlds.p_conversion, expected=worlds.expected,
        drift_logit=worlds.drift_logit, regime_logit=worlds._regime_logit, ou_logit=worlds._ou_logit,
        trend_logit=worlds._trend_logit, segment=pop.segment, choice_channel=worlds.choice_channel,
        choice_logit=worlds.choice_logit, time_logit_table=pop.time_logit_table, conv_prob=pop.conv_prob,
        click_value=worlds.click_value, fatigue_table=worlds.fatigue_table, churn_table=worlds.churn_table,
        next_time=worlds.next_time, increment=worlds.increment, action_code=worlds.action_code)
    constants = dict(
        n_slots=worlds.n_slots, n_segments=worlds.n_segments, n_regimes=worlds.n_regimes,
        n_profiles=worlds.n_profiles, n_channels=int(worlds._const["channels"][0]), horizon=worlds.horizon,
        w_click=float(w[0]), w_conversion=float(w[1]), loyalty_decay=float(cfg["loyalty_decay"]),
        loyalty_gain=float(cfg["loyalty_gain"]), loyalty_cap=float(cfg["loyalty_cap"]),
        loyalty_effect=float(cfg["loyalty_effect"]), fatigue=bool(cfg["fatigue"]), drift=worlds.drift,
        shift_prob=shift_prob, home_channel_prob=float(cfg["home_channel_prob"]))
    return arrays, constants


def make_state(worlds):
    """The state of ``worlds`` (after ``seed``): must be rebuilt whenever one of its arrays is replaced."""
    return build_state(_new_state, state_parts(worlds), ARRAY_TYPES, CONSTANT_TYPES, "MarketingWorlds")


@njit(cache=True)
def fill_standard_normal(rng, out):
    """``rng.standard_normal(out=out)`` (1-D): the same numbers and the same generator state, about 3x faster for
    many numbers; handing the Generator to numba costs about 8 us, so it pays from a few thousand."""
    for i in range(out.size):
        out[i] = rng.standard_normal()


@njit(cache=True)
def _respond(s, w, a, b, walk):
    """World ``w`` shows variant ``a`` at draw row ``b``: the response, the user's memory and churn, the clock and
    the drift. Returns (click, conversion, reward without revenue, churned, returning, segment, regime shift,
    truncated, profile served)."""
    u = s.uniforms
    slot, profile = s.slot[w], s.profile[w]
    click = u[b, w, 0] < s.p_click[w, a]
    conversion = click and u[b, w, 1] < s.p_conversion[w, a]
    # Reward without revenue (added by the caller for the converted, as the last term of the same sum).
    reward = click * s.w_click + conversion * s.w_conversion
    if conversion:
        loyalty = min(s.loyalty[slot] * s.loyalty_decay + s.loyalty_gain, s.loyalty_cap)
    else:
        loyalty = s.loyalty[slot] * s.loyalty_decay

    # The user remembers: exposures (fatigue), loyalty, the memory of what they saw, and may churn.
    seen = s.increment[s.exposures[slot, a]]  # uint8, saturating
    s.exposures[slot, a] = seen
    s.loyalty[slot] = loyalty
    returning = s.codes[slot, 0] != 0
    for j in range(s.codes.shape[1] - 1, 0, -1):  # newest first
        s.codes[slot, j] = s.codes[slot, j - 1]
    s.codes[slot, 0] = s.action_code[a] + click + conversion
    churn = s.churn_table[2 * np.int64(seen) + click]
    churned = u[b, w, 2] < churn * math.exp(-loyalty)
    if churned:  # a fresh profile takes the slot
        s.occupant[slot] = s.next_profile[w] % s.n_profiles
        s.next_profile[w] += 1
        s.exposures[slot, :] = 0
        s.loyalty[slot] = 0.0
        s.codes[slot, :] = 0
    segment = s.segment[profile]

    t = s.t[w] + 1
    s.t[w] = t
    s.time_index[w] = s.next_time[s.time_index[w]]
    shifted = False
    if s.drift:
        x = u[b, w, 3]
        if x < s.shift_prob:  # given that it fell below the probability, its rescaled value picks the new regime
            shifted = True
            choice = np.int64(x / max(s.shift_prob, 1e-300) * (s.n_regimes - 1))
            s.regime[w] = (s.regime[w] + 1 + choice) % s.n_regimes
        if walk or shifted:  # the drift's logit as the sum of its parts: regime + walk + trend * t
            for g in range(s.n_segments):
                row = w * s.n_segments + g
                regime_row = (w * s.n_regimes + s.regime[w]) * s.n_segments + g
                for k in range(s.drift_logit.shape[1]):
                    s.drift_logit[row, k] = (s.regime_logit[regime_row, k] + s.ou_logit[row, k]
                                             + s.trend_logit[row, k] * np.float64(t))
    return click, conversion, reward, churned, returning, segment, shifted, t >= s.horizon, profile


@njit(cache=True)
def _arrive(s, b):
    """The next user of world 0: a slot, a channel, and the user's click probabilities. Returns (slot, profile,
    row of the context table) for the next observation."""
    u = s.uniforms
    slot = np.int64(u[b, 0, 4] * s.n_slots)
    if u[b, 0, 5] < s.home_channel_prob:
        choice = s.n_channels  # the user's home channel
    else:
        choice = np.int64(u[b, 0, 6] * s.n_channels)
    profile = s.occupant[slot]
    row = profile * (s.n_channels + 1) + choice
    segment_row = s.segment[profile]
    time_index = s.time_index[0]
    for k in range(s.p_click.shape[1]):
        x = s.choice_logit[row, k] + s.time_logit_table[time_index, k]
        if s.drift:
            x += s.drift_logit[segment_row, k]
        if s.loyalty_effect:
            x += s.loyalty[slot] * s.loyalty_effect
        if s.fatigue:
            x -= s.fatigue_table[s.exposures[slot, k]]
        p_click = 1.0 / (1.0 + math.exp(-x))
        s.p_click[0, k] = p_click
        s.expected[0, k] = p_click * s.click_value[profile, k]
        s.p_conversion[0, k] = s.conv_prob[profile, k]
    channel = s.choice_channel[row]
    s.slot[0], s.profile[0], s.channel[0] = slot, profile, channel
    return slot, profile, (time_index * s.n_channels + channel) * s.n_regimes + s.regime[0]


@njit(cache=True)
def step_world_zero(s, action, b, walk):
    """The single env's step: ``_respond``'s tuple and then ``_arrive``'s, as Python values."""
    return _respond(s, 0, action, b, walk) + _arrive(s, b)


@njit(cache=True)
def walk_one_world(noise, ou, ou_logit, content_matrix, spread, decay):
    """The Ornstein-Uhlenbeck update of one world from its drawn standard normals (noise and ou (S, A), ou_logit
    (S, K)): the numpy walk's updates in one call, where numpy spends about 1 us per call on such small arrays. The
    logit's sums run over the features in order (numpy's matrix-vector product may add them in another order, so
    the last bits can differ from the N-world walk's). The normals are drawn by the caller with numpy: handing a
    Generator to numba costs about 8 us."""
    for i in range(noise.shape[0]):
        for j in range(noise.shape[1]):
            noise[i, j] *= spread
            ou[i, j] = ou[i, j] * decay + noise[i, j]
        for k in range(content_matrix.shape[0]):
            total = 0.0
            for j in range(noise.shape[1]):
                total += ou[i, j] * content_matrix[k, j]
            ou_logit[i, k] = total
