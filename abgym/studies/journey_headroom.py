"""How much there is to gain in CustomerJourney-v0: lifetime reward per user of four reference policies.

- ``random``: a uniformly random variant at every visit;
- ``best_fixed``: the one variant that, shown at every visit to every user, earns the most (chosen in hindsight on
  the same users: an upper bound for any non-personalized, non-adaptive policy);
- ``myopic_oracle``: the variant with the highest *true* immediate expected reward for this user at this visit
  (what a perfect contextual bandit converges to);
- ``longterm_oracle``: Monte-Carlo rollout policy improvement over the myopic oracle (Bertsekas' rollout): at
  every visit, for every variant, ``rollouts`` simulated continuations of the journey with the simulator's true
  model (each simulated visit's channel and time drawn as the env draws them; the drift frozen at the decision
  time) show that variant and then follow the myopic oracle to the end;
  the variant with the highest mean simulated lifetime reward is shown. The rollouts of the K variants share their
  random numbers, so that their differences are not noise. Exact dynamic programming is out of reach: the user
  state (trust, K view counts, K interest terms, memory) is continuous and grows with K. With exact Q-values
  rollout improvement is never worse than its base policy, so the gap to the myopic oracle is a lower bound on the
  long-term headroom; with estimated ones it can lose a little where there is nothing to gain.

Every policy meets the same users with the same random numbers (common random numbers): the gaps are paired
differences with their own 95% intervals, much narrower than the intervals of the means. The study runs all users
at once, one journey per world of :class:`abgym.envs.journeys.JourneyWorlds`.

    abgym marketing headroom [--quick] [--users N] [--json PATH] [--env-config JSON]
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

POLICIES = ("random", "best_fixed", "myopic_oracle", "longterm_oracle")
DEFAULT_USERS, QUICK_USERS = 2000, 400
DEFAULT_ROLLOUTS, QUICK_ROLLOUTS = 32, 16


def myopic_actions(worlds, rows=None) -> np.ndarray:
    """The myopic oracle: argmax of the true immediate expected reward of each world's user now."""
    expected = worlds.expected_rewards()
    return expected.argmax(axis=1) if rows is None else expected[rows].argmax(axis=1)


class RolloutPlanner:
    """The long-term oracle: one step of rollout policy improvement over the myopic oracle, on the true model."""

    def __init__(self, worlds, rollouts: int = DEFAULT_ROLLOUTS, horizon: int | None = None, seed: int = 0,
                 max_rows: int = 300_000):
        if rollouts < 1:
            raise ValueError(f"rollouts must be >= 1, got {rollouts}")
        self.worlds, self.rollouts, self.horizon = worlds, int(rollouts), horizon
        self.rng = np.random.default_rng(seed)
        self.max_rows = int(max_rows)

    def actions(self, rows: np.ndarray | None = None) -> np.ndarray:
        """The planned variant for each world in ``rows`` (default: all); planned in chunks to bound memory."""
        worlds = self.worlds
        rows = worlds.rows if rows is None else np.asarray(rows)
        chunk = max(1, self.max_rows // (3 * worlds.n_variants * self.rollouts))
        return np.concatenate([self._plan(rows[start:start + chunk]) for start in range(0, len(rows), chunk)]
                              ) if len(rows) else np.zeros(0, np.int64)

    def q_values(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), K): expected lifetime reward from now of showing each variant, then the myopic oracle.

        The first visit's three outcomes (no click, a click, a conversion) are enumerated with their true
        probabilities rather than drawn (they are rare, and they are what changes trust); the visits after them
        are simulated ``rollouts`` times, with churn as a survival weight and each visit's expected reward in place
        of its draw. Both change only the variance, not the expectation.
        """
        worlds, k, m = self.worlds, self.worlds.n_variants, self.rollouts
        n_rows, outcomes = len(rows), 3
        p_click, p_conversion = worlds.response({key: worlds.state[key][rows] for key in worlds.state},
                                                worlds.drift_logits(rows))
        value = p_click * worlds.value_per_click({"profile": worlds.state["profile"][rows]}, p_conversion)
        # Branch probabilities (n_rows, K, 3) and the uniforms that force each branch at the first visit.
        branch = np.stack([1 - p_click, p_click * (1 - p_conversion), p_click * p_conversion], axis=2)
        forced = np.array([[1.0, 1.0, 0.5, 1.0], [0.0, 1.0, 0.5, 1.0], [0.0, 0.0, 0.5, 1.0]])
        copies = k * outcomes * m  # per world: variant, outcome, rollout
        state = worlds.copy_state(rows, copies)
        drift = worlds.drift_logits(rows)
        drift = None if drift is None else np.repeat(drift, copies, axis=0)
        n = n_rows * copies
        first = np.tile(np.repeat(np.arange(k), outcomes * m), n_rows)
        u = np.broadcast_to(forced[None, None, :, None, :], (n_rows, k, outcomes, m, 4)).reshape(n, 4).copy()
        u[:, 2] = np.repeat(self.rng.random((n_rows, 1, 1, m)), k * outcomes, axis=1).reshape(n)
        out = worlds.transition(state, first, u, drift)
        survival = (1.0 - out["p_churn"]) * (state["visit"] < worlds.max_visits)
        future = np.zeros(n)
        steps = worlds.max_visits if self.horizon is None else self.horizon
        for _ in range(1, steps):
            if not survival.any():
                break
            # The same uniforms for every branch of one world (common random numbers): the next visit's channel and
            # time of week, drawn as the env draws them, then its click, conversion and revenue.
            u = np.repeat(self.rng.random((n_rows, 1, m, 6)), k * outcomes, axis=1).reshape(n, 6)
            state["channel"], state["time_index"] = worlds.visit_context(state["profile"], u[:, 4:])
            u = u[:, :4].copy()
            u[:, 3] = 1.0  # churn is the survival weight, not a draw
            p_click_now, p_conversion_now = worlds.response(state, drift)
            expected = p_click_now * worlds.value_per_click(state, p_conversion_now)
            actions = expected.argmax(axis=1)
            future += survival * expected[np.arange(n), actions]
            out = worlds.transition(state, actions, u, drift)
            survival *= (1.0 - out["p_churn"]) * (state["visit"] < worlds.max_visits)
        future = future.reshape(n_rows, k, outcomes, m).mean(axis=3)
        return value + (branch * future).sum(axis=2)

    def _plan(self, rows: np.ndarray) -> np.ndarray:
        return self.q_values(rows).argmax(axis=1)


def run_policy(policy, config: dict | None = None, users: int = DEFAULT_USERS, seed: int = 0,
               rollouts: int = DEFAULT_ROLLOUTS, fixed_variant: int | None = None, worlds=None) -> dict:
    """Lifetime reward (and clicks, conversions, visits) of each of ``users`` journeys under ``policy``.

    ``policy``: a reference policy's name, or any callable from a batch of Dict observations (the env's keys, a
    leading axis of ``users``) to one action per user, e.g. ``lambda obs: model.predict(obs, deterministic=True)[0]``
    for a trained SB3 model, so that a learnt policy is scored on the same users as the oracles.
    ``worlds``: a prebuilt :class:`JourneyWorlds` with ``users`` worlds (reseeded here), to skip the build.
    """
    if worlds is None:
        from abgym.envs.customer_journey import build_journeys

        _, _, worlds = build_journeys(config, {}, users)
    worlds.seed(seed)
    n = worlds.n
    planner = RolloutPlanner(worlds, rollouts, seed=seed + 1) if policy == "longterm_oracle" else None
    choose = np.random.default_rng(seed + 2)
    totals = {key: np.zeros(n) for key in ("reward", "realized", "click", "conversion", "revenue", "visits")}
    alive = np.ones(n, bool)
    while alive.any():
        if callable(policy):
            user, context, memory = worlds.observe()
            variants = np.broadcast_to(worlds.variants, (n, *worlds.variants.shape))
            actions = np.asarray(policy({"user": user, "context": context, "memory": memory, "variants": variants}),
                                 dtype=np.int64).reshape(n)
        elif policy == "random":
            actions = choose.integers(worlds.n_variants, size=n)
        elif policy == "fixed":
            actions = np.full(n, fixed_variant)
        elif policy == "myopic_oracle":
            actions = myopic_actions(worlds)
        elif policy == "longterm_oracle":
            actions = np.zeros(n, np.int64)
            actions[alive] = planner.actions(np.flatnonzero(alive))
        else:
            raise ValueError(f"unknown policy {policy!r}; use one of random, fixed, myopic_oracle, longterm_oracle")
        out = worlds.step(actions)
        # The lifetime reward counts each visit's true expected reward of the variant shown (the same mean as the
        # drawn reward, without the noise of rare conversions); the drawn one is kept as "realized".
        totals["reward"] += out["expected_rewards"][np.arange(n), actions] * alive
        totals["realized"] += out["reward"] * alive
        for key in ("click", "conversion", "revenue"):
            totals[key] += out[key] * alive
        totals["visits"] += alive
        alive &= ~(out["terminated"] | out["truncated"])
    return totals


def mean_ci(values: np.ndarray) -> tuple[float, list[float]]:
    """Mean and normal-approximation 95% interval over users."""
    values = np.asarray(values, np.float64)
    half = 1.96 * values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return float(values.mean()), [float(values.mean() - half), float(values.mean() + half)]


def headroom(config: dict | None = None, users: int = DEFAULT_USERS, seed: int = 0,
             rollouts: int = DEFAULT_ROLLOUTS, log=None) -> dict:
    """The four policies on the same ``users`` journeys; means, intervals and the paired gaps."""
    from abgym.envs.customer_journey import build_journeys

    started = time.perf_counter()
    if isinstance(users, bool) or int(users) != users or users < 2:
        raise ValueError(f"users must be a whole number >= 2, got {users!r}")
    settings, _, worlds = build_journeys(config, {}, int(users))
    runs, fixed = {}, {}
    for k in range(worlds.n_variants):
        fixed[k] = run_policy("fixed", users=users, seed=seed, fixed_variant=k, worlds=worlds)
    best = max(fixed, key=lambda k: fixed[k]["reward"].mean())
    runs["best_fixed"] = fixed[best]
    for policy in ("random", "myopic_oracle", "longterm_oracle"):
        t0 = time.perf_counter()
        runs[policy] = run_policy(policy, users=users, seed=seed, rollouts=rollouts, worlds=worlds)
        if log:
            log(f"  {policy}: {runs[policy]['reward'].mean():.4f} per user ({time.perf_counter() - t0:.1f} s)")
    result = {"env": "abgym/CustomerJourney-v0", "users": int(users), "seed": int(seed), "rollouts": int(rollouts),
              "longterm_oracle_method": "Monte-Carlo rollout policy improvement over the myopic oracle "
                                        f"({rollouts} rollouts per variant, true model, drift frozen per decision)",
              "best_fixed_variant": int(best), "policies": {}, "gaps": {}}
    for policy in POLICIES:
        totals = runs[policy]
        mean, ci = mean_ci(totals["reward"])
        result["policies"][policy] = {
            "ltv_mean": mean, "ltv_ci": ci, "visits": float(totals["visits"].mean()),
            "ctr": float(totals["click"].sum() / totals["visits"].sum()),
            "conversion_per_visit": float(totals["conversion"].sum() / totals["visits"].sum()),
            "revenue_per_user": float(totals["revenue"].mean()),
            "churned_before_max_visits": float((totals["visits"] < settings["max_visits"]).mean())}
    for name, (high, low) in {"myopic_over_best_fixed": ("myopic_oracle", "best_fixed"),
                              "longterm_over_myopic": ("longterm_oracle", "myopic_oracle")}.items():
        difference = runs[high]["reward"] - runs[low]["reward"]
        mean, ci = mean_ci(difference)
        base = result["policies"][low]["ltv_mean"]
        result["gaps"][name] = {"difference": mean, "difference_ci": ci, "relative": mean / base,
                                "relative_ci": [ci[0] / base, ci[1] / base]}
    result["seconds"] = time.perf_counter() - started
    return result


def markdown_table(result: dict) -> str:
    lines = ["| policy | lifetime reward per user [95% CI] | visits per user | CTR | conversions per visit | "
             "revenue per user | churned before max visits |", "|---|---|---|---|---|---|---|"]
    for policy, entry in result["policies"].items():
        name = policy + (f" (variant {result['best_fixed_variant']})" if policy == "best_fixed" else "")
        lines.append(f"| {name} | {entry['ltv_mean']:.3f} [{entry['ltv_ci'][0]:.3f}, {entry['ltv_ci'][1]:.3f}] "
                     f"| {entry['visits']:.2f} | {entry['ctr']:.4f} | {entry['conversion_per_visit']:.4f} "
                     f"| {entry['revenue_per_user']:.2f} | {entry['churned_before_max_visits']:.1%} |")
    lines.append("")
    lines.append("| gap (paired over the same users) | difference [95% CI] | relative [95% CI] |")
    lines.append("|---|---|---|")
    for name, gap in result["gaps"].items():
        lines.append(f"| {name.replace('_', ' ')} | {gap['difference']:+.3f} [{gap['difference_ci'][0]:+.3f}, "
                     f"{gap['difference_ci'][1]:+.3f}] | {gap['relative']:+.1%} [{gap['relative_ci'][0]:+.1%}, "
                     f"{gap['relative_ci'][1]:+.1%}] |")
    return "\n".join(lines)


def write_json(result: dict, path) -> Path:
    from abgym.paths import atomic_write

    path = Path(path)
    with atomic_write(path, "w") as handle:
        json.dump(result, handle, indent=2)
    return path
