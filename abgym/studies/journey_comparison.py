"""The comparison of arXiv 2506.06316 where long-term value exists: agents on CustomerJourney-v0.

Every agent meets the same stream of users (same env seed) for a fixed budget of journeys and learns online; what it
earns while learning is what it is scored on. Agents: classical A/B, epsilon-greedy, LinUCB and linear Thompson
sampling (each with and without the ranker prior), PPO with ``gamma=0`` (a neural contextual bandit) and with
``gamma=0.95``, PPO + MARE (the estimator learns the journey's discounted lifetime value and feeds it to the actor
and the critic), PPO + MARE with the ranker prior on the estimator, and both oracles of the headroom study (the
myopic and the long-term one, which read the simulator's true model).

Metrics per run: lifetime reward per user (the drawn rewards, and the sum of the true expected rewards of what was
shown, the same mean with far less noise), CTR, conversions per visit, revenue per user, visits per user, churn (share
of journeys ending by churn), regret per visit against the myopic oracle, recovery after regime shifts, and the
**share of the long-term headroom captured**, ``(agent - myopic oracle) / (long-term oracle - myopic oracle)`` on
expected lifetime reward, per seed (the oracles run on the same users). Mean and 95% t-interval over seeds.

    abgym marketing compare --env abgym/CustomerJourney-v0 --quick
    abgym marketing compare --env abgym/CustomerJourney-v0 --seeds 5 --users 1500 --out results/journey
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from abgym.studies import marketing_comparison as marketing

ENV_ID = "abgym/CustomerJourney-v0"
ORACLES = ["myopic_oracle", "longterm_oracle"]
RL_AGENTS = {"ppo": dict(gamma=0.0), "ppo-lt": dict(gamma=0.95), "a2c-lt": dict(gamma=0.95),
             "ppo+mare-lt": dict(gamma=0.95)}
MAIN_AGENTS = ["classical_ab", "egreedy", "linucb", "lints", "ppo", "ppo-lt", "ppo+mare-lt"] + ORACLES
EXTRA_AGENTS = ["a2c-lt"]
ALL_AGENTS = MAIN_AGENTS + EXTRA_AGENTS
PRIOR_AGENTS = {"egreedy", "linucb", "lints", "ppo+mare-lt"}
METRICS = ["ltv", "ltv_expected", "headroom_share", "ctr", "conversion", "revenue_per_user", "visits", "churn",
           "regret_per_visit", "post_shift_regret", "recovery_visits"]


@dataclass
class JourneyComparisonConfig:
    agents: list[str] = field(default_factory=lambda: list(MAIN_AGENTS))
    seeds: list[int] = field(default_factory=lambda: [100, 101, 102, 103, 104])
    users: int = 1500  # journeys per run
    drift: list[str] = field(default_factory=lambda: ["off", "on"])
    prior: str = "auto"
    env_config: dict = field(default_factory=dict)
    rollouts: int = 16  # the long-term oracle's rollouts per variant and decision
    test_fraction: float = 0.2  # classical A/B: share of the expected visits spent on the uniform test
    recovery_window: int = 200
    out: Path = Path("results/journey")
    tensorboard: bool = True
    log_every: int = 50  # journeys between TensorBoard points
    backend: str = "serial"  # "serial" or "ray": how the (agent, seed, drift) cells run (abgym.parallel)
    address: str | None = None  # with "ray": an existing cluster's address; None starts a local instance


QUICK = dict(seeds=[100, 101], users=150, drift=["on"], rollouts=4, recovery_window=50)


class JourneyRecorder:
    """Per-visit and per-journey outcomes of one run, read from the env's info."""

    def __init__(self, users: int, writer=None, log_every: int = 50):
        self.users, self.writer, self.log_every = users, writer, log_every
        self.journeys: list[dict] = []
        self.regret: list[float] = []
        self.shifts: list[int] = []
        self._open()

    def _open(self) -> None:
        self.current = dict(reward=0.0, expected=0.0, clicks=0, conversions=0, revenue=0.0, visits=0)

    @property
    def done(self) -> bool:
        return len(self.journeys) >= self.users

    def record(self, action: int, reward: float, terminated: bool, truncated: bool, info: dict) -> None:
        if self.done:
            return
        expected = np.asarray(info["expected_rewards"], dtype=np.float64)
        c = self.current
        c["reward"] += reward
        c["expected"] += expected[action]
        c["clicks"] += bool(info["click"])
        c["conversions"] += bool(info["conversion"])
        c["revenue"] += float(info["revenue"])
        c["visits"] += 1
        self.regret.append(float(expected.max() - expected[action]))
        if info.get("regime_shift"):
            self.shifts.append(len(self.regret) - 1)
        if terminated or truncated:
            self.journeys.append({**c, "churned": bool(terminated)})
            self._open()
            n = len(self.journeys)
            if self.writer is not None and n % self.log_every == 0:
                recent = self.journeys[-self.log_every:]
                # The project's tag scheme (docs/CONTRACTS.md): episode/* are means of the journeys since the last
                # write; expected_reward and churned are this env's own additions.
                visits = sum(j["visits"] for j in recent)
                scalars = {"episode/reward": np.mean([j["reward"] for j in recent]),
                           "episode/expected_reward": np.mean([j["expected"] for j in recent]),
                           "episode/length": visits / len(recent),
                           "episode/revenue": np.mean([j["revenue"] for j in recent]),
                           "episode/ctr": sum(j["clicks"] for j in recent) / visits,
                           "episode/conversion_rate": sum(j["conversions"] for j in recent) / visits,
                           "episode/churned": np.mean([j["churned"] for j in recent]),
                           "episode/regret": np.sum(self.regret[-visits:]) / len(recent),
                           "env/cumulative_regret": np.sum(self.regret)}
                for tag, value in scalars.items():
                    self.writer.add_scalar(tag, float(value), n)

    def metrics(self, window: int) -> dict:
        journeys = self.journeys
        visits = sum(j["visits"] for j in journeys)
        post_shift, recovery_visits = marketing.recovery(np.asarray(self.regret), self.shifts, window)
        return {"users": len(journeys), "ltv": float(np.mean([j["reward"] for j in journeys])),
                "ltv_expected": float(np.mean([j["expected"] for j in journeys])),
                "ctr": sum(j["clicks"] for j in journeys) / visits,
                "conversion": sum(j["conversions"] for j in journeys) / visits,
                "revenue_per_user": float(np.mean([j["revenue"] for j in journeys])),
                "visits": visits / len(journeys), "churn": float(np.mean([j["churned"] for j in journeys])),
                "regret_per_visit": float(np.mean(self.regret)), "n_shifts": len(self.shifts),
                "post_shift_regret": post_shift, "recovery_visits": recovery_visits}


def make_env(config: JourneyComparisonConfig, drift: str):
    import gymnasium

    import abgym  # noqa: F401 - registers the env ids

    return gymnasium.make(ENV_ID, config={**config.env_config, "drift": drift == "on"})


def run_policy_loop(choose, update, env, seed: int, recorder: JourneyRecorder, started=None) -> None:
    """Journeys until the recorder has its budget: ``choose(observation, info) -> action``, then ``update``.

    ``started``: the ``(observation, info)`` of an ``env.reset(seed=seed)`` the caller already made."""
    observation, info = env.reset(seed=seed) if started is None else started
    reset_info = info
    while not recorder.done:
        action = choose(observation, info)
        observation, reward, terminated, truncated, info = env.step(action)
        recorder.record(action, float(reward), terminated, truncated, info)
        update(action, float(reward), observation, info)
        if terminated or truncated:
            observation, info = env.reset()
            info = {**reset_info, **info}


def run_oracle(name: str, env, seed: int, recorder: JourneyRecorder, rollouts: int) -> None:
    from abgym.studies.journey_headroom import RolloutPlanner, myopic_actions

    worlds = env.unwrapped.worlds
    if name == "myopic_oracle":
        def choose(observation, info):
            return int(myopic_actions(worlds)[0])
    else:
        planner = RolloutPlanner(worlds, rollouts, seed=seed + 1)

        def choose(observation, info):
            return int(planner.actions()[0])
    run_policy_loop(choose, lambda *args: None, env, seed, recorder)


def run_bandit(agent, env, seed: int, recorder: JourneyRecorder) -> None:
    observation, info = env.reset(seed=seed)
    agent.reset(env.action_space.n, info, seed=seed)
    run_policy_loop(agent.act, agent.update, env, seed, recorder, started=(observation, info))


def ranker_prior_values(prior, env, gamma: float = 0.0) -> np.ndarray | None:
    """Per-variant prior of the estimator: the ranker's CTR times the value of a click, a first visit's expected
    reward; with ``gamma > 0`` (the estimator's lifetime target) times the expected discounted number of visits of a
    journey at trust 0, ``sum_t (gamma * (1 - churn_base))^t`` over ``max_visits``, so that it is on the scale of
    the return the estimator learns."""
    if prior is None:
        return None
    texts = list(env.unwrapped.content.texts)
    mean, _ = prior.ctr_prior(texts)
    config = env.unwrapped.config
    per_visit = gamma * (1.0 - float(config["churn_base"]))
    visits = float(np.sum(per_visit ** np.arange(int(config["max_visits"]))))
    return np.asarray(mean, dtype=np.float64) * marketing.prior_scale_for(env) * visits


def run_rl(name: str, env, seed: int, recorder: JourneyRecorder, tensorboard_dir: Path | None, prior=None):
    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    from abgym.agents.actor_critic import ActorCriticAgent

    torch.set_num_threads(1)

    class StopAtBudget(BaseCallback):
        def _on_step(self) -> bool:
            return not recorder.done

    settings = RL_AGENTS[name]
    algorithm = "a2c" if name.startswith("a2c") else "ppo"
    estimator = "input" if "+mare" in name else None
    estimator_kwargs = dict(target="lifetime", gamma=settings["gamma"]) if estimator else None
    extra = dict(gae_lambda=0.95) if settings["gamma"] > 0 else {}
    agent = ActorCriticAgent(env, algorithm, estimator=estimator, seed=seed, estimator_kwargs=estimator_kwargs,
                             tensorboard_log=str(tensorboard_dir) if tensorboard_dir else None,
                             gamma=settings["gamma"], **extra)
    values = ranker_prior_values(prior, env, settings["gamma"] if estimator else 0.0)
    if values is not None:
        agent.reward_estimator.set_prior(values, strength=256.0)
    agent.learn(recorder.users * int(env.unwrapped.config["max_visits"]), callback=StopAtBudget(), tb_log_name="sb3")
    return agent


def recording(env, recorder: JourneyRecorder):
    import gymnasium

    class Recording(gymnasium.Wrapper):
        def step(self, action):
            observation, reward, terminated, truncated, info = self.env.step(action)
            recorder.record(int(action), float(reward), terminated, truncated, info)
            return observation, reward, terminated, truncated, info

    return Recording(env)


def agent_variants(config: JourneyComparisonConfig, prior_available: bool) -> list[tuple[str, bool]]:
    return marketing.agent_variants(config, prior_available, ALL_AGENTS, PRIOR_AGENTS)


def run_cell(config: JourneyComparisonConfig, drift: str, name: str, with_prior: bool, seed: int) -> dict:
    """One (agent, seed, drift) run from its arguments alone (same result in any process): its per-run row."""
    label = name + ("+prior" if with_prior else "")
    run_dir, writer = marketing.cell_run_dir(config.out, drift, label, seed, config.tensorboard)
    recorder = JourneyRecorder(config.users, writer, config.log_every)
    env = make_env(config, drift)
    prior = marketing.cell_prior() if with_prior else None
    run_started = time.perf_counter()
    if name in ORACLES:
        run_oracle(name, env, seed, recorder, config.rollouts)
    elif name in RL_AGENTS:
        env.reset(seed=seed)
        run_rl(name, recording(env, recorder), seed, recorder, run_dir, prior)
    else:
        expected_visits = 12 * config.users  # the test phase of the classical A/B test, in visits
        bandit_config = marketing.ComparisonConfig(arrivals=expected_visits, test_fraction=config.test_fraction)
        agent = marketing.make_bandit(name, seed, bandit_config, prior, marketing.prior_scale_for(env))
        run_bandit(agent, env, seed, recorder)
    seconds = time.perf_counter() - run_started
    env.close()
    if writer is not None:
        writer.close()
    metrics = recorder.metrics(config.recovery_window)
    return {"agent": label, "drift": drift, "seed": seed, **metrics, "seconds": seconds}


def run_comparison(config: JourneyComparisonConfig, log=print) -> dict:
    from dataclasses import replace

    from abgym.parallel import check_backend, map_cells

    check_backend(config.backend, config.address)
    out = Path(config.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    config = replace(config, out=out)
    prior, prior_note = (None, "off") if config.prior == "off" else marketing.load_prior()
    if config.prior == "on" and prior is None:
        raise RuntimeError(f"--prior on, but the ranker prior cannot be loaded: {prior_note}")
    if prior is not None:
        marketing._PRIORS["prior"] = prior
    log(f"ranker prior: {prior_note if prior is not None else 'not used (' + prior_note + ')'}")
    variants = agent_variants(config, prior is not None)
    cells = [(drift, name, with_prior, seed) for drift in config.drift for name, with_prior in variants
             for seed in config.seeds]
    done: list[dict] = []
    started = time.perf_counter()

    def finished(index: int, row: dict) -> None:
        done.append(row)
        marketing.write_rows(out / "per_run.csv", done)
        log(f"[{time.perf_counter() - started:6.0f}s {len(done)}/{len(cells)}] drift {row['drift']:3s} "
            f"{row['agent']:18s} seed {row['seed']}: lifetime reward {row['ltv_expected']:.3f} (drawn "
            f"{row['ltv']:.3f}), visits {row['visits']:.1f}, churn {row['churn']:.2f} ({row['seconds']:.1f}s)")

    rows = map_cells(run_cell, [(config, *cell) for cell in cells], config.backend, config.address, finished)
    add_headroom_share(rows)
    marketing.write_rows(out / "per_run.csv", rows)
    summary = summarize(rows)
    write_outputs(out, config, summary, prior_note)
    return {"rows": rows, "summary": summary, "out": out}


def add_headroom_share(rows: list[dict]) -> None:
    """Per run: (agent - myopic oracle) / (long-term oracle - myopic oracle), the oracles of the same drift and seed."""
    oracle = {(row["drift"], row["seed"], row["agent"]): row["ltv_expected"] for row in rows if row["agent"] in ORACLES}
    for row in rows:
        myopic = oracle.get((row["drift"], row["seed"], "myopic_oracle"))
        longterm = oracle.get((row["drift"], row["seed"], "longterm_oracle"))
        row["headroom_share"] = (float("nan") if myopic is None or longterm is None or longterm == myopic
                                 else (row["ltv_expected"] - myopic) / (longterm - myopic))


def _order(label: str) -> tuple[int, str]:
    base = label.replace("+prior", "")
    return (ALL_AGENTS.index(base) if base in ALL_AGENTS else 99, label)


def summarize(rows: list[dict]) -> list[dict]:
    summary = []
    for drift, agent in sorted({(row["drift"], row["agent"]) for row in rows}, key=lambda k: (k[0], _order(k[1]))):
        runs = [row for row in rows if row["drift"] == drift and row["agent"] == agent]
        entry = {"drift": drift, "agent": agent, "seeds": len(runs), "users": runs[0]["users"]}
        for metric in METRICS:
            entry[metric], entry[metric + "_ci95"] = marketing.mean_interval([row[metric] for row in runs])
        entry["seconds"] = float(np.mean([row["seconds"] for row in runs]))
        summary.append(entry)
    return summary


def markdown_table(summary: list[dict]) -> str:
    f = marketing._fmt
    lines = ["| drift | agent | lifetime reward / user (expected) | drawn | share of long-term headroom | CTR | "
             "conversions / visit | revenue / user | visits / user | churn | regret / visit vs myopic | s / run |",
             "|" + "---|" * 12]
    for e in summary:
        lines.append(f"| {e['drift']} | {e['agent']} | {f(e['ltv_expected'], e['ltv_expected_ci95'], 3)} "
                     f"| {f(e['ltv'], e['ltv_ci95'], 3)} | {f(e['headroom_share'], e['headroom_share_ci95'], 2)} "
                     f"| {f(e['ctr'], e['ctr_ci95'], 4)} | {f(e['conversion'], e['conversion_ci95'], 4)} "
                     f"| {f(e['revenue_per_user'], e['revenue_per_user_ci95'], 2)} | {f(e['visits'], e['visits_ci95'], 1)} "
                     f"| {f(e['churn'], e['churn_ci95'], 2)} | {f(e['regret_per_visit'], e['regret_per_visit_ci95'], 4)} "
                     f"| {e['seconds']:.1f} |")
    return "\n".join(lines)


def write_outputs(out: Path, config: JourneyComparisonConfig, summary, prior_note) -> None:
    import csv
    import json

    from abgym.paths import atomic_write

    with atomic_write(out / "summary.csv", "w") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(summary[0]))
        writer.writeheader()
        writer.writerows(summary)
    settings = {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(config).items()}
    text = (f"# Customer journey comparison\n\nSettings: `{json.dumps(settings)}`\n\nRanker prior: {prior_note}\n\n"
            f"Mean ± 95% t-interval over {len(config.seeds)} seeds of {config.users} users each, learning online. "
            "Share of the long-term headroom: (agent - myopic oracle) / (long-term oracle - myopic oracle), on the "
            "expected lifetime reward, per seed.\n\n" + markdown_table(summary) + "\n")
    with atomic_write(out / "summary.md", "w") as handle:
        handle.write(text)
    plot(out, config, summary)


def plot(out: Path, config: JourneyComparisonConfig, summary) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from abgym.paths import atomic_write

    figure, axes = plt.subplots(1, len(config.drift), figsize=(7 * len(config.drift), 0.45 * len(summary) + 2.5),
                                squeeze=False)
    for axis, drift in zip(axes[0], config.drift):
        entries = [e for e in summary if e["drift"] == drift]
        colors = ["tab:gray" if e["agent"] in ORACLES else "tab:blue" for e in entries]
        axis.barh([e["agent"] for e in entries], [e["ltv_expected"] for e in entries],
                  xerr=[np.nan_to_num(e["ltv_expected_ci95"]) for e in entries], color=colors)
        axis.invert_yaxis()
        axis.set(xlabel="expected lifetime reward per user (mean, 95% interval over seeds)",
                 title=f"CustomerJourney-v0, drift {drift} (grey: oracles)")
    figure.tight_layout()
    with atomic_write(out / "lifetime_reward.png") as handle:
        figure.savefig(handle, format="png", dpi=110)
    plt.close(figure)


def config_from_args(args) -> JourneyComparisonConfig:
    """The journey comparison's settings from ``abgym marketing compare --env abgym/CustomerJourney-v0 ...``."""
    import json

    base = dict(QUICK) if args.quick else {}
    try:
        env_config = json.loads(args.env_config)
    except json.JSONDecodeError as error:
        raise ValueError(f"--env-config is not valid JSON ({error}); example: --env-config '{{\"max_visits\": 20}}'")
    if not isinstance(env_config, dict):
        raise ValueError("--env-config must be a JSON object, e.g. '{\"max_visits\": 20}'")
    if args.agents:
        unknown = [name for name in args.agents if name not in ALL_AGENTS]
        if unknown:
            raise ValueError(f"unknown agent(s) {unknown} for {ENV_ID}; choose from {' '.join(ALL_AGENTS)}")
        base["agents"] = args.agents
    if args.seeds is not None:
        if args.seeds < 1:
            raise ValueError("--seeds must be >= 1")
        base["seeds"] = list(range(args.first_seed, args.first_seed + args.seeds))
    if args.users is not None:
        if args.users < 2:
            raise ValueError("--users must be >= 2")
        base["users"] = args.users
    if args.arrivals is not None:
        raise ValueError(f"--arrivals is for PersonalizedMarketing-v0; {ENV_ID}'s budget is --users (journeys)")
    if args.rollouts is not None:
        if args.rollouts < 1:
            raise ValueError("--rollouts must be >= 1")
        base["rollouts"] = args.rollouts
    if args.drift:
        base["drift"] = args.drift
    if args.recovery_window is not None:
        base["recovery_window"] = args.recovery_window
    from abgym.envs.customer_journey import make_config

    make_config(env_config)  # an unknown or bad setting fails here, before any run
    return JourneyComparisonConfig(prior=args.prior, env_config=env_config, out=Path(args.out),
                                   tensorboard=not args.no_tensorboard, **base, **marketing.backend_from_args(args))
