"""The RPP evaluation: every method of the issue on the same test users, 3 seeds, one call.

Methods (NDCG@10, HR@1, HR@3 of the ranking on each test user; RPP methods: the last round's ranking):
- ``popularity`` and ``random-ranking``: no language model;
- ``hand-written``: the fixed prompt :data:`~abgym.envs.prompt_actions.HAND_WRITTEN`;
- ``random-prompt``: a uniformly random prompt per user and seed;
- ``best-fixed``: the single prompt with the best mean NDCG on train users (task-wise prompting), found by coordinate
  ascent from the hand-written prompt (each pattern in turn, every sentence tried, ``search_passes`` passes);
- ``rpp``: the actor-critic trained on train users, checkpoint chosen on validation users; ``rpp+``: its final prompt
  with each sentence rewritten by the language model; ``rpp-fix-<pattern>``: the ablation, the trained policy with
  that pattern held at the hand-written sentence in every round;
- ``enumeration-bound``: on the first ``n_enumeration_users`` test users, the best of all 675 prompts per user, an
  upper bound no prompt policy can beat (it looks at the target); shown beside the other methods on those users.

Outputs in ``out``: ``per_user.csv`` (every method, seed and user), ``summary.csv`` and ``summary.md`` (mean and 95%
interval over users of the seed-averaged score), ``ndcg.png`` and ``training.png``, ``tensorboard/seed<k>`` (RPP
training) and ``run.json`` (settings, timings, LLM call and cache counts).
"""
from __future__ import annotations

import json
import os
import platform
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from abgym.envs import prompt_actions as pa
from abgym.metrics import mean_ci

METRICS = ("ndcg@10", "hr@1", "hr@3")


@dataclass
class EvaluationSettings:
    dataset: str = "movielens-100k"
    data_path: str | None = None
    recommender: str = "llm-score"  # llm-score | llm-calibrated | llm-generate | synthetic (fast pipeline check)
    language_model: str = "gemma3-270m"  # gemma3-270m | smollm2-135m
    negatives: str = "popularity"  # candidate protocol: popularity | uniform | popularity-weighted
    domain: str | None = None  # prompt wording: movies | music | games | products; None: the dataset's
    embedder: str = "minilm"
    seeds: tuple[int, ...] = (0, 1, 2)
    n_train: int = 200  # train users RPP learns on
    n_validation: int = 30
    n_test: int = 100
    rounds: int = 3
    episodes: int = 200  # RPP training episodes per seed
    episodes_per_update: int = 16
    learning_rate: float = 1e-3
    reward_baseline: str = "initial-prompt"  # see RPPConfig.reward_baseline
    n_search_users: int = 30  # train users the best fixed prompt is searched on
    search_passes: int = 1
    n_enumeration_users: int = 3
    ablation: bool = True
    ablation_seeds: int = 1  # the ablation runs on the first seeds' policies only (it costs 4 test passes each)
    eval_every: int = 4  # validation every this many updates (and at the end)
    rpp_plus: bool = True
    extra: dict = field(default_factory=dict)
    backend: str = "serial"  # "ray": each seed's RPP training and test run is a Ray task (abgym.parallel)
    address: str | None = None  # with "ray": an existing cluster; None starts a local instance


def _record(rows, method, seed, case, metrics, **more):
    rows.append({"method": method, "seed": seed, "user_id": case.user_id, **{m: metrics[m] for m in METRICS}, **more})


def _say(message: str, quiet: bool) -> None:
    if not quiet:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Heartbeat:
    """Prints a line every ``every`` seconds while a stage runs (rankings so far, when the recommender counts them),
    so that a stage of minutes of LLM rankings never looks hung; plain lines, so CI logs show them too."""

    def __init__(self, stage: str, recommender, quiet: bool, every: float = 15.0):
        import threading

        self.stage, self.recommender, self.quiet, self.every = stage, recommender, quiet, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = time.perf_counter()

    def _calls(self):
        stats = getattr(self.recommender, "stats", None)
        return None if stats is None else (stats.calls, stats.cache_hits)

    def _run(self) -> None:
        first = self._calls()
        while not self._stop.wait(self.every):
            now, line = self._calls(), f"{self.stage}: {time.perf_counter() - self._started:.0f} s"
            if now is not None and first is not None:
                line += f", {now[0] - first[0]} rankings ({now[1] - first[1]} from the cache)"
            _say(line + " ...", self.quiet)

    def __enter__(self):
        if not self.quiet:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def best_fixed_prompt(task, cases, passes: int = 1, start=pa.HAND_WRITTEN):
    """Coordinate ascent over the four patterns on ``cases``; returns (actions, mean NDCG, prompts tried)."""
    def score(actions):
        return float(np.mean([task.evaluate(c, actions).metrics["ndcg@10"] for c in cases]))

    best, best_score, tried = tuple(start), score(start), {tuple(start)}
    for _ in range(passes):
        for pattern, size in enumerate(pa.ACTION_SIZES):
            for option in range(size):
                candidate = best[:pattern] + (option,) + best[pattern + 1 :]
                if candidate in tried:
                    continue
                tried.add(candidate)
                value = score(candidate)
                if value > best_score:
                    best, best_score = candidate, value
    return best, best_score, len(tried)


def run_evaluation(settings: EvaluationSettings, out: str | Path, *, language_model=None, quiet: bool = False) -> dict:
    import torch  # RPP needs it: fail early with the import error, not after the baselines

    from abgym.agents.rpp import RPPAgent, rpp_plus
    from abgym.envs.llm_recommender import PopularityRecommender, RandomRecommender, SentenceRewriter
    from abgym.envs.prompt_personalization import parallel_env
    from abgym.metrics import ranking_metrics
    from abgym.parallel import check_backend
    from abgym.paths import atomic_write, cache_dir

    check_backend(settings.backend, settings.address)
    out = Path(out).resolve()  # absolute: a Ray worker writes its checkpoint and TensorBoard run there too
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    config, data, recommender, task, domain = build_task(settings, language_model)
    # Every row, summary line and table says which protocol and recommender made it.
    labels = {"negatives": data.negatives, "recommender": recommender.name,
              "model": getattr(recommender, "model_id", "none"), "domain": domain}
    test = data.split("test")[: settings.n_test]
    _say(f"data {data.dataset.name}: {data.dataset.n_users} users, {data.dataset.n_items} items; cases "
         f"{ {k: len(v) for k, v in data.cases.items()} }; test users used {len(test)}; recommender {recommender.name}; negatives {data.negatives}; domain {domain}",
         quiet)
    # Embed every title once up front (MiniLM caches them on disk).
    titles = sorted({i for c in data.split("all") for i in c.candidates + c.history[-20:]})
    _say(f"embedding {len(titles)} titles (cached on disk after the first run)", quiet)
    with Heartbeat("embedding titles", None, quiet):
        task.title_vectors(titles)
    rows: list[dict] = []
    timings: dict[str, float] = {}

    def timed(name, fn):
        _say(f"{name} ...", quiet)
        t = time.perf_counter()
        with Heartbeat(name, recommender, quiet or name == "rpp training"):  # training has its own progress bar
            result = fn()
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - t
        flush = getattr(recommender, "flush", None)
        if flush:
            flush()
        return result

    # --- baselines without prompts ---
    popularity = PopularityRecommender()
    for seed in settings.seeds:
        random_ranking = RandomRecommender(seed)
        for case in test:
            context = task.context(case, pa.HAND_WRITTEN)
            titles = task.titles(case.candidates)
            for name, ranker in (("popularity", popularity), ("random-ranking", random_ranking)):
                order = ranker.rank("", titles, context).order

                _record(rows, name, seed, case, ranking_metrics(order, case.target_index))

    # --- fixed prompts ---
    def hand_written():
        for case in test:
            metrics = task.evaluate(case, pa.HAND_WRITTEN).metrics
            for seed in settings.seeds:  # deterministic: the same for every seed
                _record(rows, "hand-written", seed, case, metrics)

    timed("hand-written", hand_written)
    _say(f"hand-written prompt done ({timings['hand-written']:.0f} s)", quiet)

    def random_prompt():
        for seed in settings.seeds:
            rng = np.random.default_rng(seed)
            for case in test:
                actions = tuple(int(rng.integers(n)) for n in pa.ACTION_SIZES)
                _record(rows, "random-prompt", seed, case, task.evaluate(case, actions).metrics, actions=actions)

    timed("random-prompt", random_prompt)
    _say(f"random prompts done ({timings['random-prompt']:.0f} s)", quiet)

    bound_users = test[: settings.n_enumeration_users]
    state = {"best": None, "best_train": float("nan"), "n_tried": 0}
    training_logs: dict[int, dict] = {}
    rewriter = None
    if settings.rpp_plus and hasattr(recommender, "lm"):
        model = re.sub(r"[^A-Za-z0-9._-]+", "_", str(recommender.model_id))
        rewriter = SentenceRewriter(recommender.lm, cache_path=cache_dir("rpp") / f"rewrites-{model}.json",
                                    chat=getattr(recommender, "chat", True))

    def save(stage: str) -> None:
        """Write every output after each stage, so that a run stopped at a deadline keeps what it measured."""
        llm_stats = asdict(recommender.stats) if hasattr(recommender, "stats") else {}
        run = {
            "settings": asdict(settings),
            "protocol": labels,
            "completed_stage": stage,
            "best_fixed_prompt": state["best"],
            "best_fixed_train_ndcg": state["best_train"],
            "best_fixed_prompts_tried": state["n_tried"],
            "timings_s": timings,
            "total_s": time.perf_counter() - started,
            "llm": {"model": getattr(recommender, "model_id", recommender.name), **llm_stats,
                    "cached_rankings": len(recommender) if hasattr(recommender, "__len__") else None,
                    "rewrites_rejected": rewriter.rejected if rewriter else None},
            "machine": f"{platform.machine()} ({os.cpu_count()} CPUs), torch threads {torch.get_num_threads()}",
            "training": training_logs,
        }
        write_outputs(out, rows, summarize(rows, [c.user_id for c in bound_users]), run, training_logs, atomic_write,
                      labels)
        state["run"] = run
        _say(f"saved after {stage} ({run['total_s'] / 60:.1f} min, LLM {llm_stats})", quiet)

    save("baselines")

    # --- RPP per seed ---
    env_config = {**config, "max_users": settings.n_train}
    test_env = parallel_env({**env_config, "split": "test", "max_users": settings.n_test}, task=task)
    agents = {}
    if settings.backend == "serial":
        for seed in settings.seeds:
            result = train_and_test_seed(settings, seed, out, task, env_config, test_env, timed, quiet)
            agents[seed] = result.pop("agent")
            _add_seed_result(rows, training_logs, result)
            save(f"rpp seed {seed}")
    else:
        from abgym.parallel import map_cells

        base, done = len(rows), {}

        def finished(index: int, result: dict) -> None:
            done[result["seed"]] = result
            for stage, seconds in result["timings"].items():
                timings[stage] = timings.get(stage, 0.0) + seconds
            del rows[base:]  # the RPP rows in seed order, whichever seed finished first
            for seed in settings.seeds:
                if seed in done:
                    _add_seed_result(rows, training_logs, done[seed])
            _say(f"seed {result['seed']}: {result['message']}", quiet)
            save(f"rpp seed {result['seed']}")

        _say(f"rpp training and test of {len(settings.seeds)} seeds as Ray tasks", quiet)
        map_cells(rpp_seed_cell, [(settings, seed, str(out)) for seed in settings.seeds], settings.backend,
                  settings.address, finished)
        agents = {seed: RPPAgent.load(out / f"rpp_seed{seed}.pt") for seed in settings.seeds}

    # --- the best fixed prompt on train users (task-wise prompting) ---
    search_cases = data.split("train")[: settings.n_search_users]
    if search_cases:
        best, best_train, n_tried = timed(
            "best-fixed search", lambda: best_fixed_prompt(task, search_cases, settings.search_passes)
        )
        state.update(best=best, best_train=best_train, n_tried=n_tried)
        _say(f"best fixed prompt {best} (train NDCG {best_train:.3f}, {n_tried} prompts tried, "
             f"{timings['best-fixed search']:.0f} s)", quiet)

        def best_fixed():
            for case in test:
                metrics = task.evaluate(case, best).metrics
                for seed in settings.seeds:
                    _record(rows, "best-fixed", seed, case, metrics, actions=best)

        timed("best-fixed", best_fixed)
        save("best-fixed")

    # --- RPP+ ---
    if rewriter is not None:
        for seed, agent in agents.items():
            plus = timed("rpp+ test", lambda: rpp_plus(agent, test_env, rewriter))
            for case, info in zip(test_env.users, plus):
                _record(rows, "rpp+", seed, case, info, actions=info["prompt_actions"])
        save("rpp+")

    # --- ablation: each pattern held at the hand-written sentence in turn ---
    if settings.ablation:
        for seed in list(agents)[: settings.ablation_seeds]:
            for pattern_index, pattern in enumerate(pa.PATTERNS):
                fixed = FixedPatternAgent(agents[seed], pattern_index)
                results = timed("ablation", lambda: fixed.evaluate(test_env))
                for case, info in zip(test_env.users, results):
                    _record(rows, f"rpp-fix-{pattern}", seed, case, info, actions=info["prompt_actions"])
        save("ablation")

    # --- enumeration upper bound on a few test users ---
    def enumerate_all():
        for case in bound_users:
            scores = [(task.evaluate(case, a).metrics, a) for a in pa.all_actions()]
            metrics, actions = max(scores, key=lambda s: (s[0]["ndcg@10"], s[0]["hr@1"]))
            share = float(np.mean([s[0]["ndcg@10"] == metrics["ndcg@10"] for s in scores]))
            mean_prompt = float(np.mean([s[0]["ndcg@10"] for s in scores]))
            for seed in settings.seeds:
                _record(rows, "enumeration-bound", seed, case, metrics, actions=actions,
                        share_of_prompts_at_best=share, mean_over_prompts=mean_prompt)
            _say(f"enumerated user {case.user_id}: best {metrics['ndcg@10']:.3f}, mean over 675 prompts "
                 f"{mean_prompt:.3f}", quiet)

    if bound_users:
        timed("enumeration", enumerate_all)
        save("enumeration")

    summary = [{**entry, **labels} for entry in summarize(rows, [c.user_id for c in bound_users])]
    run = state["run"]
    _say(f"done in {run['total_s'] / 60:.1f} min; results in {out}", quiet)
    return {"summary": summary, "run": run, "rows": rows}


def build_task(settings: EvaluationSettings, language_model=None):
    """The env config, data, recommender and ``PromptTask`` of ``settings`` (the driver's, or a Ray worker's own)."""
    from abgym.envs.prompt_personalization import PromptTask, load_data, make_config, make_embedder, make_recommender

    config = make_config(
        {"dataset": settings.dataset, "data_path": settings.data_path, "recommender": settings.recommender,
         "embedder": settings.embedder, "rounds": settings.rounds, "negatives": settings.negatives,
         "language_model": settings.language_model, "domain": settings.domain}
    )
    data = load_data(config)
    domain = settings.domain or data.dataset.domain
    recommender = make_recommender(config, language_model, domain)
    return config, data, recommender, PromptTask(data, recommender, make_embedder(settings.embedder), domain), domain


def train_and_test_seed(settings: EvaluationSettings, seed: int, out: Path, task, env_config: dict, test_env, timed,
                        quiet: bool) -> dict:
    """RPP on one seed: train on train users (checkpoint by validation users), save, then score the test users."""
    from torch.utils.tensorboard import SummaryWriter

    from abgym.agents.rpp import RPPAgent, RPPConfig
    from abgym.envs.prompt_personalization import parallel_env

    train_env = parallel_env({**env_config, "split": "train"}, task=task)
    val_env = parallel_env({**env_config, "split": "validation", "max_users": settings.n_validation}, task=task)
    agent = RPPAgent(task.dim, RPPConfig(learning_rate=settings.learning_rate,
                                         reward_baseline=settings.reward_baseline,
                                         episodes_per_update=settings.episodes_per_update), seed=seed)
    writer = SummaryWriter(str(out / "tensorboard" / f"seed{seed}"))
    log = timed("rpp training", lambda: agent.train(train_env, episodes=settings.episodes, validation_env=val_env,
                                                     eval_every=settings.eval_every, writer=writer,
                                                     progress=not quiet))
    writer.close()
    agent.save(out / f"rpp_seed{seed}.pt")
    message = (f"trained {log.episodes} episodes ({log.rankings} rankings) in {log.seconds:.0f} s, "
               f"best validation NDCG {log.best_validation_ndcg:.3f}")
    _say(f"seed {seed}: {message}", quiet)
    results = timed("rpp test", lambda: agent.evaluate(test_env))
    rows: list[dict] = []
    for case, info in zip(test_env.users, results):
        _record(rows, "rpp", seed, case, info, actions=info["prompt_actions"])
    return {"seed": seed, "agent": agent, "log": asdict(log), "rows": rows, "message": message}


def rpp_seed_cell(settings: EvaluationSettings, seed: int, out: str) -> dict:
    """One seed's RPP training and test as a Ray task: the worker builds its own task (data, recommender, embedder;
    the embedding and ranking caches are SQLite files shared by the processes of one machine), writes the checkpoint
    and TensorBoard run under ``out``, and returns the rows, the training log and its stage timings."""
    from abgym.envs.prompt_personalization import parallel_env

    config, data, recommender, task, domain = build_task(settings)
    env_config = {**config, "max_users": settings.n_train}
    test_env = parallel_env({**env_config, "split": "test", "max_users": settings.n_test}, task=task)
    timings: dict[str, float] = {}

    def timed(name, fn):
        started = time.perf_counter()
        result = fn()
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - started
        flush = getattr(recommender, "flush", None)
        if flush:
            flush()
        return result

    result = train_and_test_seed(settings, seed, Path(out), task, env_config, test_env, timed, quiet=True)
    result.pop("agent")  # the checkpoint on disk is the agent; the driver loads it
    return {**result, "timings": timings}


def _add_seed_result(rows: list, training_logs: dict, result: dict) -> None:
    rows.extend(result["rows"])
    training_logs[result["seed"]] = result["log"]


class FixedPatternAgent:
    """The trained policy with one pattern held at the hand-written sentence (the ablation)."""

    def __init__(self, agent, pattern_index: int):
        self.agent, self.pattern_index = agent, pattern_index

    def act(self, observation, deterministic=True):
        actions = self.agent.act(observation, deterministic)
        actions[pa.PATTERNS[self.pattern_index]] = pa.HAND_WRITTEN[self.pattern_index]
        return actions

    def evaluate(self, env):
        from abgym.agents.rpp import RPPAgent

        results = []
        for index in range(len(env.users)):
            _, info = RPPAgent.run_episode(self, env, deterministic=True, options={"user_index": index})
            results.append(info)
        return results


def summarize(rows: list[dict], bound_user_ids: list[str]) -> list[dict]:
    """Per method: mean and 95% interval over users of the seed-averaged score; per-seed means; the paired
    difference from the hand-written prompt on the same users (mean and 95% interval: much tighter than the
    intervals of the means, which are mostly the spread of user difficulty); the mean on the enumeration users for
    comparison with the bound."""
    import pandas as pd

    frame = pd.DataFrame(rows)
    frame["user_id"] = frame["user_id"].astype(str)  # ids read back from a CSV come as numbers
    bound_user_ids = [str(u) for u in bound_user_ids]
    summary = []
    references = {}  # paired differences from these methods, on the users both have
    for name, key in (("hand-written", "ndcg@10_vs_hand_written"), ("best-fixed", "ndcg@10_vs_best_fixed")):
        part = frame[frame["method"] == name]
        if len(part):
            references[key] = part.groupby("user_id")["ndcg@10"].mean()
    for method, part in frame.groupby("method", sort=False):
        per_user = part.groupby("user_id")[list(METRICS)].mean()
        entry = {"method": method, "n_users": len(per_user), "n_seeds": part["seed"].nunique()}
        for metric in METRICS:
            mean, low, high = mean_ci(per_user[metric].to_numpy())
            entry.update({metric: mean, f"{metric}_low": low, f"{metric}_high": high})
        entry["ndcg@10_per_seed"] = [round(v, 4) for v in part.groupby("seed")["ndcg@10"].mean().tolist()]
        for key, reference in references.items():  # paired over the same users: their difficulty cancels out
            shared = per_user.index.intersection(reference.index)
            diff, low, high = mean_ci((per_user.loc[shared, "ndcg@10"] - reference.loc[shared]).to_numpy())
            entry.update({key: diff, f"{key}_low": low, f"{key}_high": high, f"{key}_n": len(shared)})
        if bound_user_ids:
            on_bound = per_user.loc[per_user.index.intersection(bound_user_ids), "ndcg@10"]
            entry["ndcg@10_on_enumeration_users"] = float(on_bound.mean()) if len(on_bound) else float("nan")
        summary.append(entry)
    return summary


def caption(labels: dict) -> str:
    return (f"Candidates: {labels['negatives']} negatives; recommender {labels['recommender']} "
            f"({labels['model']}); prompts for {labels['domain']}.")


def markdown_table(summary: list[dict], labels: dict | None = None) -> str:
    if labels is None and summary and "negatives" in summary[0]:
        labels = {k: summary[0][k] for k in ("negatives", "recommender", "model", "domain")}
    lines = ([caption(labels), ""] if labels else []) + [
        "| method | users | NDCG@10 [95% CI] | NDCG@10 minus hand-written, paired [95% CI] "
        "| NDCG@10 minus best fixed, paired [95% CI] | HR@1 [95% CI] "
        "| HR@3 [95% CI] | NDCG@10 per seed | NDCG@10 on enumeration users |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def paired(e, key, reference):
        if e["method"] == reference:
            return "(reference)"
        if key not in e:
            return ""
        text = f"{e[key]:+.3f} [{e[key + '_low']:+.3f}, {e[key + '_high']:+.3f}]"
        return text + (f" (on {e[key + '_n']} users)" if e[key + "_n"] < e["n_users"] else "")

    for e in summary:
        cells = [f"{e[m]:.3f} [{e[m + '_low']:.3f}, {e[m + '_high']:.3f}]" for m in METRICS]
        seeds = ", ".join(f"{v:.3f}" for v in e["ndcg@10_per_seed"])
        bound = e.get("ndcg@10_on_enumeration_users")
        bound = "-" if bound is None or not np.isfinite(bound) else f"{bound:.3f}"  # no bound users: no column value
        lines.append(f"| {e['method']} | {e['n_users']} | {cells[0]} | "
                     f"{paired(e, 'ndcg@10_vs_hand_written', 'hand-written')} | "
                     f"{paired(e, 'ndcg@10_vs_best_fixed', 'best-fixed')} | {' | '.join(cells[1:])} | {seeds} "
                     f"| {bound} |")
    return "\n".join(lines) + "\n"


def write_outputs(out: Path, rows, summary, run, training_logs, atomic_write, labels: dict | None = None) -> None:
    import pandas as pd

    labels = labels or {}
    with atomic_write(out / "per_user.csv", "w") as handle:
        pd.DataFrame(rows).assign(**labels).to_csv(handle, index=False)
    with atomic_write(out / "summary.csv", "w") as handle:
        pd.DataFrame(summary).assign(**labels).to_csv(handle, index=False)
    with atomic_write(out / "summary.md", "w") as handle:
        handle.write(markdown_table(summary, labels or None))
    with atomic_write(out / "run.json", "w") as handle:
        json.dump(run, handle, indent=2, default=str)
    plot(out, summary, training_logs)


def plot(out: Path, summary, training_logs) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Left: each method's NDCG@10 (bounded in [0, 1]; a Student-t interval on 3 users can leave it, so the axis is
    # clipped). Right: the paired difference from the hand-written prompt, which is what separates the methods.
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.5))
    names = [e["method"] for e in summary]
    means = np.array([e["ndcg@10"] for e in summary])
    errors = np.array([[e["ndcg@10"] - e["ndcg@10_low"] for e in summary],
                       [e["ndcg@10_high"] - e["ndcg@10"] for e in summary]])
    left.bar(names, means, yerr=np.nan_to_num(errors), capsize=3, color="tab:blue")
    left.set_ylim(0, 1.05)
    left.set_ylabel("NDCG@10 on test users (95% CI)")
    left.tick_params(axis="x", rotation=60)
    paired = [e for e in summary if "ndcg@10_vs_hand_written" in e and e["method"] != "hand-written"]
    if paired:
        diffs = np.array([e["ndcg@10_vs_hand_written"] for e in paired])
        spans = np.array([[e["ndcg@10_vs_hand_written"] - e["ndcg@10_vs_hand_written_low"] for e in paired],
                          [e["ndcg@10_vs_hand_written_high"] - e["ndcg@10_vs_hand_written"] for e in paired]])
        labels = [e["method"] + (f" ({e['n_users']} users)" if e["n_users"] < max(x["n_users"] for x in summary)
                                 else "") for e in paired]
        right.barh(labels, diffs, xerr=np.nan_to_num(spans), capsize=3,
                   color=["tab:green" if d > 0 else "tab:red" for d in diffs])
        right.axvline(0, color="black", linewidth=0.8)
        right.set_xlim(max(-1.0, right.get_xlim()[0]), min(1.0, right.get_xlim()[1]))
        right.invert_yaxis()
        right.set_xlabel("NDCG@10 minus the hand-written prompt's, paired by user (95% CI)")
    fig.tight_layout()
    fig.savefig(out / "ndcg.png", dpi=120)
    plt.close(fig)
    if training_logs:
        fig, ax = plt.subplots(figsize=(7, 4))
        for seed, log in training_logs.items():
            history = log["history"]
            ax.plot([h["episodes"] for h in history], [h["train_ndcg"] for h in history], label=f"train, seed {seed}")
            val = [(h["episodes"], h["validation_ndcg"]) for h in history if "validation_ndcg" in h]
            if val:
                ax.plot(*zip(*val), "o--", label=f"validation, seed {seed}")
        ax.set_xlabel("episodes")
        ax.set_ylabel("NDCG@10")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "training.png", dpi=120)
        plt.close(fig)
