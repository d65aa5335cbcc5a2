"""``abgym evaluate``: run agents (or a trained SB3 model) on any abgym environment and print the results table.

    abgym evaluate --env abgym/ABTest-v0 --agent thompson --episodes 20 --seeds 0 1 2 --split test \\
        --csv results/thompson.csv --markdown results/thompson.md --logdir runs/
    abgym evaluate --env abgym/PersonalizedMarketing-v0 --agent random linucb classical-ab --model runs/ppo/model.zip

The metrics are the ones the env reports (regret against its oracle, CTR, conversion, revenue, NDCG@10), with
95 % intervals; see :mod:`abgym.evaluation`.
"""
from __future__ import annotations

import argparse
import ast
import sys


def register(subparsers) -> None:
    from abgym.commands.options import non_negative_int

    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate A/B-test agents on an environment (tidy table with 95%% confidence intervals)",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--env", default="abgym/ABTest-v0", help="environment id (default: %(default)s)")
    parser.add_argument(
        "--agent", nargs="+", default=["thompson"], metavar="NAME",
        help="one or more agent names: random, ab-test, msprt, epsilon-greedy, ucb1, thompson, thompson-ranker "
        "(A/B agents, any env); linucb, lints, egreedy-linear (the marketing envs); classical-ab (default: thompson)",
    )
    parser.add_argument("--model", metavar="PATH", nargs="+",
                        help="Stable-Baselines3 model file(s) (model.zip, as `abgym train` or model.save writes), "
                        "evaluated too")
    parser.add_argument("--agent-reset", choices=["auto", "episode", "seed"], default="auto",
                        help="when agents start afresh: every episode, once per seed (they keep learning across "
                        "episodes), or auto: when the campaign changes (default: %(default)s)")
    parser.add_argument("--episodes", type=episodes_arg, default=20,
                        help="episodes per seed, or 'all': every experiment once per seed (default: %(default)s)")
    parser.add_argument("--seeds", type=non_negative_int, nargs="+", default=[0], help="seeds (default: 0)")
    add_env_options(parser)
    parser.add_argument("--csv", metavar="PATH", help="write the summary table as CSV")
    parser.add_argument("--markdown", metavar="PATH", help="write the summary table as Markdown")
    parser.add_argument("--episodes-csv", metavar="PATH", help="write the per-episode table as CSV")
    parser.add_argument("--logdir", metavar="DIR", help="write TensorBoard and CSV logs, one folder per agent")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def add_env_options(parser) -> None:
    """Options that become ``gymnasium.make`` keyword arguments (shared with ``abgym train``)."""
    parser.add_argument("--split", choices=["train", "test", "all"], help="ABTest-v0: which experiments to replay")
    parser.add_argument("--data", metavar="CSV", help="ABTest-v0: an Upworthy archive CSV (default: shipped subset)")
    parser.add_argument(
        "--ctr-source", choices=["empirical", "posterior"],
        help="ABTest-v0: true click rates are the recorded ones or Beta-posterior draws per episode",
    )
    parser.add_argument(
        "--env-arg", action="append", default=[], metavar="KEY=VALUE",
        help="any other gymnasium.make keyword argument (value read as a Python literal), repeatable",
    )


def env_kwargs_from(args) -> dict:
    kwargs = {}
    for item in args.env_arg:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"abgym: error: --env-arg expects KEY=VALUE, got {item!r}")
        try:
            kwargs[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            kwargs[key] = value  # a plain string
    for key, value in (("split", args.split), ("data_path", args.data), ("ctr_source", args.ctr_source)):
        if value is not None:
            kwargs[key] = value
    return kwargs


def episodes_arg(text: str) -> int | str:
    return "all" if text == "all" else positive_int(text)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def run(args) -> int:
    from abgym.agents.registry import ALIASES, AGENTS
    from abgym.evaluation import evaluate, print_summary

    unknown = [name for name in args.agent if name not in AGENTS and name not in ALIASES]
    if unknown:
        print(f"abgym evaluate: error: unknown agent(s) {unknown}; known agents: {', '.join(AGENTS)}", file=sys.stderr)
        return 2
    policies: list = list(args.agent)
    try:
        from abgym.commands.options import check_output_file

        for path, option in ((args.csv, "--csv"), (args.markdown, "--markdown"),
                             (args.episodes_csv, "--episodes-csv")):
            check_output_file(path, option)  # before the evaluation, not after it
        if args.logdir:
            from abgym.commands.options import check_output_folder

            check_output_folder(args.logdir, "--logdir")
        from abgym.evaluation import load_sb3_model

        policies += [load_sb3_model(path) for path in args.model or []]
        result = evaluate(
            policies, args.env, episodes=args.episodes, seeds=args.seeds, env_kwargs=env_kwargs_from(args),
            logdir=args.logdir, progress=not args.no_progress, agent_reset=args.agent_reset,
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"abgym evaluate: error: {error}", file=sys.stderr)
        return 2
    print_summary(result.summary, title=f"{args.env}, "
                  + ("every experiment" if args.episodes == "all" else f"{args.episodes} episodes")
                  + f" x seeds {args.seeds}",
                  console=wide_console())
    write_tables(result, csv=args.csv, markdown=args.markdown, episodes_csv=args.episodes_csv)
    return 0


def write_tables(result, csv=None, markdown=None, episodes_csv=None) -> None:
    from abgym.paths import atomic_write

    for path, text in (
        (csv, lambda: result.summary.to_csv(index=False)),
        (markdown, result.to_markdown),
        (episodes_csv, lambda: result.episodes.to_csv(index=False)),
    ):
        if path:
            with atomic_write(path, "w") as handle:
                handle.write(text())
            print(f"wrote {path}")


def wide_console():
    """Rich console that keeps the table readable when stdout is a pipe or a CI log (80 columns otherwise)."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)
