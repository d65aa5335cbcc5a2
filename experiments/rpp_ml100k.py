"""The RPP evaluation on MovieLens-100K (or any RecBole dataset) with a local LLM (default Gemma 3 270M), as one command.

    nice .venv/bin/python experiments/rpp_ml100k.py --budget shared   # a reduced run (20 test users, 40 train users)
    nice .venv/bin/python experiments/rpp_ml100k.py --budget full     # the issue's scale: 200 train users, 100 test
    nice .venv/bin/python experiments/rpp_ml100k.py --budget long     # the same, 4x the training at 3x the step size
    nice .venv/bin/python experiments/rpp_ml100k.py --budget reduced --recommender llm-calibrated  # a busy machine
    nice .venv/bin/python experiments/rpp_ml100k.py --budget full --dataset /work/data/lastfm  # a RecBole folder

``--dataset`` is movielens-100k (the default) or a RecBole folder / ``.inter`` file (e.g. LastFM's atomic files from
the RPP authors' repository, kept outside this repository); the prompts' domain is guessed from its name and item
fields (``--domain`` overrides it) and the default output folder is ``results/rpp-<dataset name>-<budget>``.

Extra arguments go to `abgym rpp evaluate` (e.g. --negatives uniform, --model smollm2-135m); the defaults are
popularity-band negatives and Gemma 3 270M likelihood scoring (docs/rpp.md says why); the tables before issue 14
used --negatives uniform --model smollm2-135m.

Each writes per_user.csv, summary.csv, summary.md, ndcg.png, training.png, tensorboard/ and run.json to --out.
docs/rpp.md reports ``full`` and ``long`` with their times; any extra arguments are passed on to `abgym rpp evaluate`.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from abgym.cli import main

BUDGETS = {
    "shared": ["--test-users", "20", "--train-users", "40", "--validation-users", "6", "--rounds", "2",
               "--episodes", "24", "--episodes-per-update", "8", "--eval-every", "3", "--learning-rate", "3e-3",
               "--search-users", "8", "--enumeration-users", "1", "--ablation-seeds", "1"],
    "full": ["--test-users", "100", "--train-users", "200", "--validation-users", "30", "--rounds", "3",
             "--episodes", "200", "--episodes-per-update", "16", "--learning-rate", "1e-3",
             "--search-users", "30", "--enumeration-users", "3", "--ablation-seeds", "3"],
}
# For a busy machine (issue 14's runs, at load 10-17 on the 2 cores: about 2.5 s per ranking instead of 0.19): the
# methods the comparison needs (no RPP+, ablation or enumeration bound), 40 test users, 60 train users, 48 episodes.
BUDGETS["reduced"] = ["--test-users", "40", "--train-users", "60", "--validation-users", "10", "--rounds", "2",
                      "--episodes", "48", "--episodes-per-update", "16", "--eval-every", "3", "--learning-rate", "3e-3",
                      "--search-users", "10", "--enumeration-users", "0", "--no-ablation", "--no-rpp-plus"]
# Between the two: issue 7's 100 test users and 3 seeds, half its train users, a quarter of its rankings.
BUDGETS["medium"] = ["--test-users", "100", "--train-users", "100", "--validation-users", "20", "--rounds", "2",
                     "--episodes", "96", "--episodes-per-update", "16", "--eval-every", "3", "--learning-rate", "3e-3",
                     "--search-users", "20", "--enumeration-users", "0", "--no-ablation", "--no-rpp-plus"]
# The issue allows about 20 minutes of training per seed; "full" uses about 4. "long" spends that time: 800 episodes
# (4 per train user on average) with a larger step, so that the actors can leave the uniform policy.
BUDGETS["long"] = ["--test-users", "100", "--train-users", "200", "--validation-users", "30", "--rounds", "3",
                   "--episodes", "800", "--episodes-per-update", "16", "--learning-rate", "3e-3", "--eval-every", "5",
                   "--search-users", "30", "--enumeration-users", "3", "--ablation-seeds", "3"]

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", choices=sorted(BUDGETS), default="shared")
    parser.add_argument("--dataset", default="movielens-100k",
                        help="movielens-100k, or a RecBole folder / .inter file (e.g. /work/data/lastfm)")
    parser.add_argument("--out", default=None)
    args, extra = parser.parse_known_args()
    name = "ml100k" if args.dataset == "movielens-100k" else Path(args.dataset).name.removesuffix(".inter")
    out = args.out or f"results/rpp-{name}-{args.budget}"
    sys.exit(main(["rpp", "evaluate", "--seeds", "0", "1", "2", *BUDGETS[args.budget], "--dataset", args.dataset,
                   "--out", out, *extra]))
