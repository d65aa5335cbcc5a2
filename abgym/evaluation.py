"""Evaluate any agent or SB3 model on any abgym env: one tidy row per episode, a summary with 95 % intervals.

Every agent meets the same episodes and the same environment seeds (episode ``e`` of seed ``s`` resets the env with
a seed derived from ``(s, e)``), so differences between agents are paired, not luck of the draw. The metrics come
from the env's standard step info keys (:mod:`abgym.env_metrics`), so the evaluator serves ABTest-v0,
PersonalizedMarketing-v0, CustomerJourney-v0 and PromptPersonalization-v0 alike, and a metric the env cannot give
is NaN (left out of the printed table).

Metrics per episode:

* ``reward``: the env's reward, summed (clicks on ABTest-v0);
* ``regret``: expected reward lost against the oracle: ``max(info["expected_rewards"]) - expected[action]`` summed
  (the per-user oracle of the marketing envs), or ABTest-v0's ``expected_regret`` (always showing the best arm);
* ``relative_regret``: regret as a share of the oracle's expected reward over the episode;
* ``best_arm_share``: share of the traffic shown a best action;
* ``ctr``, ``conversion_rate``: clicks and conversions per impression; ``revenue``: summed;
* ``ndcg@10``: the ranking quality at the episode's last step (the final prompt, PromptPersonalization-v0);
* ``winner_correct``: the agent's declared winner is a best arm (ABTest-v0; NaN where the env has no single best
  arm), ``declared``: it declared one at all.

A/B agents (:class:`abgym.agents.base.Agent`) count clicks among impressions: on a per-user env they learn from
``info["click"]``, elsewhere from the reward where it is a share in [0, 1]; on a ``MultiDiscrete`` env their arm
``i`` is the ``i``-th combination of the parts (:class:`ActionCodec`).
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
    "relative_regret", "best_arm_share", "clicks", "ctr", "conversions", "conversion_rate", "revenue", "ndcg@10",
    "declared_winner", "declared", "winner_correct", "seconds",
]
METRICS = ["reward", "regret", "relative_regret", "best_arm_share", "ctr", "conversion_rate", "revenue", "ndcg@10"]
BOUNDED = {"relative_regret", "best_arm_share", "ctr", "conversion_rate", "ndcg@10"}  # shares in [0, 1]
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


class ActionCodec:
    """Agents choose one arm index; a ``MultiDiscrete`` env (PromptPersonalization-v0) takes one entry per part.

    Arm ``i`` is the ``i``-th combination in C order (``numpy.unravel_index``), so that every A/B agent works on any
    env with a finite action set. SB3 models act in the env's own action space and pass through unchanged.
    """

    def __init__(self, space):
        from gymnasium import spaces

        if isinstance(space, spaces.Discrete):
            self.sizes, self.n_arms = None, int(space.n)
        elif isinstance(space, spaces.MultiDiscrete):
            self.sizes = tuple(int(n) for n in np.asarray(space.nvec).ravel())
            self.n_arms = int(np.prod(self.sizes))
        else:
            raise ValueError(f"the evaluator needs a Discrete or MultiDiscrete action space, got {space}")

    def to_env(self, arm):
        if self.sizes is None:
            return int(arm)
        return np.array(np.unravel_index(int(arm), self.sizes), dtype=np.int64)


def _learning_signal(reward: float, info: dict) -> tuple[float, dict]:
    """What a Bernoulli A/B agent counts: ABTest-v0's clicks among its batch as they are; on a per-user env the
    user's ``click`` (one impression), since a weighted reward is not a click count; else the reward itself, which
    must then be a share in [0, 1] (NDCG)."""
    if "impressions" in info:
        return reward, info
    if "click" in info:
        return float(info["click"]), {**info, "impressions": 1}
    return reward, {**info, "impressions": 1}


def _needs_reset(reset_info: dict, previous: dict | None) -> bool:
    """A new campaign: the first episode, an env that replays a recorded experiment per episode (ABTest-v0), or
    other arms (their test id or number differ)."""
    if previous is None or "experiment_index" in reset_info:
        return True
    return any(reset_info.get(key) != previous.get(key) for key in ("test_id", "n_arms"))


def run_episode(agent, env, env_seed: int, agent_seed: int, reset_options: dict | None = None, *,
                reset_agent: bool | str = True, previous_info: dict | None = None, codec: ActionCodec | None = None):
    """Play one episode; returns the tracker, the reset info, the last step's info and the env's true click rates
    (if it exposes them). ``reset_agent=False`` keeps what the agent learnt in earlier episodes; ``"auto"`` resets
    it when the campaign differs from ``previous_info``'s (see :func:`evaluate`)."""
    observation, info = env.reset(seed=env_seed, options=reset_options)
    if reset_agent == "auto":
        reset_agent = _needs_reset(info, previous_info)
    codec = codec or ActionCodec(env.action_space)
    info = dict(info)
    unwrapped = env.unwrapped  # the settings: the env's config (the RPP Gymnasium view keeps it on its ParallelEnv)
    config = getattr(unwrapped, "config", None) or getattr(getattr(unwrapped, "parallel", None), "config", None) or {}
    info.setdefault("n_arms", codec.n_arms)
    horizon = (config.get("horizon") or config.get("rounds")) if isinstance(config, dict) else None
    if "horizon" not in info and horizon:
        info["horizon"] = horizon  # the fixed-horizon A/B test reads how long the episode is (steps)
    if reset_agent:
        agent.reset(int(info["n_arms"]), info, seed=agent_seed)
    tracker = EpisodeTracker()
    step_info = info
    native = getattr(agent, "native_actions", False)
    bernoulli = isinstance(agent, Agent) and not native
    while True:
        try:
            arm = agent.act(observation, step_info)
        except (KeyError, TypeError) as error:
            raise ValueError(f"agent {agent.name!r} cannot read this env's observation ({error}); the contextual "
                             "agents (linucb, lints, egreedy-linear) need the marketing envs' Dict observation "
                             "(user, context, memory, variants)") from error
        action = arm if native else codec.to_env(arm)
        observation, reward, terminated, truncated, step_info = env.step(action)
        tracker.step(reward, step_info, arm if codec.sizes is None else None)
        if bernoulli:
            signal, signal_info = _learning_signal(float(reward), step_info)
            agent.update(arm, signal, observation, signal_info)
        else:
            agent.update(arm, reward, observation, step_info)
        if terminated or truncated:
            break
    true_ctr = getattr(env.unwrapped, "true_ctr", None)
    return tracker, info, step_info, true_ctr


# ---------------------------------------------------------------------------------------------- policies
class SB3PolicyAgent(Agent):
    """Runs a trained Stable-Baselines3 model (MaskablePPO or any ``predict``) as an agent, deterministically.

    It acts in the env's own action space (``native_actions``) and learns nothing while evaluated."""

    native_actions = True

    def __init__(self, model, name: str = "ppo", obs_normalizer: Callable | None = None) -> None:
        super().__init__()
        self.model = model
        self.name = name
        self.obs_normalizer = obs_normalizer

    def act(self, observation, info: dict | None = None):
        obs = self.obs_normalizer(observation) if self.obs_normalizer else observation
        kwargs = {}
        if "action_masks" in self.model.predict.__code__.co_varnames:
            mask = (info or {}).get("action_mask")
            if mask is None and isinstance(observation, dict):
                mask = observation.get("action_mask")
            if mask is not None:
                kwargs["action_masks"] = np.asarray(mask, dtype=bool)
        action, _ = self.model.predict(obs, deterministic=True, **kwargs)
        action = np.asarray(action)
        from gymnasium import spaces

        if not isinstance(self.model.action_space, spaces.Discrete):
            return action.reshape(self.model.action_space.shape)
        action = int(action.reshape(-1)[0])
        # Without masking (A2C, plain PPO) a padded arm maps onto a real one, as in training
        # (abgym.wrappers.ValidActionWrapper).
        return action if kwargs else valid_action(action, self.valid)

    def update(self, action, reward, observation=None, info=None) -> None:
        self.t += 1  # a trained policy is evaluated as it is


def load_sb3_model(path) -> SB3PolicyAgent:
    """An evaluation agent for a Stable-Baselines3 model file: any SB3 or sb3-contrib algorithm saved with
    ``model.save``; a ``vecnormalize.pkl`` beside it (as ``abgym train`` writes) normalises the observations."""
    import io
    import pickle
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model at {path}; train one with `abgym train --logdir runs/` or SB3's model.save")
    import sb3_contrib
    import stable_baselines3
    from stable_baselines3.common.save_util import load_from_zip_file

    from abgym import checkpoint

    manifest = checkpoint.manifest_path(path)
    if manifest.exists():  # a checkpoint written by `abgym train`: read the verified set
        _, parts = checkpoint.read(path, kind="abgym-train", required=["vecnormalize.pkl"],
                                   what="a model saved by `abgym train`")
        model_bytes, stats = parts[path.name], parts["vecnormalize.pkl"]
    else:
        model_bytes = path.read_bytes()
        beside = path.with_name("vecnormalize.pkl")
        stats = beside.read_bytes() if beside.is_file() else None
    try:
        data, _, _ = load_from_zip_file(io.BytesIO(model_bytes), device="cpu", load_data=True)
        policy_class = data["policy_class"].__name__
    except Exception as error:  # a zip that SB3 cannot read, or not a zip at all
        raise ValueError(f"{path} is not a model saved by `abgym train` or by SB3's model.save "
                         f"({type(error).__name__}: {error})") from error
    if policy_class.startswith("Maskable"):
        cls = sb3_contrib.MaskablePPO
    elif "clip_range" in data:  # PPO saves its clipping schedule
        cls = stable_baselines3.PPO
    elif "exploration_rate" in data or "exploration_schedule" in data:
        cls = stable_baselines3.DQN
    else:
        cls = stable_baselines3.A2C
    model = cls.load(io.BytesIO(model_bytes), device="cpu")
    normalize = None
    if stats is not None:
        normalizer = pickle.loads(stats)
        normalizer.training = False
        normalize = normalizer.normalize_obs
    algo = cls.__name__.lower().removeprefix("maskable")  # MaskablePPO is PPO with masks
    return SB3PolicyAgent(model, name=f"{algo}:{path.parent.name}", obs_normalizer=normalize)


def _is_agent(item) -> bool:
    return all(callable(getattr(item, method, None)) for method in ("reset", "act", "update"))


def resolve_agents(policy, agent_kwargs: dict | None = None) -> list:
    """Accept an agent name, an agent (``reset``/``act``/``update``), a trained SB3 model or the path of one
    (a string ending in ``.zip``, or a ``pathlib.Path``), or a list of these."""
    from pathlib import Path

    from abgym.agents.registry import make_agent

    policies = list(policy) if isinstance(policy, (list, tuple)) else [policy]
    agents = []
    for item in policies:
        if isinstance(item, Path) or (isinstance(item, str) and item.endswith(".zip")):
            agents.append(load_sb3_model(item))
        elif isinstance(item, str):
            agents.append(make_agent(item, **(agent_kwargs or {})))
        elif hasattr(item, "predict") and not _is_agent(item):
            agents.append(SB3PolicyAgent(item, name=type(item).__name__.lower()))
        elif _is_agent(item):
            agents.append(item)
        else:
            raise TypeError(
                f"cannot evaluate {item!r}: pass an agent name (see `abgym evaluate --help`), an agent with "
                "reset/act/update, a trained Stable-Baselines3 model or its .zip file"
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
    agent_reset: str = "auto",
) -> EvaluationResult:
    """Play ``episodes`` episodes per seed with each policy; tidy per-episode table plus summary with CIs.

    ``policy`` is an agent name (``"thompson"``, ``"linucb"``), an agent, a trained SB3 model or its ``.zip``
    file, or a list of them (all meet the same episodes). ``episodes="all"`` replays every experiment of the env
    once per seed (ABTest-v0: ``reset(options={"experiment_index": i})``) instead of drawing them at random.
    ``env_kwargs`` go to ``gymnasium.make`` (for example ``{"split": "test"}``); ``logdir`` writes TensorBoard and
    CSV logs per agent through SB3's logger (the ``episode/*`` tags of :mod:`abgym.tensorboard`).

    ``agent_reset``: ``"episode"`` starts the agent afresh every episode; ``"seed"`` once per seed, so that it keeps
    learning across episodes (a campaign's users, CustomerJourney-v0's journeys, PromptPersonalization-v0's
    users); ``"auto"`` resets it when the campaign changes: every episode of ABTest-v0 (a recorded experiment per
    episode), else when the reset info's ``test_id`` or ``n_arms`` differ from the last episode's.
    """
    import gymnasium

    import abgym  # noqa: F401  (registers the environment ids)

    if agent_reset not in ("auto", "episode", "seed"):
        raise ValueError(f"agent_reset must be 'auto', 'episode' or 'seed', got {agent_reset!r}")
    seeds = [int(s) for s in seeds]
    agents = resolve_agents(policy, agent_kwargs)
    try:
        env = gymnasium.make(env_id, **(env_kwargs or {}))
    except gymnasium.error.Error as error:  # an unknown id, a missing version
        from abgym.envs.registration import env_ids

        raise ValueError(f"cannot make {env_id!r} ({error}); registered abgym ids: {', '.join(env_ids())}") from error
    codec = ActionCodec(env.action_space)
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
                previous = None
                for episode in range(episodes):
                    started = time.perf_counter()
                    env_seed = episode_seed(seed, episode)
                    options = {"experiment_index": episode} if every_experiment else None
                    reset = True if episode == 0 or agent_reset == "episode" else (
                        False if agent_reset == "seed" else "auto")
                    tracker, reset_info, last_info, true_ctr = run_episode(
                        agent, env, env_seed, episode_seed(seed, episode, stream=1), options,
                        reset_agent=reset, previous_info=previous, codec=codec,
                    )
                    previous = reset_info
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


def _episode_row(agent, tracker: EpisodeTracker, reset_info: dict, last_info: dict, true_ctr) -> dict:
    declared = getattr(agent, "declared_winner", lambda: None)
    winner = declared()
    if true_ctr is not None:
        true_ctr = np.asarray(true_ctr, dtype=float)
        best = float(true_ctr.max())
        correct = float(winner is not None and bool(true_ctr[winner] >= best))
        oracle = best * tracker.traffic
    else:
        correct = float(winner == last_info["best_arm"]) if "best_arm" in last_info and winner is not None else (
            0.0 if "best_arm" in last_info else math.nan)
        oracle = tracker.total("oracle")
    regret = tracker.total("regret")
    relative_regret = regret / oracle if np.isfinite(oracle) and oracle > 0 else math.nan
    return {
        "agent": agent.name,
        "test_id": str(reset_info.get("test_id", reset_info.get("user_id", "")) or ""),
        "n_arms": int(reset_info.get("n_arms", getattr(agent, "n_arms", 0))),
        "steps": tracker.steps,
        "traffic": int(tracker.traffic),
        "reward": tracker.reward,
        "regret": regret,
        "relative_regret": relative_regret,
        "best_arm_share": tracker.best_arm_share,
        "clicks": tracker.total("clicks"),
        "ctr": tracker.ctr,
        "conversions": tracker.total("conversions"),
        "conversion_rate": tracker.conversion_rate,
        "revenue": tracker.total("revenue"),
        "ndcg@10": tracker.ndcg,
        "declared_winner": -1 if winner is None else int(winner),
        "declared": winner is not None,
        "winner_correct": correct,
    }


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
        if len(set(clusters.tolist())) < 2:  # one campaign throughout (PersonalizedMarketing-v0): no clusters
            clusters = None
        for metric in METRICS:
            mean, low, high = mean_ci(group[metric], confidence, clusters)
            if metric in BOUNDED:  # a t-interval on a share can spill past [0, 1]
                low, high = max(low, 0.0), min(high, 1.0)
            row[f"{metric}_mean"], row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = mean, low, high
        judged = np.isfinite(group["winner_correct"].to_numpy(dtype=float))  # NaN: no single best arm to judge
        (row["winner_accuracy"], row["winner_accuracy_ci_low"], row["winner_accuracy_ci_high"]) = (
            clustered_wilson_ci(group["winner_correct"].to_numpy(dtype=float)[judged],
                                np.arange(judged.sum()) if clusters is None else clusters[judged], confidence)
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
    acc = summary.rename(columns={"winner_accuracy": "winner_accuracy_mean"})
    columns = [("reward", "reward", 1.0, "{:.1f}"), ("regret", "regret", 1.0, "{:.1f}"),
               ("regret %", "relative_regret", 100, "{:.2f}"), ("traffic on best %", "best_arm_share", 100, "{:.1f}"),
               ("CTR %", "ctr", 100, "{:.2f}"), ("conversion %", "conversion_rate", 100, "{:.2f}"),
               ("revenue", "revenue", 1.0, "{:.1f}"), ("NDCG@10", "ndcg@10", 1.0, "{:.3f}"),
               ("winner accuracy %", "winner_accuracy", 100, "{:.0f}")]
    for label, metric, scale, fmt in columns:
        if not np.isfinite(acc[f"{metric}_mean"].to_numpy(dtype=float)).any():
            continue  # the env does not report what this metric needs
        table[label] = [interval(r, metric, scale, fmt) for _, r in acc.iterrows()]
    if "winner accuracy %" in table:
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
