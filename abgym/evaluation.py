"""Evaluate A/B-test agents on ABTest-v0: one tidy row per episode, and a summary with 95 % confidence intervals.

Every agent meets the same experiments and the same environment seeds (episode ``e`` of seed ``s`` resets the
env with a seed derived from ``(s, e)``), so differences between agents are paired, not luck of the draw.

Metrics per episode:

* ``reward``: clicks collected;
* ``regret``: expected clicks lost against always showing the best arm (sum of the env's ``expected_regret``);
* ``relative_regret``: regret as a share of the best arm's expected clicks over the episode's traffic;
* ``best_arm_share``: share of the traffic shown a best arm;
* ``winner_correct``: the agent's declared winner is a best arm (False when it declares none);
  ``declared``: it declared one at all.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from abgym.agents.base import Agent
from abgym.env_metrics import CURVE_POINTS, EpisodeTracker
from abgym.wrappers import valid_action

DEFAULT_ENV = "abgym/ABTest-v0"
EPISODE_COLUMNS = [
    "agent", "seed", "episode", "env_seed", "test_id", "n_arms", "steps", "traffic", "reward", "regret",
    "relative_regret", "best_arm_share", "declared_winner", "declared", "winner_correct", "seconds",
]
METRICS = ["reward", "regret", "relative_regret", "best_arm_share"]
BOUNDED = {"relative_regret", "best_arm_share"}  # shares in [0, 1]
SUMMARY_COLUMNS = (
    ["agent", "episodes"]
    + [f"{m}_{part}" for m in METRICS for part in ("mean", "ci_low", "ci_high")]
    + ["winner_accuracy", "winner_accuracy_ci_low", "winner_accuracy_ci_high", "declared_rate", "seconds"]
)


@dataclass
class EvaluationResult:
    episodes: pd.DataFrame  # one row per (agent, seed, episode), columns EPISODE_COLUMNS
    summary: pd.DataFrame  # one row per agent, columns SUMMARY_COLUMNS
    curves: dict[str, np.ndarray] = field(default_factory=dict)  # agent -> (episodes, CURVE_POINTS) cum. regret

    def to_markdown(self, digits: int = 3) -> str:
        return summary_markdown(self.summary, digits)


# ---------------------------------------------------------------------------------------------- one episode
def episode_seed(seed: int, episode: int, stream: int = 0) -> int:
    """A seed for episode ``episode`` of run ``seed``: stream 0 for the env, 1 for the agent."""
    return int(np.random.SeedSequence([int(seed), int(episode), stream]).generate_state(1)[0])


def run_episode(agent: Agent, env, env_seed: int, agent_seed: int, reset_options: dict | None = None):
    """Play one episode; returns the tracker, the reset info and the env's true click rates (if it exposes them)."""
    observation, info = env.reset(seed=env_seed, options=reset_options)
    n_arms = int(info.get("n_arms", env.action_space.n))
    agent.reset(n_arms, info, seed=agent_seed)
    tracker = EpisodeTracker()
    step_info = info
    while True:
        action = agent.act(observation, step_info)
        observation, reward, terminated, truncated, step_info = env.step(action)
        agent.update(action, reward, observation, step_info)
        tracker.step(reward, step_info, action)
        if terminated or truncated:
            break
    true_ctr = getattr(env.unwrapped, "true_ctr", None)
    return tracker, info, step_info, true_ctr


# ---------------------------------------------------------------------------------------------- policies
class SB3PolicyAgent(Agent):
    """Runs a trained Stable-Baselines3 model (MaskablePPO or any ``predict``) as an agent, deterministically."""

    def __init__(self, model, name: str = "ppo", obs_normalizer: Callable | None = None) -> None:
        super().__init__()
        self.model = model
        self.name = name
        self.obs_normalizer = obs_normalizer

    def act(self, observation, info: dict | None = None) -> int:
        obs = self.obs_normalizer(observation) if self.obs_normalizer else observation
        kwargs = {}
        if "action_masks" in self.model.predict.__code__.co_varnames:
            mask = (info or {}).get("action_mask")
            full_mask = np.asarray(observation["action_mask"] if mask is None else mask, dtype=bool)
            kwargs["action_masks"] = full_mask
        action, _ = self.model.predict(obs, deterministic=True, **kwargs)
        action = int(np.asarray(action).reshape(-1)[0])
        # Without masking (A2C, plain PPO) a padded arm maps onto a real one, as in training
        # (abgym.wrappers.ValidActionWrapper).
        return action if kwargs else valid_action(action, self.valid)


def resolve_agents(policy, agent_kwargs: dict | None = None) -> list[Agent]:
    """Accept a name, an Agent, a trained SB3 model, or a list of these."""
    from abgym.agents.registry import make_agent

    policies = list(policy) if isinstance(policy, (list, tuple)) else [policy]
    agents = []
    for item in policies:
        if isinstance(item, str):
            agents.append(make_agent(item, **(agent_kwargs or {})))
        elif isinstance(item, Agent):
            agents.append(item)
        elif hasattr(item, "predict"):
            agents.append(SB3PolicyAgent(item, name=type(item).__name__.lower()))
        else:
            raise TypeError(
                f"cannot evaluate {item!r}: pass an agent name (see `abgym evaluate --help`), an "
                "abgym.agents.base.Agent, or a trained Stable-Baselines3 model"
            )
    names = [a.name for a in agents]
    if len(set(names)) < len(names):
        raise ValueError(f"agent names must be unique within one evaluation, got {names}; set agent.name")
    return agents


# ---------------------------------------------------------------------------------------------- evaluate
def evaluate(
    policy: str | Agent | Any | Sequence[str | Agent | Any],
    env_id: str = DEFAULT_ENV,
    episodes: int | str = 20,
    seeds: Iterable[int] = (0,),
    *,
    env_kwargs: dict | None = None,
    agent_kwargs: dict | None = None,
    logdir: str | None = None,
    progress: bool = False,
    confidence: float = 0.95,
) -> EvaluationResult:
    """Play ``episodes`` episodes per seed with each policy; tidy per-episode table plus summary with CIs.

    ``policy`` is an agent name (``"thompson"``), an :class:`~abgym.agents.base.Agent`, a trained SB3 model, or
    a list of them (all meet the same experiments). ``episodes="all"`` replays every experiment of the env once
    per seed (ABTest-v0: ``reset(options={"experiment_index": i})``) instead of drawing them at random.
    ``env_kwargs`` go to ``gymnasium.make`` (for example
    ``{"split": "test"}``); ``logdir`` writes TensorBoard and CSV logs per agent through SB3's logger.
    """
    import gymnasium

    import abgym  # noqa: F401  (registers the environment ids)

    seeds = [int(s) for s in seeds]
    agents = resolve_agents(policy, agent_kwargs)
    env = gymnasium.make(env_id, **(env_kwargs or {}))
    every_experiment = episodes == "all"
    if every_experiment:
        if not hasattr(env.unwrapped, "experiments"):
            env.close()
            raise ValueError(f"episodes='all' needs an environment with a list of experiments; {env_id} has none")
        episodes = len(env.unwrapped.experiments)
    if not isinstance(episodes, int) or episodes < 1 or not seeds:
        env.close()
        raise ValueError(f"need at least one episode (or 'all') and one seed, got episodes={episodes!r}, seeds={seeds}")
    rows, curves = [], {}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        # disable=None: no bar when stderr is not a terminal (CI logs)
        bar = tqdm(total=len(agents) * len(seeds) * episodes, desc="evaluating", unit="episode", disable=None)
    try:
        for agent in agents:
            logger = _episode_logger(logdir, agent.name)
            agent_curves, total_steps = [], 0
            for seed in seeds:
                for episode in range(episodes):
                    started = time.perf_counter()
                    env_seed = episode_seed(seed, episode)
                    tracker, reset_info, last_info, true_ctr = run_episode(
                        agent, env, env_seed, episode_seed(seed, episode, stream=1),
                        {"experiment_index": episode} if every_experiment else None,
                    )
                    row = _episode_row(agent, tracker, reset_info, last_info, true_ctr)
                    row.update(seed=seed, episode=episode, env_seed=env_seed, seconds=time.perf_counter() - started)
                    rows.append(row)
                    agent_curves.append(tracker.curve())
                    total_steps += tracker.steps
                    if logger is not None:
                        from abgym.tensorboard import log_episode

                        log_episode(logger, row, total_steps)
                    if bar is not None:
                        bar.update(1)
            curves[agent.name] = np.vstack(agent_curves)
            if logger is not None:
                logger.close()
    finally:
        env.close()
        if bar is not None:
            bar.close()
    table = pd.DataFrame(rows, columns=EPISODE_COLUMNS)
    return EvaluationResult(table, summarize(table, confidence), curves)


def _episode_row(agent: Agent, tracker: EpisodeTracker, reset_info: dict, last_info: dict, true_ctr) -> dict:
    winner = agent.declared_winner()
    if true_ctr is not None:
        true_ctr = np.asarray(true_ctr, dtype=float)
        best = float(true_ctr.max())
        correct = winner is not None and bool(true_ctr[winner] >= best)
        oracle_clicks = best * tracker.traffic
        relative_regret = tracker.regret / oracle_clicks if oracle_clicks > 0 else math.nan
    else:
        correct = winner is not None and winner == last_info.get("best_arm")
        relative_regret = math.nan
    return dict(
        agent=agent.name,
        test_id=str(reset_info.get("test_id", "")),
        n_arms=int(reset_info.get("n_arms", agent.n_arms)),
        steps=tracker.steps,
        traffic=int(tracker.traffic),
        reward=tracker.reward,
        regret=tracker.regret,
        relative_regret=relative_regret,
        best_arm_share=tracker.best_arm_share,
        declared_winner=-1 if winner is None else int(winner),
        declared=winner is not None,
        winner_correct=correct,
    )


def _episode_logger(logdir, name: str):
    if logdir is None:
        return None
    from abgym.tensorboard import configure_logger

    return configure_logger(logdir, name)


# ---------------------------------------------------------------------------------------------- summaries
def mean_ci(values, confidence: float = 0.95, clusters=None) -> tuple[float, float, float]:
    """Mean and Student-t confidence interval over episodes (NaN interval for a single episode).

    With ``clusters`` (for example the experiment id of each episode), the standard error is cluster-robust:
    replays of one experiment under several seeds are correlated, and treating them as independent would make
    the interval too narrow. Degrees of freedom are then the number of clusters minus one.
    """
    from scipy.stats import t

    values = np.asarray(values, dtype=float)
    keep = np.isfinite(values)
    values = values[keep]
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    se, dof = _standard_error(values, None if clusters is None else np.asarray(clusters)[keep])
    if not np.isfinite(se) or dof < 1:
        return mean, math.nan, math.nan
    half = float(t.ppf(0.5 + confidence / 2, dof) * se)
    return mean, mean - half, mean + half


def _standard_error(values: np.ndarray, clusters) -> tuple[float, int]:
    n = len(values)
    if clusters is None or len(set(clusters.tolist())) == n:
        return (float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan), n - 1
    sums = pd.Series(values - values.mean()).groupby(clusters).sum().to_numpy()
    g = len(sums)
    if g < 2:
        return math.nan, 0
    return float(math.sqrt(g / (g - 1) * np.sum(sums**2)) / n), g - 1


def curve_band(curves: np.ndarray, clusters=None, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Mean curve and the half-width of its pointwise confidence band, cluster-robust like :func:`mean_ci`."""
    from scipy.stats import t

    curves = np.asarray(curves, dtype=float)
    n = len(curves)
    mean = curves.mean(axis=0)
    if n < 2:
        return mean, np.full_like(mean, np.nan)
    if clusters is None or len(set(np.asarray(clusters).tolist())) == n:
        se, dof = curves.std(axis=0, ddof=1) / math.sqrt(n), n - 1
    else:
        sums = pd.DataFrame(curves - mean).groupby(np.asarray(clusters)).sum().to_numpy()
        g = len(sums)
        se, dof = np.sqrt(g / (g - 1) * np.sum(sums**2, axis=0)) / n, g - 1
    return mean, t.ppf(0.5 + confidence / 2, dof) * se


def wilson_ci(successes: int, n: float, confidence: float = 0.95) -> tuple[float, float, float]:
    """Proportion and Wilson score interval (well-behaved near 0 and 1, unlike the normal interval).

    ``n`` may be an effective sample size (fewer than the episodes when they are clustered).
    """
    from scipy.stats import norm

    if n == 0:
        return math.nan, math.nan, math.nan
    z = float(norm.ppf(0.5 + confidence / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return p, max(0.0, centre - half), min(1.0, centre + half)


def clustered_wilson_ci(outcomes, clusters, confidence: float = 0.95) -> tuple[float, float, float]:
    """Wilson interval with the design-effect-adjusted sample size n / deff for clustered yes/no outcomes."""
    outcomes = np.asarray(outcomes, dtype=float)
    n = len(outcomes)
    if n == 0:
        return math.nan, math.nan, math.nan
    p = float(outcomes.mean())
    n_clusters = len(set(np.asarray(clusters).tolist()))
    if n_clusters == n:
        n_eff = float(n)
    elif 0 < p < 1:
        se_cluster, _ = _standard_error(outcomes, np.asarray(clusters))
        deff = max(se_cluster**2 / (p * (1 - p) / n), 1.0)
        n_eff = n / deff
    else:
        n_eff = float(n_clusters)  # no variation to estimate the design effect from: count each cluster once
    _, low, high = wilson_ci(p * n_eff, n_eff, confidence)
    return p, low, high


def summarize(episodes: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """One row per agent: means with 95 % intervals, clustered by experiment (``test_id``) where it repeats."""
    rows = []
    for agent, group in episodes.groupby("agent", sort=False):
        row: dict[str, Any] = {"agent": agent, "episodes": len(group)}
        clusters = group["test_id"].to_numpy()
        for metric in METRICS:
            mean, low, high = mean_ci(group[metric], confidence, clusters)
            if metric in BOUNDED:  # a t-interval on a share can spill past [0, 1]
                low, high = max(low, 0.0), min(high, 1.0)
            row[f"{metric}_mean"], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = mean, low, high
        (row["winner_accuracy"], row["winner_accuracy_ci_low"], row["winner_accuracy_ci_high"]) = (
            clustered_wilson_ci(group["winner_correct"], clusters, confidence)
        )
        row["declared_rate"] = float(group["declared"].mean())
        row["seconds"] = float(group["seconds"].sum())
        rows.append(row)
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def display_table(summary: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """The summary as strings 'mean [low, high]', one column per metric, for printing and Markdown."""

    def interval(row, metric, scale=1.0, fmt=None):
        fmt = fmt or f"{{:.{digits}g}}"
        mean, low, high = (row[f"{metric}_{p}"] * scale for p in ("mean", "ci_low", "ci_high"))
        if not np.isfinite(mean):
            return "n/a"
        if not np.isfinite(low):
            return fmt.format(mean)
        return f"{fmt.format(mean)} [{fmt.format(low)}, {fmt.format(high)}]"

    table = pd.DataFrame({"agent": summary["agent"], "episodes": summary["episodes"]})
    table["reward (clicks)"] = [interval(r, "reward", fmt="{:.1f}") for _, r in summary.iterrows()]
    table["regret (clicks)"] = [interval(r, "regret", fmt="{:.1f}") for _, r in summary.iterrows()]
    table["regret %"] = [interval(r, "relative_regret", 100, "{:.2f}") for _, r in summary.iterrows()]
    table["traffic on best %"] = [interval(r, "best_arm_share", 100, "{:.1f}") for _, r in summary.iterrows()]
    acc = summary.rename(
        columns={"winner_accuracy": "winner_accuracy_mean"}
    )
    table["winner accuracy %"] = [interval(r, "winner_accuracy", 100, "{:.0f}") for _, r in acc.iterrows()]
    table["declared %"] = [f"{100 * v:.0f}" for v in summary["declared_rate"]]
    return table


def summary_markdown(summary: pd.DataFrame, digits: int = 3) -> str:
    table = display_table(summary, digits)
    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---" if c == "agent" else "---:" for c in table.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"


def print_summary(summary: pd.DataFrame, title: str = "abgym evaluation", console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    table = display_table(summary)
    rich_table = Table(title=title, caption="mean [95% CI] over episodes")
    for column in table.columns:
        rich_table.add_column(column, justify="left" if column == "agent" else "right")
    for row in table.itertuples(index=False):
        rich_table.add_row(*(str(v) for v in row))
    (console or Console()).print(rich_table)
