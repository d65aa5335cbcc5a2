"""A Ray Tune sweep of LinUCB's hyperparameters over seeds on PersonalizedMarketing-v0, into one table.

Each trial is one (alpha, interaction_l2, seed) run of the marketing comparison's LinUCB, learning online for a
budget of arrivals (the same env, recorder and metrics as ``abgym marketing compare``); Tune runs the grid as
trials on a local Ray instance (or a cluster: ``--address``). The table gives, per setting, the mean cumulative
regret and its 95% t-interval over the seeds, best first; seeds 0-2 tuned the comparison's bandits, so the sweep
uses others by default.

    python -m abgym.studies.tune_sweep --out results/tune-linucb                     # 3 x 2 settings x 3 seeds
    python -m abgym.studies.tune_sweep --alpha 0.1 0.5 2 --l2 300 3000 --seeds 5 --arrivals 3000

Outputs in ``--out``: ``trials.csv`` (one row per trial), ``summary.csv`` and ``summary.md``, ``tune/`` (Tune's
own experiment folder).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path



def run_linucb(params: dict) -> dict:
    """LinUCB with ``params`` for ``params['arrivals']`` arrivals on seed ``params['seed']``: its online metrics."""
    from abgym.agents.contextual import LinUCB
    from abgym.studies import marketing_comparison as marketing

    config = marketing.ComparisonConfig(arrivals=int(params["arrivals"]), recovery_window=int(params["window"]))
    seed = int(params["seed"])
    env = marketing.make_env(config, params["drift"], seed)
    agent = LinUCB(alpha=float(params["alpha"]), model="disjoint", seed=seed,
                   interaction_l2=float(params["interaction_l2"]))
    recorder = marketing.OnlineRecorder(config.arrivals)
    marketing.run_bandit(agent, env, seed, recorder, config.arrivals)
    env.close()
    metrics = marketing.run_metrics(recorder, config.recovery_window)
    return {key: float(metrics[key]) for key in ("cumulative_regret", "ctr", "conversion", "revenue")}


def trial(params: dict) -> None:
    """One Tune trial: :func:`run_linucb`, its metrics reported to Tune."""
    from ray import tune

    tune.report(run_linucb(params))


def sweep(alphas, l2s, seeds, arrivals: int = 600, drift: str = "off", out: Path = Path("results/tune-linucb"),
          address: str | None = None, log=print) -> list[dict]:
    """Run the grid with Ray Tune; one summary row per (alpha, interaction_l2), lowest mean regret first."""
    if not alphas or not l2s or not seeds:
        raise ValueError("the sweep needs at least one alpha, one l2 and one seed")
    if arrivals < 10:
        raise ValueError(f"--arrivals must be >= 10, got {arrivals}")
    if min(alphas) < 0 or min(l2s) <= 0:
        raise ValueError("alpha must be >= 0 and l2 > 0")
    try:
        import ray
        from ray import tune
    except ImportError as error:
        raise ValueError(f"the Tune sweep needs Ray ({error}); install it: pip install 'abgym[ray]'") from None
    from abgym.parallel import init_ray

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    started_here = not ray.is_initialized()
    if started_here:
        init_ray(address)
    try:
        space = {"alpha": tune.grid_search(list(alphas)), "interaction_l2": tune.grid_search(list(l2s)),
                 "seed": tune.grid_search(list(seeds)), "arrivals": arrivals, "drift": drift,
                 "window": max(10, min(200, arrivals // 10))}
        tuner = tune.Tuner(tune.with_resources(trial, {"cpu": 1}), param_space=space,
                           tune_config=tune.TuneConfig(metric="cumulative_regret", mode="min"),
                           run_config=tune.RunConfig(name="linucb", storage_path=str(out / "tune"), verbose=0))
        grid = tuner.fit()
    finally:
        if started_here:
            ray.shutdown()
    errors = [result.error for result in grid if result.error is not None]
    if errors:
        raise RuntimeError(f"{len(errors)} of {len(grid)} trials failed; the first: {errors[0]}")
    trials = [{"alpha": result.config["alpha"], "interaction_l2": result.config["interaction_l2"],
               "seed": result.config["seed"], **{k: result.metrics[k] for k in
                                                 ("cumulative_regret", "ctr", "conversion", "revenue")}}
              for result in grid]
    trials.sort(key=lambda row: (row["alpha"], row["interaction_l2"], row["seed"]))
    summary = summarize(trials)
    write_outputs(out, trials, summary, arrivals, drift)
    log(markdown_table(summary))
    return summary


def summarize(trials: list[dict]) -> list[dict]:
    from abgym.studies.marketing_comparison import mean_interval

    rows = []
    for alpha, l2 in sorted({(t["alpha"], t["interaction_l2"]) for t in trials}):
        runs = [t for t in trials if t["alpha"] == alpha and t["interaction_l2"] == l2]
        row = {"alpha": alpha, "interaction_l2": l2, "seeds": len(runs)}
        for metric in ("cumulative_regret", "revenue", "ctr"):
            row[metric], row[metric + "_ci95"] = mean_interval([t[metric] for t in runs])
        rows.append(row)
    return sorted(rows, key=lambda row: row["cumulative_regret"])


def markdown_table(summary: list[dict]) -> str:
    from abgym.studies.marketing_comparison import _fmt

    lines = ["| alpha | interaction_l2 | seeds | cumulative regret | revenue / arrival | CTR |", "|---|---|---|---|---|---|"]
    for row in summary:
        lines.append(f"| {row['alpha']:g} | {row['interaction_l2']:g} | {row['seeds']} "
                     f"| {_fmt(row['cumulative_regret'], row['cumulative_regret_ci95'], 1)} "
                     f"| {_fmt(row['revenue'], row['revenue_ci95'], 4)} | {_fmt(row['ctr'], row['ctr_ci95'], 4)} |")
    return "\n".join(lines)


def write_outputs(out: Path, trials, summary, arrivals: int, drift: str) -> None:
    from abgym.studies.marketing_comparison import write_rows
    from abgym.paths import atomic_write

    write_rows(out / "trials.csv", trials)
    write_rows(out / "summary.csv", summary)
    seeds = sorted({t["seed"] for t in trials})
    with atomic_write(out / "summary.md", "w") as handle:
        handle.write(f"# LinUCB on PersonalizedMarketing-v0, a Ray Tune sweep\n\n{arrivals} arrivals per run, drift "
                     f"{drift}, seeds {seeds}; mean ± 95% t-interval over seeds, lowest regret first.\n\n"
                     + markdown_table(summary) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alpha", type=float, nargs="+", default=[0.1, 0.5, 2.0], help="LinUCB's exploration")
    parser.add_argument("--l2", type=float, nargs="+", default=[300.0, 3000.0],
                        help="ridge penalty of the personal interactions (interaction_l2)")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (default: %(default)s)")
    parser.add_argument("--first-seed", type=int, default=100, help="(default: %(default)s; 0-2 tuned the bandits)")
    parser.add_argument("--arrivals", type=int, default=600, help="arrivals per run (default: %(default)s)")
    parser.add_argument("--drift", choices=["off", "on"], default="off")
    parser.add_argument("--address", default=None, help="an existing Ray cluster (default: a local instance)")
    parser.add_argument("--out", default="results/tune-linucb", help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        if args.seeds < 1:
            raise ValueError("--seeds must be >= 1")
        seeds = list(range(args.first_seed, args.first_seed + args.seeds))
        sweep(args.alpha, args.l2, seeds, args.arrivals, args.drift, Path(args.out), args.address)
    except (ValueError, RuntimeError) as error:
        print(f"tune sweep: error: {error}", file=sys.stderr)
        return 2
    print(f"outputs in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
