"""``abgym marketing compare``: the personalized-marketing comparison (classical A/B, bandits, PPO, RL-LLM-AB).

    abgym marketing compare --quick --out results/marketing-quick      # the CI version, about a minute
    abgym marketing compare --seeds 5 --arrivals 3000 --out results/marketing
    tensorboard --logdir results/marketing/runs

The study itself is ``abgym.studies.marketing_comparison`` (also runnable as ``experiments/marketing_comparison.py``).
"""
from __future__ import annotations

import sys


def load_experiment():
    """The comparison module; it imports only numpy at the top, the agents and torch wait for the run."""
    from abgym.studies import marketing_comparison

    return marketing_comparison


def register(subparsers) -> None:
    parser = subparsers.add_parser("marketing", help="personalized-marketing agents: the comparison",
                                   description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="marketing_command", metavar="SUBCOMMAND")
    compare = commands.add_parser("compare", help="run the comparison of arXiv 2506.06316 on PersonalizedMarketing-v0")
    load_experiment().add_arguments(compare)
    compare.set_defaults(handler=run_compare)
    parser.set_defaults(handler=lambda args: (parser.print_help(), 2)[1])


def run_compare(args) -> int:
    experiment = load_experiment()
    try:
        config = experiment.config_from_args(args)
        result = experiment.run_comparison(config)
    except (ValueError, RuntimeError) as error:
        print(f"abgym marketing compare: error: {error}", file=sys.stderr)
        return 2
    print(experiment.markdown_table(result["summary"]))
    print(f"outputs in {result['out']} (TensorBoard: tensorboard --logdir {result['out'] / 'runs'})")
    return 0
