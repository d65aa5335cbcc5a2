"""``abgym marketing compare``: the personalized-marketing comparison (classical A/B, bandits, PPO, RL-LLM-AB).

    abgym marketing compare --quick --out results/marketing-quick      # the CI version, about a minute
    abgym marketing compare --seeds 5 --arrivals 3000 --out results/marketing
    tensorboard --logdir results/marketing/runs

The experiment itself is ``experiments/marketing_comparison.py`` in the source checkout (it is a study, not part of
the installed library); this command finds and runs it.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

EXPERIMENT = Path("experiments") / "marketing_comparison.py"


def _experiment_path() -> Path | None:
    for base in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (base / EXPERIMENT).is_file():
            return base / EXPERIMENT
    return None


def load_experiment():
    """Import experiments/marketing_comparison.py from the checkout, or explain where it is expected."""
    path = _experiment_path()
    if path is None:
        raise FileNotFoundError(f"{EXPERIMENT} not found: run this command from an abgym source checkout "
                                "(git clone, then pip install -e .), where the experiments folder lives")
    spec = importlib.util.spec_from_file_location("abgym_marketing_comparison", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def register(subparsers) -> None:
    parser = subparsers.add_parser("marketing", help="personalized-marketing agents: the comparison",
                                   description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="marketing_command", metavar="SUBCOMMAND")
    compare = commands.add_parser("compare", help="run the comparison of arXiv 2506.06316 on PersonalizedMarketing-v0")
    path = _experiment_path()
    if path is not None:
        load_experiment().add_arguments(compare)  # argparse only: the heavy imports wait for the handler
    compare.set_defaults(handler=run_compare)
    parser.set_defaults(handler=lambda args: (parser.print_help(), 2)[1])


def run_compare(args) -> int:
    try:
        experiment = load_experiment()
    except FileNotFoundError as error:
        print(f"abgym marketing compare: error: {error}", file=sys.stderr)
        return 2
    try:
        config = experiment.config_from_args(args)
        result = experiment.run_comparison(config)
    except (ValueError, RuntimeError) as error:
        print(f"abgym marketing compare: error: {error}", file=sys.stderr)
        return 2
    print(experiment.markdown_table(result["summary"]))
    print(f"outputs in {result['out']} (TensorBoard: tensorboard --logdir {result['out'] / 'runs'})")
    return 0
