"""``abgym demo``: the main job. Every classical baseline on held-out Upworthy experiments, several seeds.

    abgym demo --out results/demo

Replays every experiment of the test split of ABTest-v0 (never seen by anything fitted on the train split), with the
arms' true click rates drawn from each experiment's Beta posterior (``ctr_source="posterior"``), so that every
seed replays a plausible truth rather than the one noisy recorded CTR. All agents meet the same experiments and
environment seeds. Writes to ``--out``:

* ``summary.csv``, ``summary.md``: one row per agent, mean and 95 % confidence interval over episodes;
* ``episodes.csv``: one row per episode;
* ``regret.png``: mean cumulative regret against the share of the experiment's traffic, with 95 % bands;
* ``tensorboard/<agent>/``: per-episode scalars (``tensorboard --logdir <out>/tensorboard``).
"""
from __future__ import annotations

import time
from pathlib import Path

DEFAULT_EPISODES = "all"  # every held-out experiment, once per seed
DEFAULT_SEEDS = (0, 1, 2)


def register(subparsers) -> None:
    from abgym.commands.evaluate import episodes_arg

    parser = subparsers.add_parser("demo", help="the main job: every A/B baseline on held-out Upworthy tests",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/demo", help="output folder (default: %(default)s)")
    parser.add_argument("--episodes", type=episodes_arg, default=DEFAULT_EPISODES,
                        help="episodes per seed, or 'all': every held-out experiment once (default: %(default)s)")
    from abgym.commands.options import non_negative_int

    parser.add_argument("--seeds", type=non_negative_int, nargs="+", default=list(DEFAULT_SEEDS),
                        help="seeds (default: 0 1 2)")
    parser.add_argument("--agents", nargs="+", metavar="NAME", help="agents (default: every classical baseline)")
    parser.add_argument("--data", metavar="CSV", help="an Upworthy archive CSV (default: the shipped subset)")
    parser.add_argument("--ctr-source", choices=["empirical", "posterior"], default="posterior",
                        help="true click rates: recorded, or a Beta-posterior draw per episode (default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-headroom", action="store_true",
                        help="skip the CustomerJourney-v0 headroom table (abgym marketing headroom --quick)")
    from abgym.parallel import add_backend_arguments

    add_backend_arguments(parser)  # --backend ray: each (agent, seed) cell a Ray task (docs/scaling.md)
    parser.set_defaults(handler=run)


def run(args) -> int:
    import sys

    from abgym.agents.registry import AGENTS, ALIASES, BASELINES
    from abgym.commands.evaluate import wide_console, write_tables
    from abgym.evaluation import evaluate, print_summary

    started = time.perf_counter()
    agents = list(args.agents or BASELINES)
    unknown = [name for name in agents if name not in AGENTS and name not in ALIASES]
    if unknown:
        print(f"abgym demo: error: unknown agent(s) {unknown}; known agents: {', '.join(AGENTS)}", file=sys.stderr)
        return 2
    out = Path(args.out)
    env_kwargs = {"split": "test", "ctr_source": args.ctr_source}
    if args.data:
        env_kwargs["data_path"] = args.data
    console = wide_console()
    console.print(
        f"abgym demo: {len(agents)} agents x "
        + ("every held-out experiment" if args.episodes == "all" else f"{args.episodes} held-out experiments")
        + f" x {len(args.seeds)} seeds (Upworthy, split=test, ctr_source={args.ctr_source})"
    )
    try:
        if getattr(args, "backend", "serial") == "serial" and getattr(args, "address", None) is None:
            result = evaluate(agents, "abgym/ABTest-v0", episodes=args.episodes, seeds=args.seeds,
                              env_kwargs=env_kwargs, logdir=out / "tensorboard", progress=not args.no_progress)
        else:
            from abgym.studies.parallel_evaluation import evaluate_parallel

            result = evaluate_parallel(agents, "abgym/ABTest-v0", args.episodes, args.seeds, env_kwargs=env_kwargs,
                                       logdir=out / "tensorboard", backend=args.backend, address=args.address)
    except (ValueError, FileNotFoundError) as error:
        print(f"abgym demo: error: {error}", file=sys.stderr)
        return 2
    print_summary(result.summary, title="A/B-test baselines on held-out Upworthy experiments", console=console)
    write_tables(result, csv=out / "summary.csv", markdown=out / "summary.md", episodes_csv=out / "episodes.csv")
    plot_regret(result, out / "regret.png", title=f"Held-out Upworthy experiments ({len(result.episodes) // len(agents)} "
                f"episodes per agent, true CTR: {args.ctr_source})")
    print(f"wrote {out / 'regret.png'}")
    print(f"TensorBoard: tensorboard --logdir {out / 'tensorboard'}")
    if not args.no_headroom:
        print_journey_headroom(out)
    print(f"abgym demo took {time.perf_counter() - started:.1f} s")
    return 0


def print_journey_headroom(out: Path) -> None:
    """What a long-term policy can gain on CustomerJourney-v0: the quick headroom table, also as headroom.json."""
    from abgym.studies import journey_headroom as study

    print(f"\nCustomerJourney-v0 headroom (abgym marketing headroom --quick: {study.QUICK_USERS} users, "
          f"long-term oracle with {study.QUICK_ROLLOUTS} rollouts per variant; lifetime reward per user):", flush=True)
    result = study.headroom(users=study.QUICK_USERS, rollouts=study.QUICK_ROLLOUTS)
    print(study.markdown_table(result))
    study.write_json(result, out / "headroom.json")
    print(f"wrote {out / 'headroom.json'} ({result['seconds']:.1f} s); the full table: abgym marketing headroom")


def plot_regret(result, path, title: str = "") -> Path:
    """Mean cumulative regret (expected clicks lost) over the experiment's traffic, one line and 95 % band per agent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from abgym.evaluation import curve_band
    from abgym.paths import atomic_write

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    final = {name: curves[:, -1].mean() for name, curves in result.curves.items()}
    for name in sorted(result.curves, key=final.get, reverse=True):  # legend order = order of the line ends
        curves = result.curves[name]
        share = np.linspace(0, 100, curves.shape[1])
        # 95 % band, cluster-robust by experiment like the table's intervals
        mean, half = curve_band(curves, result.episodes.loc[result.episodes["agent"] == name, "test_id"].to_numpy())
        line, = ax.plot(share, mean, label=f"{name} ({mean[-1]:.1f})", linewidth=2)
        if np.isfinite(half).all():
            ax.fill_between(share, mean - half, mean + half, color=line.get_color(), alpha=0.15, linewidth=0)
    ax.set_xlabel("share of the experiment's traffic shown (%)")
    ax.set_ylabel("cumulative regret (expected clicks lost)")
    ax.set_xlim(0, 100)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(title="agent (final regret)", loc="upper left", frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    with atomic_write(path) as handle:
        fig.savefig(handle, format="png")
    plt.close(fig)
    return path
