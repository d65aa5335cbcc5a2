"""``abgym ope``: off-policy evaluation on the Open Bandit Dataset (real logged marketing data with propensities).

    abgym ope validate                              # BTS's click rate estimated from the random log, vs on-policy
    abgym ope validate --campaign every --json results/ope/validate.json
    abgym ope validate --data-path /data/open_bandit_dataset   # the full dataset, same layout: narrower intervals
    abgym ope evaluate --data obd --policy linucb lints egreedy ppo bts random --out results/ope

The study is ``abgym.studies.off_policy``; see docs/off_policy.md.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

CAMPAIGN_CHOICES = ("all", "men", "women", "every")


def register(subparsers) -> None:
    parser = subparsers.add_parser("ope", help="off-policy evaluation on the Open Bandit Dataset",
                                   description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="ope_command", metavar="SUBCOMMAND")

    validate = commands.add_parser("validate", help="estimate BTS's value from the random log; compare on-policy")
    validate.add_argument("--campaign", default="all", choices=CAMPAIGN_CHOICES,
                          help="OBD campaign ('every' runs all three); default all")
    _data_arguments(validate)
    validate.add_argument("--n-sim", type=int, default=100_000,
                          help="Monte Carlo draws for BTS's action probabilities (the authors use 100,000)")
    validate.add_argument("--model-refits", type=int, default=200,
                          help="bootstrap resamples that refit the reward model, for DM's and DR's intervals "
                               "(0: resample rows only, faster and narrower than honest)")
    validate.add_argument("--json", type=Path, default=None, help="write the result as JSON here")
    validate.set_defaults(handler=run_validate)

    evaluate = commands.add_parser("evaluate", help="value abgym's agents offline on OBD (table and plot)")
    evaluate.add_argument("--data", default="obd", choices=("obd",), help="the logged data (the Open Bandit Dataset)")
    evaluate.add_argument("--campaign", default="all", choices=CAMPAIGN_CHOICES[:3])
    evaluate.add_argument("--policy", nargs="+", default=["linucb", "lints", "egreedy", "ppo", "bts", "random"],
                          help="policies to value: linucb, lints, egreedy (abgym's contextual bandits, trained on "
                               "the earlier part of the random log), ppo (SB3 PPO trained on the replay env over "
                               "that part), bts (ZOZOTOWN's prior), random")
    evaluate.add_argument("--ppo-steps", type=int, default=50_000, help="PPO training steps on the replay env")
    evaluate.add_argument("--replay-seeds", type=int, default=5,
                          help="also run the bandits online on abgym/OpenBanditReplay-v0 with this many seeds "
                               "(0: skip)")
    _data_arguments(evaluate)
    evaluate.add_argument("--test-fraction", type=float, default=0.3,
                          help="the later share of the random log the policies are valued on")
    evaluate.add_argument("--model-refits", type=int, default=100,
                          help="bootstrap resamples that refit the reward model, for DM's and DR's intervals (0: off)")
    evaluate.add_argument("--out", type=Path, default=Path("results/ope"), help="folder for the table and plot")
    evaluate.set_defaults(handler=run_evaluate)
    parser.set_defaults(handler=lambda args: (parser.print_help(), 2)[1])


def _data_arguments(parser) -> None:
    parser.add_argument("--data-path", type=Path, default=None,
                        help="root of the full Open Bandit Dataset (random/ and bts/ inside); default the sample "
                             "bundled in obp==0.4.1")
    parser.add_argument("--n-bootstrap", type=int, default=2000, help="bootstrap resamples for the 95%% intervals")
    parser.add_argument("--seed", type=int, default=0)


def _fail(command: str, error: Exception) -> int:
    print(f"abgym ope {command}: error: {error}", file=sys.stderr)
    return 2


def run_validate(args) -> int:
    from abgym.paths import atomic_write
    from abgym.studies import off_policy

    campaigns = ["all", "men", "women"] if args.campaign == "every" else [args.campaign]
    try:
        if args.n_sim < 1 or args.n_bootstrap < 100 or not (args.model_refits == 0 or args.model_refits >= 100):
            raise ValueError("--n-sim must be >= 1, --n-bootstrap >= 100 and --model-refits 0 or >= 100 (fewer "
                             "resamples give no usable 95% interval)")
        results = [off_policy.validate_bts_from_random(campaign, args.data_path, n_sim=args.n_sim,
                                                       n_bootstrap=args.n_bootstrap, seed=args.seed,
                                                       model_refits=args.model_refits) for campaign in campaigns]
    except ValueError as error:
        return _fail("validate", error)
    print(off_policy.validation_table(results))
    if args.json is not None:
        payload = results[0] if len(results) == 1 else {"campaigns": {r["campaign"]: r for r in results}}
        with atomic_write(args.json, "w") as handle:
            json.dump(payload, handle, indent=2)
        print(f"wrote {args.json}")
    return 0


def run_evaluate(args) -> int:
    from abgym.studies import off_policy

    try:
        if args.n_bootstrap < 100 or not (args.model_refits == 0 or args.model_refits >= 100):
            raise ValueError("--n-bootstrap must be >= 100 and --model-refits 0 or >= 100 (fewer resamples give no "
                             "usable 95% interval)")
        if args.replay_seeds < 0:
            raise ValueError(f"--replay-seeds must be >= 0, got {args.replay_seeds}")
        result = off_policy.evaluate_agents(args.policy, campaign=args.campaign, data_path=args.data_path,
                                            test_fraction=args.test_fraction, n_bootstrap=args.n_bootstrap,
                                            model_refits=args.model_refits, seed=args.seed,
                                            ppo_steps=args.ppo_steps)
        if args.replay_seeds:
            replayed = [name for name in args.policy if name in off_policy.REPLAY_POLICIES]
            result["replay"] = off_policy.replay_agents(replayed, campaign=args.campaign, data_path=args.data_path,
                                                        seeds=range(args.seed, args.seed + args.replay_seeds))
        paths = off_policy.write_agents_report(result, args.out)
    except ValueError as error:
        return _fail("evaluate", error)
    print(off_policy.agents_table(result))
    if result.get("replay"):
        print(off_policy.replay_table(result["replay"]))
    print("wrote " + ", ".join(str(path) for path in paths))
    return 0
