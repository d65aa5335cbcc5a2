"""The comparison of arXiv 2506.06316 on PersonalizedMarketing-v0: classical A/B vs contextual bandits vs RL.

Every agent meets the same users (same env seeds) for a fixed budget of arrivals and learns online, as it would in
production: what it earns while learning is what it is scored on. Metrics per run: CTR, conversion rate, revenue
per arrival, cumulative regret against the per-user oracle (the env's ``expected_rewards``), and, with drift on,
how it recovers after each regime shift (regret in the window after the shift, and arrivals until its windowed
regret is back to its pre-shift level). Mean and 95% t-interval over seeds.

    python experiments/marketing_comparison.py --quick --out results/marketing-quick   # same as the line below
    abgym marketing compare --seeds 5 --arrivals 3000 --out results/marketing

Outputs in ``--out``: ``per_run.csv`` (one row per agent, drift and seed), ``summary.csv`` and ``summary.md``
(mean and 95% interval), ``curves.npz`` (cumulative regret per step), ``regret_drift-*.png`` (cumulative regret,
regime shifts marked), ``reward.png`` (revenue per arrival per agent) and ``runs/`` (TensorBoard: every agent and
seed; the RL agents add SB3's training curves).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ENV_ID = "abgym/PersonalizedMarketing-v0"
RL_AGENTS = {"ppo", "a2c", "ppo+mare", "ppo+mare-input", "ppo+mare-shaping", "ppo+mare-nomem"}
MAIN_AGENTS = ["classical_ab", "egreedy", "linucb", "lints", "ppo", "ppo+mare"]
PRIOR_AGENTS = {"egreedy", "linucb", "lints", "linucb-shared"}
EXTRA_AGENTS = ["linucb-shared", "mabwiser-linucb", "ppo+mare-input", "ppo+mare-shaping", "ppo+mare-nomem", "a2c"]
ALL_AGENTS = MAIN_AGENTS + EXTRA_AGENTS


@dataclass
class ComparisonConfig:
    agents: list[str] = field(default_factory=lambda: list(MAIN_AGENTS))
    seeds: list[int] = field(default_factory=lambda: [100, 101, 102, 103, 104])  # 0-2 were used for tuning
    arrivals: int = 3000
    drift: list[str] = field(default_factory=lambda: ["off", "on"])
    prior: str = "auto"                 # "auto": with and without the ranker prior if it can be loaded; "on"; "off"
    env_config: dict = field(default_factory=dict)
    recovery_window: int = 200
    test_fraction: float = 0.2          # classical A/B: share of the budget spent on the uniform test
    out: Path = Path("results/marketing")
    tensorboard: bool = True
    log_every: int = 50
    backend: str = "serial"             # "serial" or "ray": how the (agent, seed, drift) cells run (abgym.parallel)
    address: str | None = None          # with "ray": an existing cluster's address; None starts a local instance


# ----------------------------------------------------------------------------------------------------- the env
def make_env(config: ComparisonConfig, drift: str, seed: int):
    import gymnasium

    import abgym  # noqa: F401 - registers the env ids

    env_config = {**config.env_config, "drift": drift == "on", "horizon": config.arrivals}
    return gymnasium.make(ENV_ID, config=env_config)


class OnlineRecorder:
    """Per-arrival outcomes of one run, read from the env's info: what the agent earned while it learnt."""

    def __init__(self, n_steps: int, writer=None, log_every: int = 50):
        self.regret = np.zeros(n_steps)
        self.reward = np.zeros(n_steps)
        self.click = np.zeros(n_steps)
        self.conversion = np.zeros(n_steps)
        self.revenue = np.zeros(n_steps)
        self.chosen_expected = np.zeros(n_steps)
        self.shifts: list[int] = []
        self.t = 0
        self.writer, self.log_every = writer, log_every

    def record(self, action: int, reward: float, info: dict) -> None:
        if self.t >= self.regret.size:
            return
        expected = np.asarray(info["expected_rewards"], dtype=np.float64)
        t = self.t
        self.regret[t] = expected.max() - expected[action]
        self.chosen_expected[t] = expected[action]
        self.reward[t] = reward
        self.click[t] = float(info.get("click", 0.0))
        self.conversion[t] = float(info.get("conversion", 0.0))
        self.revenue[t] = float(info.get("revenue", reward))
        if info.get("regime_shift"):
            self.shifts.append(t)
        self.t += 1
        if self.writer is not None and self.t % self.log_every == 0:
            n = self.t
            # The project's tag scheme (docs/CONTRACTS.md): env/* are means per arrival since the last write.
            window = slice(max(0, n - self.log_every), n)
            for tag, values in (("env/reward", self.reward), ("env/regret", self.regret), ("env/ctr", self.click),
                                ("env/conversion_rate", self.conversion), ("env/revenue", self.revenue)):
                self.writer.add_scalar(tag, float(values[window].mean()), n)
            self.writer.add_scalar("env/cumulative_regret", float(self.regret[:n].sum()), n)


def recorder_wrapper(env, recorder: OnlineRecorder):
    """Wrap ``env`` so that every step is recorded (innermost, so the real reward is what is recorded)."""
    import gymnasium

    class Recording(gymnasium.Wrapper):
        def step(self, action):
            observation, reward, terminated, truncated, info = self.env.step(action)
            recorder.record(int(action), float(reward), info)
            return observation, reward, terminated, truncated, info

    return Recording(env)


# -------------------------------------------------------------------------------------------------- the agents
def load_prior():
    """The ranker's prior (engineer D's ``RankerPrior.default()``), or None with the reason."""
    try:
        from abgym.ranker.prior import RankerPrior
    except ImportError as error:
        return None, f"abgym.ranker.prior is not available ({error})"
    try:
        return RankerPrior.default(), "RankerPrior.default()"
    except Exception as error:  # noqa: BLE001 - any failure means: run without the prior, and say why
        return None, f"RankerPrior.default() failed: {type(error).__name__}: {error}"


def prior_scale_for(env) -> float:
    """Expected reward per click under the env's reward, so that a CTR prior is on the scale of the reward."""
    config = getattr(env.unwrapped, "config", {})
    kind, weights = config.get("reward", "click"), config.get("reward_weights", {})
    conversion_rate = config.get("conversion_rate", 0.1)
    revenue = config.get("revenue_mean", 0.0) * np.exp(config.get("revenue_sigma", 0.0) ** 2 / 2)
    if kind == "click":
        return 1.0
    if kind == "conversion":
        return conversion_rate
    if kind == "revenue":
        return conversion_rate * revenue
    return (weights.get("click", 0.0) + conversion_rate * (weights.get("conversion", 0.0)
                                                           + weights.get("revenue", 0.0) * revenue))


def make_bandit(name: str, seed: int, config: ComparisonConfig, prior=None, prior_scale: float = 1.0):
    from abgym.agents.contextual import LinearEpsilonGreedy, LinearThompson, LinUCB
    from abgym.agents.personalized_ab import ClassicalABTest

    # Tuned on seeds 0-2, 2000 arrivals, drift off (the comparison runs seeds 100+): interactions need a strong
    # ridge penalty, because personal deviations are small next to the noise of a reward made of rare conversions.
    common = dict(seed=seed, prior=prior, prior_scale=prior_scale, interaction_l2=3000.0)
    if name == "classical_ab":
        return ClassicalABTest(test_arrivals=max(1, int(config.test_fraction * config.arrivals)), seed=seed)
    if name == "egreedy":
        return LinearEpsilonGreedy(epsilon=0.05, model="disjoint", **common)
    if name == "linucb":
        return LinUCB(alpha=0.5, model="disjoint", **common)
    if name == "linucb-shared":
        return LinUCB(alpha=0.5, model="shared", **common)
    if name == "lints":
        return LinearThompson(v=0.5, model="disjoint", **common)
    if name == "mabwiser-linucb":
        return MabwiserLinUCB(alpha=0.5, seed=seed)
    raise ValueError(f"unknown agent {name!r}; choose from {ALL_AGENTS}")


class MabwiserLinUCB:
    """MABWiser's LinUCB (disjoint, one ridge penalty: the peer of our LinUCB with ``interaction_l2=l2``)."""

    name = "mabwiser-linucb"

    def __init__(self, alpha: float = 0.5, l2: float = 1.0, seed: int = 0):
        from abgym.agents.features import FeatureMap

        self.alpha, self.l2, self.seed = alpha, l2, seed
        self.features = FeatureMap(model="disjoint")

    def reset(self, n_arms, info=None, seed=None):
        from mabwiser.mab import MAB, LearningPolicy

        self.n_arms = n_arms
        self.mab = MAB(list(range(n_arms)), LearningPolicy.LinUCB(alpha=self.alpha, l2_lambda=self.l2),
                       seed=self.seed if seed is None else seed)
        self.fitted = False
        self.t = 0

    def act(self, observation, info=None):
        self._x = self.features.context(observation)[None]
        if not self.fitted:  # MABWiser cannot predict before its first fit: round robin until every arm has data
            return self.t % self.n_arms
        return int(self.mab.predict(self._x))

    def update(self, action, reward, observation=None, info=None):
        if not self.fitted:
            self._warm = getattr(self, "_warm", []) + [(action, reward, self._x[0])]
            if len(self._warm) >= self.n_arms:
                actions, rewards, contexts = zip(*self._warm)
                self.mab.fit(list(actions), list(rewards), np.array(contexts))
                self.fitted = True
        else:
            self.mab.partial_fit([action], [reward], self._x)
        self.t += 1


def run_bandit(agent, env, seed: int, recorder: OnlineRecorder, n_arrivals: int) -> None:
    observation, info = env.reset(seed=seed)
    agent.reset(env.action_space.n, info, seed=seed)
    for _ in range(n_arrivals):
        action = agent.act(observation, info)
        observation, reward, terminated, truncated, info = env.step(action)
        recorder.record(action, float(reward), info)
        agent.update(action, float(reward), observation, info)
        if terminated or truncated:
            observation, info = env.reset()


def run_rl(name: str, env, seed: int, n_arrivals: int, tensorboard_dir: Path | None):
    import torch

    from abgym.agents.actor_critic import ActorCriticAgent

    torch.set_num_threads(1)
    algorithm = "a2c" if name == "a2c" else "ppo"
    estimator = {"ppo+mare": "both", "ppo+mare-input": "input", "ppo+mare-shaping": "shaping",
                 "ppo+mare-nomem": "both"}.get(name)
    agent = ActorCriticAgent(env, algorithm, estimator=estimator, use_memory=name != "ppo+mare-nomem", seed=seed,
                             tensorboard_log=str(tensorboard_dir) if tensorboard_dir else None)
    agent.learn(n_arrivals, tb_log_name="sb3")
    return agent


# ------------------------------------------------------------------------------------------------------ metrics
def recovery(regret: np.ndarray, shifts: list[int], window: int) -> tuple[float, float]:
    """Mean over shifts of (regret per arrival in the ``window`` after it, arrivals until recovered).

    Recovered: the mean regret over the next ``window`` arrivals is back to the pre-shift level (the mean over the
    ``window`` before the shift, plus 10% of the post-shift peak window's excess). Censored at the next shift or the
    end of the run (the censoring point is reported, so a never-recovering agent scores the whole interval).
    """
    if not shifts:
        return float("nan"), float("nan")
    post, times = [], []
    bounds = list(shifts[1:]) + [regret.size]
    cumulative = np.concatenate([[0.0], np.cumsum(regret)])
    for shift, end in zip(shifts, bounds):
        if shift < window or shift + window > end:
            continue
        before = regret[shift - window:shift].mean()
        starts = np.arange(shift, end - window + 1)
        windowed = (cumulative[starts + window] - cumulative[starts]) / window
        post.append(windowed[0])
        threshold = before + 0.1 * max(windowed[0] - before, 0.0)
        recovered = np.flatnonzero(windowed <= threshold + 1e-12)
        times.append(float(recovered[0] if recovered.size else end - shift))
    if not post:
        return float("nan"), float("nan")
    return float(np.mean(post)), float(np.mean(times))


def run_metrics(recorder: OnlineRecorder, window: int) -> dict:
    n = recorder.t
    post_shift, recovery_arrivals = recovery(recorder.regret[:n], recorder.shifts, window)
    return {"arrivals": n, "ctr": recorder.click[:n].mean(), "conversion": recorder.conversion[:n].mean(),
            "revenue": recorder.revenue[:n].mean(), "cumulative_regret": recorder.regret[:n].sum(),
            "regret_last_quarter": recorder.regret[3 * n // 4:n].mean(), "n_shifts": len(recorder.shifts),
            "post_shift_regret": post_shift, "recovery_arrivals": recovery_arrivals}


METRICS = ["ctr", "conversion", "revenue", "cumulative_regret", "regret_last_quarter", "post_shift_regret",
           "recovery_arrivals"]


def mean_interval(values) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (nan-aware)."""
    from scipy import stats

    values = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
    if values.size == 0:
        return float("nan"), float("nan")
    if values.size == 1:
        return float(values[0]), float("nan")
    half = stats.t.ppf(0.975, values.size - 1) * values.std(ddof=1) / np.sqrt(values.size)
    return float(values.mean()), float(half)


# --------------------------------------------------------------------------------------------------- the runner
def agent_variants(config, prior_available: bool, known=None, prior_agents=None) -> list[tuple[str, bool]]:
    """(agent, with_prior) pairs of the study: with and without the ranker prior where it applies (``--prior``).

    ``known`` and ``prior_agents`` default to this study's agents; the journey comparison passes its own."""
    known = ALL_AGENTS if known is None else known
    prior_agents = PRIOR_AGENTS if prior_agents is None else prior_agents
    variants = []
    for name in config.agents:
        if name not in known:
            raise ValueError(f"unknown agent {name!r}; choose from {known}")
        if config.prior in ("off", "auto") or name not in prior_agents:
            variants.append((name, False))
        if name in prior_agents and config.prior in ("on", "auto") and prior_available:
            variants.append((name, True))
    return variants


def study_cells(config: ComparisonConfig, variants: list[tuple[str, bool]]) -> list[tuple]:
    """The study's cells, (drift, agent, with_prior, seed), in the order of the tables and the serial run."""
    return [(drift, name, with_prior, seed) for drift in config.drift for name, with_prior in variants
            for seed in config.seeds]


_PRIORS: dict = {}


def cell_prior():
    """The ranker prior for the cells of this process, loaded once per process (a Ray worker loads its own from
    ``$ABGYM_CACHE_DIR/ranker``, which the driver has just written, or refits it on a node without that file)."""
    if "prior" not in _PRIORS:
        _PRIORS["prior"] = load_prior()[0]
    return _PRIORS["prior"]


def cell_run_dir(out, drift: str, label: str, seed: int, tensorboard: bool):
    """One run's TensorBoard folder and writer (None, None without TensorBoard): the layout both comparisons share."""
    if not tensorboard:
        return None, None
    from torch.utils.tensorboard import SummaryWriter

    run_dir = Path(out) / "runs" / f"drift-{drift}" / label / f"seed{seed}"
    return run_dir, SummaryWriter(str(run_dir))


def run_cell(config: ComparisonConfig, drift: str, name: str, with_prior: bool, seed: int) -> dict:
    """One (agent, seed, drift) run from its arguments alone, so that it gives the same result in any process.

    Returns the per-run row, the cumulative-regret and revenue curves and the regime shifts; TensorBoard runs are
    written under ``config.out`` (an absolute path: a Ray worker does not share the driver's working directory)."""
    label = name + ("+prior" if with_prior else "")
    run_dir, writer = cell_run_dir(config.out, drift, label, seed, config.tensorboard)
    recorder = OnlineRecorder(config.arrivals, writer, config.log_every)
    env = make_env(config, drift, seed)
    run_started = time.perf_counter()
    if name in RL_AGENTS:
        env.reset(seed=seed)  # seeds the env's generator; SB3 resets it again with its own seed
        run_rl(name, recorder_wrapper(env, recorder), seed, config.arrivals, run_dir)
    else:
        prior = cell_prior() if with_prior else None
        agent = make_bandit(name, seed, config, prior, prior_scale_for(env))
        run_bandit(agent, env, seed, recorder, config.arrivals)
    seconds = time.perf_counter() - run_started
    env.close()
    if writer is not None:
        writer.close()
    metrics = run_metrics(recorder, config.recovery_window)
    return {"row": {"agent": label, "drift": drift, "seed": seed, **metrics, "seconds": seconds},
            "regret": np.cumsum(recorder.regret[:recorder.t]), "revenue": recorder.revenue[:recorder.t],
            "shifts": list(recorder.shifts)}


def run_comparison(config: ComparisonConfig, log=print) -> dict:
    from dataclasses import replace

    from abgym.parallel import check_backend, map_cells

    check_backend(config.backend, config.address)
    out = Path(config.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    config = replace(config, out=out)
    prior, prior_note = (None, "off") if config.prior == "off" else load_prior()
    if config.prior == "on" and prior is None:
        raise RuntimeError(f"--prior on, but the ranker prior cannot be loaded: {prior_note}")
    if prior is not None:
        _PRIORS["prior"] = prior
    log(f"ranker prior: {prior_note if prior is not None else 'not used (' + prior_note + ')'}")
    cells = study_cells(config, agent_variants(config, prior is not None))
    done: list[dict] = []
    started = time.perf_counter()

    def finished(index: int, result: dict) -> None:
        done.append(result["row"])
        write_rows(out / "per_run.csv", done)  # after every run, so that an interrupted study keeps its runs
        row = result["row"]
        log(f"[{time.perf_counter() - started:6.0f}s {len(done)}/{len(cells)}] drift {row['drift']:3s} "
            f"{row['agent']:22s} seed {row['seed']}: regret {row['cumulative_regret']:.1f}, revenue/arrival "
            f"{row['revenue']:.4f}, CTR {row['ctr']:.4f} ({row['seconds']:.1f}s)")

    results = map_cells(run_cell, [(config, *cell) for cell in cells], config.backend, config.address, finished)
    rows, curves, shifts_by_run = [], {}, {}
    for result in results:  # in cell order, whichever backend ran them
        row = result["row"]
        key = f"{row['drift']}/{row['agent']}/{row['seed']}"
        rows.append(row)
        curves[key], curves[key + "/revenue"], shifts_by_run[key] = result["regret"], result["revenue"], result["shifts"]
    summary = summarize(rows)
    write_outputs(out, config, rows, summary, curves, shifts_by_run, prior_note)
    return {"rows": rows, "summary": summary, "out": out}


def run_any(config, log=print) -> dict:
    """Run the comparison that ``config`` describes (PersonalizedMarketing-v0's or CustomerJourney-v0's)."""
    from abgym.studies import journey_comparison

    if isinstance(config, journey_comparison.JourneyComparisonConfig):
        return journey_comparison.run_comparison(config, log)
    return run_comparison(config, log)


def table_for(result: dict) -> str:
    from abgym.studies import journey_comparison

    if result["summary"] and "ltv" in result["summary"][0]:
        return journey_comparison.markdown_table(result["summary"])
    return markdown_table(result["summary"])


def summarize(rows: list[dict]) -> list[dict]:
    summary = []
    keys = sorted({(row["drift"], row["agent"]) for row in rows}, key=lambda k: (k[0], _order(k[1])))
    for drift, agent in keys:
        runs = [row for row in rows if row["drift"] == drift and row["agent"] == agent]
        entry = {"drift": drift, "agent": agent, "seeds": len(runs)}
        for metric in METRICS:
            entry[metric], entry[metric + "_ci95"] = mean_interval([row[metric] for row in runs])
        entry["seconds"] = float(np.mean([row["seconds"] for row in runs]))
        summary.append(entry)
    return summary


def _order(label: str) -> tuple[int, str]:
    base = label.replace("+prior", "")
    return (ALL_AGENTS.index(base) if base in ALL_AGENTS else 99, label)


def _fmt(mean: float, half: float, digits: int) -> str:
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {half:.{digits}f}" if np.isfinite(half) else f"{mean:.{digits}f}"


def markdown_table(summary: list[dict]) -> str:
    header = ("| drift | agent | CTR | conversion | revenue / arrival | cumulative regret | regret / arrival, "
              "last quarter | regret / arrival after a shift | arrivals to recover | s / run |")
    lines = [header, "|" + "---|" * 10]
    for entry in summary:
        lines.append(
            f"| {entry['drift']} | {entry['agent']} | {_fmt(entry['ctr'], entry['ctr_ci95'], 4)} "
            f"| {_fmt(entry['conversion'], entry['conversion_ci95'], 4)} "
            f"| {_fmt(entry['revenue'], entry['revenue_ci95'], 4)} "
            f"| {_fmt(entry['cumulative_regret'], entry['cumulative_regret_ci95'], 1)} "
            f"| {_fmt(entry['regret_last_quarter'], entry['regret_last_quarter_ci95'], 4)} "
            f"| {_fmt(entry['post_shift_regret'], entry['post_shift_regret_ci95'], 4)} "
            f"| {_fmt(entry['recovery_arrivals'], entry['recovery_arrivals_ci95'], 0)} "
            f"| {entry['seconds']:.1f} |")
    return "\n".join(lines)


def write_rows(path: Path, rows: list[dict]) -> None:
    from abgym.paths import atomic_write

    with atomic_write(path, "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_outputs(out: Path, config: ComparisonConfig, rows, summary, curves, shifts_by_run, prior_note) -> None:
    from abgym.paths import atomic_write

    write_rows(out / "per_run.csv", rows)
    with atomic_write(out / "summary.csv", "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(summary[0]))
        writer.writeheader()
        writer.writerows(summary)
    settings = {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(config).items()}
    text = (f"# Personalized marketing comparison\n\nSettings: `{json.dumps(settings)}`\n\n"
            f"Ranker prior: {prior_note}\n\nMean ± 95% t-interval over {len(config.seeds)} seeds; regret is against "
            "the per-user oracle (the env's expected reward of the best variant for each arriving user).\n\n"
            + markdown_table(summary) + "\n")
    with atomic_write(out / "summary.md", "w") as handle:
        handle.write(text)
    with atomic_write(out / "curves.npz") as handle:
        np.savez_compressed(handle, **curves)
    with atomic_write(out / "shifts.json", "w") as handle:
        json.dump(shifts_by_run, handle)
    plot(out, config, summary, curves, shifts_by_run)


def plot(out: Path, config: ComparisonConfig, summary, curves, shifts_by_run) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from abgym.paths import atomic_write

    labels = sorted({entry["agent"] for entry in summary}, key=_order)
    colors = {label: plt.cm.tab20(i % 20) for i, label in enumerate(labels)}
    for drift in config.drift:
        # Top: mean over seeds. Middle (only when there were shifts): each seed's regime shifts as a rug, one row
        # per seed, in its own thin panel (ticks drawn outside an axis squashed it above a blank gap). Bottom: the
        # first seed alone, its shifts as vertical lines. One legend beside the panels; constrained layout keeps
        # the labels inside the figure.
        reference = labels[0]
        shifts = [list(shifts_by_run.get(f"{drift}/{reference}/{seed}", [])) for seed in config.seeds]
        with_rug = any(shifts)
        ratios = [3.0, 0.3 + 0.15 * len(config.seeds), 2.0] if with_rug else [3.0, 2.0]
        figure, panels = plt.subplots(len(ratios), 1, figsize=(11, 9), sharex=True, layout="constrained",
                                      gridspec_kw={"height_ratios": ratios})
        top, bottom = panels[0], panels[-1]
        for label in labels:
            runs = [curves[f"{drift}/{label}/{seed}"] for seed in config.seeds if f"{drift}/{label}/{seed}" in curves]
            if not runs:
                continue
            stacked = np.stack(runs)
            mean = stacked.mean(0)
            top.plot(mean, label=label, color=colors[label], lw=1.6)
            if len(runs) > 1:
                spread = stacked.std(0, ddof=1) / np.sqrt(len(runs)) * 2.0
                top.fill_between(np.arange(mean.size), mean - spread, mean + spread, color=colors[label], alpha=0.12)
            first = f"{drift}/{label}/{config.seeds[0]}"
            if first in curves:
                bottom.plot(curves[first], color=colors[label], lw=1.4)
        if with_rug:
            rug = panels[1]
            rug.eventplot(shifts, lineoffsets=np.arange(len(config.seeds)), linelengths=0.7, colors="black",
                          linewidths=1.0)
            rug.set_yticks(np.arange(len(config.seeds)), [str(seed) for seed in config.seeds], fontsize=7)
            rug.set_ylim(-0.6, len(config.seeds) - 0.4)
            rug.invert_yaxis()
            rug.set_ylabel("seed", fontsize=8)
            rug.set_title("regime shifts per seed", fontsize=9, loc="left")
        for i, t in enumerate(shifts[0]):
            bottom.axvline(t, color="black", ls="--", lw=0.8, label="regime shift" if i == 0 else None)
        top.set(ylabel="cumulative regret\n(vs per-user oracle)",
                title=f"Cumulative regret, drift {drift}: mean and ~95% band over {len(config.seeds)} seeds")
        bottom.set(xlabel="user arrivals", ylabel="cumulative regret",
                   title=f"seed {config.seeds[0]} alone" + (", its regime shifts dashed" if shifts[0] else ""))
        top.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, title="agent")
        if shifts[0]:
            bottom.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
        with atomic_write(out / f"regret_drift-{drift}.png") as handle:
            figure.savefig(handle, format="png", dpi=100)
        plt.close(figure)
    figure, axes = plt.subplots(1, len(config.drift), figsize=(6 * len(config.drift), 5), squeeze=False)
    for axis, drift in zip(axes[0], config.drift):
        entries = [entry for entry in summary if entry["drift"] == drift]
        axis.barh([entry["agent"] for entry in entries], [entry["revenue"] for entry in entries],
                  xerr=[np.nan_to_num(entry["revenue_ci95"]) for entry in entries],
                  color=[colors[entry["agent"]] for entry in entries])
        axis.invert_yaxis()
        axis.set(xlabel="revenue per arrival (mean, 95% interval)", title=f"drift {drift}")
    figure.tight_layout()
    with atomic_write(out / "reward.png") as handle:
        figure.savefig(handle, format="png", dpi=110)
    plt.close(figure)


# ---------------------------------------------------------------------------------------------- command line
QUICK = dict(agents=MAIN_AGENTS, seeds=[100, 101], arrivals=600, drift=["off", "on"], recovery_window=50)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from abgym.studies import journey_comparison as journey

    parser.add_argument("--env", choices=[ENV_ID, journey.ENV_ID], default=ENV_ID,
                        help="the environment (default: %(default)s; CustomerJourney-v0 follows users through "
                             "their visits, where long-term value exists)")
    parser.add_argument("--agents", nargs="+", choices=sorted(set(ALL_AGENTS) | set(journey.ALL_AGENTS)),
                        metavar="AGENT",
                        help=f"agents, from: {' '.join(ALL_AGENTS)} (default: {' '.join(MAIN_AGENTS)}); on "
                             f"CustomerJourney-v0: {' '.join(journey.ALL_AGENTS)}")
    parser.add_argument("--users", type=int, default=None,
                        help="CustomerJourney-v0: journeys per run (default: 1500; quick: 150)")
    parser.add_argument("--rollouts", type=int, default=None,
                        help="CustomerJourney-v0: the long-term oracle's rollouts per variant (default: 16)")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default: 5)")
    parser.add_argument("--first-seed", type=int, default=100,
                        help="seeds are first-seed .. first-seed + seeds - 1 (default: %(default)s; 0-2 tuned the bandits)")
    parser.add_argument("--arrivals", type=int, default=None, help="user arrivals per run (default: 3000)")
    parser.add_argument("--drift", nargs="+", choices=["off", "on"], help="drift settings (default: off on)")
    parser.add_argument("--prior", choices=["auto", "on", "off"], default="auto",
                        help="ranker prior for the bandits: auto = with and without, if it loads (default: auto)")
    parser.add_argument("--env-config", default="{}", help="JSON overrides of the env's default_config()")
    parser.add_argument("--recovery-window", type=int, default=None, help="arrivals per recovery window (200)")
    parser.add_argument("--out", default="results/marketing", help="output folder (default: %(default)s)")
    parser.add_argument("--no-tensorboard", action="store_true", help="write no TensorBoard runs")
    parser.add_argument("--quick", action="store_true",
                        help="the CI version: 2 seeds, 600 arrivals, main agents (flags above still override)")
    from abgym.parallel import add_backend_arguments

    add_backend_arguments(parser)


def config_from_args(args) -> ComparisonConfig:
    if getattr(args, "env", ENV_ID) != ENV_ID:
        from abgym.studies import journey_comparison

        return journey_comparison.config_from_args(args)
    if getattr(args, "users", None) is not None or getattr(args, "rollouts", None) is not None:
        raise ValueError("--users and --rollouts are for CustomerJourney-v0 (--env abgym/CustomerJourney-v0)")
    unknown = [name for name in (args.agents or []) if name not in ALL_AGENTS]
    if unknown:
        raise ValueError(f"unknown agent(s) {unknown} for {ENV_ID}; choose from {' '.join(ALL_AGENTS)}")
    base = dict(QUICK) if args.quick else {}
    try:
        env_config = json.loads(args.env_config)
    except json.JSONDecodeError as error:
        raise ValueError(f"--env-config is not valid JSON ({error}); example: --env-config '{{\"n_variants\": 6}}'")
    if not isinstance(env_config, dict):
        raise ValueError("--env-config must be a JSON object, e.g. '{\"n_variants\": 6}'")
    if args.agents:
        base["agents"] = args.agents
    if args.seeds is not None:
        if args.seeds < 1:
            raise ValueError("--seeds must be >= 1")
        base["seeds"] = list(range(args.first_seed, args.first_seed + args.seeds))
    elif args.first_seed != 100:
        base["seeds"] = list(range(args.first_seed, args.first_seed + len(base.get("seeds", [0] * 5))))
    if args.arrivals is not None:
        if args.arrivals < 10:
            raise ValueError("--arrivals must be >= 10")
        base["arrivals"] = args.arrivals
    if args.drift:
        base["drift"] = args.drift
    if args.recovery_window is not None:
        base["recovery_window"] = args.recovery_window
    return ComparisonConfig(prior=args.prior, env_config=env_config, out=Path(args.out),
                            tensorboard=not args.no_tensorboard, **base, **backend_from_args(args))


def backend_from_args(args) -> dict:
    """``--backend`` and ``--address``, checked (Ray installed, an address only with ray) before any run."""
    from abgym.parallel import check_backend

    backend, address = getattr(args, "backend", "serial"), getattr(args, "address", None)
    check_backend(backend, address)
    return {"backend": backend, "address": address}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
        result = run_any(config)
    except (ValueError, RuntimeError) as error:
        print(f"marketing comparison: error: {error}", file=sys.stderr)
        return 2
    print(table_for(result))
    print(f"outputs in {result['out']} (TensorBoard: tensorboard --logdir {result['out'] / 'runs'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
