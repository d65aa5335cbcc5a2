"""``abgym rpp train|evaluate``: prompt personalization with RPP on MovieLens-100K (or any RecBole dataset)."""
from __future__ import annotations

import argparse


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="movielens-100k",
                        help="movielens-100k, synthetic, or a RecBole folder / .inter file with an item title field")
    parser.add_argument("--data-path", default=None, help="folder of MovieLens-100K if it is not found on its own")
    parser.add_argument("--recommender", default="llm-score",
                        choices=["llm-score", "llm-calibrated", "llm-generate", "synthetic"],
                        help="how the LLM ranks: title likelihood (llm-score), likelihood minus the title's prior "
                             "after a neutral prompt (llm-calibrated), or a generated list (llm-generate)")
    parser.add_argument("--model", default="gemma3-270m", choices=["gemma3-270m", "smollm2-135m"],
                        help="the local LLM: gemma3-270m (default; base model under the Gemma Terms of Use, "
                             "https://ai.google.dev/gemma/terms) or smollm2-135m (SmolLM2-135M-Instruct)")
    # The choices are abgym.data.recommendation.NEGATIVE_PROTOCOLS, spelled out so that `--help` stays light.
    parser.add_argument("--negatives", default="popularity", choices=["popularity", "uniform", "popularity-weighted"],
                        help="candidate negatives: from the target's popularity band (default; popularity alone "
                             "cannot find the target), uniform over unseen items (the RPP paper's), or in "
                             "proportion to popularity")
    parser.add_argument("--domain", default=None, choices=["movies", "music", "games", "products"],
                        help="wording of the prompts; default: guessed from the dataset's name and item fields")
    parser.add_argument("--embedder", default="minilm", choices=["minilm", "hashing"])
    parser.add_argument("--rounds", type=int, default=3, help="prompt refinements per episode")
    parser.add_argument("--train-users", type=int, default=200)
    parser.add_argument("--validation-users", type=int, default=30)
    parser.add_argument("--episodes", type=int, default=200, help="RPP training episodes per seed")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--episodes-per-update", type=int, default=16)
    # The choices are abgym.agents.rpp.REWARD_BASELINES, spelled out so that `--help` does not import torch.
    parser.add_argument("--reward-baseline", default="initial-prompt", choices=["initial-prompt", "none"],
                        help="subtract the user's NDCG under the starting prompt from RPP's reward (default), or not")
    parser.add_argument("--eval-every", type=int, default=4, help="validate every this many updates (and at the end)")
    parser.add_argument("--out", default="results/rpp")


def register(subparsers) -> None:
    from abgym.commands.options import non_negative_int

    parser = subparsers.add_parser("rpp", help="prompt personalization (RPP / RPP+) with a local LLM recommender")
    commands = parser.add_subparsers(dest="rpp_command", metavar="{train,evaluate}", required=True)

    train = commands.add_parser("train", help="train RPP on train users, keep the best checkpoint on validation users")
    _common(train)
    train.add_argument("--seed", type=non_negative_int, default=0)
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser(
        "evaluate", help="every method and baseline on test users, 3 seeds: CSV, Markdown, plots, TensorBoard"
    )
    _common(evaluate)
    evaluate.add_argument("--seeds", type=non_negative_int, nargs="+", default=[0, 1, 2])
    evaluate.add_argument("--test-users", type=int, default=100)
    evaluate.add_argument("--search-users", type=int, default=30, help="train users the best fixed prompt is found on")
    evaluate.add_argument("--enumeration-users", type=int, default=3,
                          help="test users all 675 prompts are tried on (0: skip the bound)")
    evaluate.add_argument("--no-ablation", action="store_true")
    evaluate.add_argument("--ablation-seeds", type=int, default=1, help="how many seeds' policies the ablation runs on")
    evaluate.add_argument("--search-passes", type=int, default=1)
    evaluate.add_argument("--no-rpp-plus", action="store_true")
    from abgym.parallel import add_backend_arguments

    add_backend_arguments(evaluate)  # --backend ray: each seed's RPP training and test a Ray task (docs/scaling.md)
    evaluate.set_defaults(handler=_evaluate)


def _check(args) -> None:
    from abgym.commands.options import check_output_folder

    for name in ("rounds", "train_users", "validation_users", "episodes", "episodes_per_update", "eval_every",
                 "test_users", "search_users", "enumeration_users", "ablation_seeds", "search_passes"):
        if getattr(args, name, 1) < (0 if name == "enumeration_users" else 1):  # the last five: evaluate's only
            raise SystemExit(f"abgym rpp: error: --{name.replace('_', '-')} must be at least "
                             f"{0 if name == 'enumeration_users' else 1}, got {getattr(args, name)}")
    check_output_folder(args.out, "--out")  # before the training, not after it


def _train(args) -> int:
    _check(args)
    from pathlib import Path

    from torch.utils.tensorboard import SummaryWriter

    from abgym.agents.rpp import RPPAgent, RPPConfig
    from abgym.envs.prompt_personalization import parallel_env

    config = {"dataset": args.dataset, "data_path": args.data_path, "recommender": args.recommender,
              "embedder": args.embedder, "rounds": args.rounds, "max_users": args.train_users,
              "negatives": args.negatives, "language_model": args.model, "domain": args.domain}
    env = parallel_env(config)
    validation = parallel_env({**config, "split": "validation", "max_users": args.validation_users}, task=env.task)
    agent = RPPAgent(env.task.dim, RPPConfig(learning_rate=args.learning_rate, reward_baseline=args.reward_baseline,
                                             episodes_per_update=args.episodes_per_update), seed=args.seed)
    out = Path(args.out)
    writer = SummaryWriter(str(out / "tensorboard" / f"train_seed{args.seed}"))
    log = agent.train(env, episodes=args.episodes, validation_env=validation, eval_every=args.eval_every,
                      writer=writer, progress=True)
    writer.close()
    env.close()
    agent.save(out / f"rpp_seed{args.seed}.pt")
    print(f"trained {log.episodes} episodes ({log.rankings} rankings) in {log.seconds:.0f} s; best validation "
          f"NDCG@10 {log.best_validation_ndcg:.3f}; checkpoint {out / f'rpp_seed{args.seed}.pt'}")
    return 0


def _evaluate(args) -> int:
    _check(args)
    from abgym.studies.rpp_evaluation import EvaluationSettings, markdown_table, run_evaluation

    settings = EvaluationSettings(
        dataset=args.dataset, data_path=args.data_path, recommender=args.recommender, embedder=args.embedder,
        negatives=args.negatives, language_model=args.model, domain=args.domain,
        seeds=tuple(args.seeds), n_train=args.train_users, n_validation=args.validation_users,
        n_test=args.test_users, rounds=args.rounds, episodes=args.episodes, learning_rate=args.learning_rate,
        n_search_users=args.search_users, n_enumeration_users=args.enumeration_users,
        ablation=not args.no_ablation, rpp_plus=not args.no_rpp_plus, ablation_seeds=args.ablation_seeds,
        episodes_per_update=args.episodes_per_update, eval_every=args.eval_every, search_passes=args.search_passes,
        reward_baseline=args.reward_baseline, backend=args.backend, address=args.address,
    )
    result = run_evaluation(settings, args.out)
    print(markdown_table(result["summary"]))
    return 0
