"""How much of NDCG@10 does the prompt explain, per recommender, model and candidate protocol? RPP's learnable signal.

    nice .venv/bin/python experiments/rpp_prompt_variance.py --users 24 --prompts 11 \\
        --recommenders llm-score llm-calibrated llm-generate --models smollm2-135m gemma3-270m \\
        --negatives uniform popularity --out results/rpp-variance

Every user of the first ``--users`` train users is ranked under the same ``--prompts`` prompts (the hand-written one
and seeded random ones): a crossed user x prompt design. Per configuration (recommender x model x protocol) it
reports:
- ``user share``: the share of NDCG@10's variance explained by which user it is (R^2 of the user factor);
- ``prompt share within user``: of the variance left inside users, the share the prompt's main effect explains
  (sum of squares of the prompt means over the within-user sum of squares), with the two-way ANOVA F-test p-value;
  this is what one prompt for everyone can gain;
- ``split-half r``: users split at random into two halves (200 seeded splits), each prompt's effect (its mean minus
  the half's mean) estimated in each half; the mean correlation between the halves and the share of splits where it
  is positive. Prompt effects that are real replicate (r well above 0); noise does not (r about 0);
- ``interaction share``: what is left inside users after the prompt's main effect, the user-by-prompt part a
  personalizing policy would have to predict (together with the recommender's sensitivity to wording);
- NDCG@10 (mean over all rankings and under the hand-written prompt), popularity's NDCG@10 on the same users and
  protocol, and seconds per computed ranking (cache misses only; the load of the machine is printed).

Rankings go through the shared ranking cache. Outputs in ``--out``: ``rankings-<config>.csv`` (every ranking) and
``decomposition.csv`` / ``decomposition.md``, rewritten after each configuration so that a stopped run keeps what it
measured.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

from abgym.envs import prompt_actions as pa
from abgym.studies.rpp_variance import decompose


def r_squared(frame: pd.DataFrame, factors: list[str]) -> tuple[float, float, int]:
    """R^2 and adjusted R^2 of NDCG@10 on one-hot ``factors`` (with an intercept), and the number of parameters."""
    design = pd.get_dummies(frame[factors].astype(str), drop_first=True).to_numpy(float)
    design = np.column_stack([np.ones(len(frame)), design])
    y = frame["ndcg@10"].to_numpy()
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    share = float(1 - np.var(y - design @ beta) / np.var(y))
    n, parameters = design.shape
    return share, 1 - (1 - share) * (n - 1) / (n - parameters), parameters


def prompts(n: int, seed: int) -> list[tuple[int, ...]]:
    """The hand-written prompt and ``n - 1`` distinct random ones (seeded)."""
    rng, chosen = np.random.default_rng(seed), [tuple(pa.HAND_WRITTEN)]
    while len(chosen) < n:
        actions = tuple(int(rng.integers(size)) for size in pa.ACTION_SIZES)
        if actions not in chosen:
            chosen.append(actions)
    return chosen


COLUMNS = [("recommender", "recommender"), ("model", "model"), ("negatives", "negatives"), ("users", "users"),
           ("prompts", "prompts"), ("ndcg", "NDCG@10"), ("ndcg_hand_written", "hand-written"),
           ("ndcg_popularity", "popularity"), ("user_share", "user share"),
           ("prompt_share_within_user", "prompt share within user"), ("prompt_f_p", "prompt F p"),
           ("split_half_r", "split-half r"), ("split_half_positive", "r > 0 in splits"),
           ("interaction_share_within_user", "interaction share within user"), ("prompt_spread", "best-worst prompt"),
           ("per_user_headroom", "per-user best - mean"), ("unparsable", "unparsable"),
           ("s_per_ranking", "s per ranking"), ("load", "load")]


def markdown(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(label for _, label in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = []
        for key, _ in COLUMNS:
            value = row.get(key, "")
            cells.append(f"{value:.3f}" if isinstance(value, float) else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=24)
    parser.add_argument("--prompts", type=int, default=11, help="prompts per user: hand-written + random ones")
    parser.add_argument("--recommenders", nargs="+", default=["llm-score", "llm-calibrated"])
    parser.add_argument("--models", nargs="+", default=["smollm2-135m"])
    parser.add_argument("--negatives", nargs="+", default=["uniform", "popularity"])
    parser.add_argument("--dataset", default="movielens-100k")
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--out", default="results/rpp-variance")
    args = parser.parse_args()

    from abgym.envs.llm_recommender import PopularityRecommender
    from abgym.envs.prompt_personalization import (
        PromptTask, load_data, load_language_model, make_config, make_recommender,
    )
    from abgym.envs.prompt_personalization import HashingEmbedder
    from abgym.metrics import ranking_metrics
    from abgym.paths import atomic_write

    os.makedirs(args.out, exist_ok=True)
    chosen = prompts(args.prompts, args.seed)
    results = []
    for model_name in args.models:
        language_model = load_language_model(model_name)
        for negatives in args.negatives:
            config = make_config({"dataset": args.dataset, "negatives": negatives, "language_model": model_name})
            data = load_data(config)
            cases = data.split("train")[: args.users]
            popularity = PopularityRecommender()
            pop_ndcg = float(np.mean([ranking_metrics(popularity.rank("", [], PromptTask(data, popularity,
                                      HashingEmbedder()).context(c, pa.HAND_WRITTEN)).order, c.target_index)["ndcg@10"]
                                      for c in cases]))
            for kind in args.recommenders:
                recommender = make_recommender({**config, "recommender": kind}, language_model, data.dataset.domain)
                task = PromptTask(data, recommender, HashingEmbedder())  # scores only: no sentence embeddings
                rows, computed_s, load_before = [], 0.0, os.getloadavg()[0]
                started = time.perf_counter()
                for case in cases:
                    for index, actions in enumerate(chosen):
                        hits = recommender.stats.cache_hits
                        t = time.perf_counter()
                        outcome = task.evaluate(case, actions)
                        if recommender.stats.cache_hits == hits:
                            computed_s += time.perf_counter() - t
                        rows.append({"user": case.user_id, "prompt": index, "actions": actions,
                                     "ndcg@10": outcome.metrics["ndcg@10"], "parsed": outcome.ranking.parsed})
                recommender.flush()
                frame = pd.DataFrame(rows)
                name = f"{kind}-{model_name}-{negatives}"
                with atomic_write(os.path.join(args.out, f"rankings-{name}.csv"), "w") as handle:
                    frame.to_csv(handle, index=False)
                computed = recommender.stats.calls - recommender.stats.cache_hits
                entry = {"recommender": kind, "model": model_name, "negatives": negatives,
                         "ndcg": float(frame["ndcg@10"].mean()),
                         "ndcg_hand_written": float(frame.loc[frame["prompt"] == 0, "ndcg@10"].mean()),
                         "ndcg_popularity": pop_ndcg, **decompose(frame),
                         "unparsable": int((~frame["parsed"]).sum()),
                         "s_per_ranking": computed_s / computed if computed else float("nan"),
                         "computed_rankings": int(computed), "wall_s": time.perf_counter() - started,
                         "load": f"{load_before:.1f}-{os.getloadavg()[0]:.1f}"}
                results.append(entry)
                print(markdown([entry]), flush=True)
                with atomic_write(os.path.join(args.out, "decomposition.csv"), "w") as handle:
                    pd.DataFrame(results).to_csv(handle, index=False)
                with atomic_write(os.path.join(args.out, "decomposition.md"), "w") as handle:
                    handle.write(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
