"""``abgym marketing compare`` and ``headroom``: the personalized-marketing comparison and what there is to gain.

    abgym marketing headroom --quick                                   # CustomerJourney-v0's four reference policies
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
    headroom = commands.add_parser(
        "headroom", help="CustomerJourney-v0: lifetime reward of random, best fixed, myopic and long-term oracles",
        description="Expected lifetime reward per user (95%% intervals over users) of four reference policies on "
                    "the same users of abgym/CustomerJourney-v0, and the paired gaps between them.")
    headroom.add_argument("--quick", action="store_true", help="400 users, 16 rollouts (a few seconds)")
    headroom.add_argument("--users", type=int, help="users (journeys) per policy (default: 2000; quick: 400)")
    headroom.add_argument("--rollouts", type=int, help="rollouts per variant and decision of the long-term oracle "
                                                       "(default: 32; quick: 16)")
    headroom.add_argument("--seed", type=int, default=0, help="seed of the users and responses (default: 0)")
    headroom.add_argument("--env-config", default="{}", help="JSON overrides of the env's default_config()")
    headroom.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    headroom.set_defaults(handler=run_headroom)
    parser.set_defaults(handler=lambda args: (parser.print_help(), 2)[1])


def run_compare(args) -> int:
    experiment = load_experiment()
    try:
        config = experiment.config_from_args(args)
        result = experiment.run_any(config)
    except (ValueError, RuntimeError) as error:
        print(f"abgym marketing compare: error: {error}", file=sys.stderr)
        return 2
    print(experiment.table_for(result))
    print(f"outputs in {result['out']} (TensorBoard: tensorboard --logdir {result['out'] / 'runs'})")
    return 0


def run_headroom(args) -> int:
    import json

    from abgym.studies import journey_headroom as study

    try:
        env_config = json.loads(args.env_config)
        if not isinstance(env_config, dict):
            raise ValueError("--env-config must be a JSON object, e.g. '{\"max_visits\": 20}'")
        users = args.users or (study.QUICK_USERS if args.quick else study.DEFAULT_USERS)
        rollouts = args.rollouts or (study.QUICK_ROLLOUTS if args.quick else study.DEFAULT_ROLLOUTS)
        if users < 2 or rollouts < 1 or args.seed < 0:
            raise ValueError("--users must be >= 2, --rollouts >= 1 and --seed >= 0")
        print(f"headroom of abgym/CustomerJourney-v0: {users} users, long-term oracle with {rollouts} rollouts "
              "per variant", flush=True)
        result = study.headroom(env_config, users=users, seed=args.seed, rollouts=rollouts,
                                log=lambda line: print(line, flush=True))
        if args.json:
            study.write_json(result, args.json)
    except json.JSONDecodeError as error:
        print(f"abgym marketing headroom: error: --env-config is not valid JSON ({error})", file=sys.stderr)
        return 2
    except (ValueError, OSError) as error:
        print(f"abgym marketing headroom: error: {error}", file=sys.stderr)
        return 2
    print(study.markdown_table(result))
    print(f"long-term oracle: {result['longterm_oracle_method']}; {result['seconds']:.1f} s"
          + (f"; wrote {args.json}" if args.json else ""))
    return 0
