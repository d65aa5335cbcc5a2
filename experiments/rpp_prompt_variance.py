"""How much of a user's NDCG@10 does the prompt explain? A variance decomposition behind RPP's learning curves.

    nice .venv/bin/python experiments/rpp_prompt_variance.py --users 40 --prompts 12

Draws ``--prompts`` uniformly random prompts (seeded) for each of the first ``--users`` train users, ranks their
candidates with the default recommender (SmolLM2-135M likelihood scoring; rankings come from the shared cache when
they were computed before), and fits three least-squares models of NDCG@10 on one-hot factors: the user alone, the
four patterns alone, and both. It prints the share of variance (R^2, and adjusted) each explains and, per option,
the mean NDCG@10 relative to the user's own mean: the signal a prompt policy can learn from, beside the noise it must
average.
Writes the rankings' scores to ``--out`` as CSV.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from abgym.envs import prompt_actions as pa


def r_squared(frame: pd.DataFrame, factors: list[str]) -> tuple[float, float, int]:
    """R^2 and adjusted R^2 of NDCG@10 on one-hot ``factors`` (with an intercept), and the number of parameters.

    The adjusted value charges each parameter its share of noise: 40 users' dummies fit some noise that 19 pattern
    dummies cannot."""
    design = pd.get_dummies(frame[factors].astype(str), drop_first=True).to_numpy(float)
    design = np.column_stack([np.ones(len(frame)), design])
    y = frame["ndcg@10"].to_numpy()
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    share = float(1 - np.var(y - design @ beta) / np.var(y))
    n, parameters = design.shape
    return share, 1 - (1 - share) * (n - 1) / (n - parameters), parameters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--prompts", type=int, default=12, help="random prompts per user")
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--out", default="results/rpp-prompt-variance.csv")
    args = parser.parse_args()

    from abgym.envs.prompt_personalization import parallel_env
    from abgym.paths import atomic_write

    env = parallel_env({"max_users": args.users, "embedder": "hashing"})  # scores only: no sentence embeddings
    rng = np.random.default_rng(args.seed)
    rows, started = [], time.perf_counter()
    for case in env.users:
        for _ in range(args.prompts):
            actions = tuple(int(rng.integers(n)) for n in pa.ACTION_SIZES)
            metrics = env.task.evaluate(case, actions).metrics
            rows.append({"user": case.user_id, **dict(zip(pa.PATTERNS, actions)), "ndcg@10": metrics["ndcg@10"]})
    env.close()
    frame = pd.DataFrame(rows)
    with atomic_write(args.out, "w") as handle:
        frame.to_csv(handle, index=False)
    print(f"{len(frame)} rankings ({len(env.users)} train users x {args.prompts} random prompts) in "
          f"{time.perf_counter() - started:.0f} s; NDCG@10 mean {frame['ndcg@10'].mean():.3f}, "
          f"variance {frame['ndcg@10'].var(ddof=0):.4f}")
    for label, factors in (("user", ["user"]), ("patterns", list(pa.PATTERNS)),
                           ("user + patterns", ["user", *pa.PATTERNS])):
        share, adjusted, parameters = r_squared(frame, factors)
        print(f"  R^2 {label:16s} {share:.3f}, adjusted {adjusted:.3f}  ({parameters} parameters)")
    within_user = frame["ndcg@10"] - frame.groupby("user")["ndcg@10"].transform("mean")
    print("NDCG@10 relative to the user's mean, per option (count):")
    for pattern in pa.PATTERNS:
        effects = within_user.groupby(frame[pattern]).agg(["mean", "count"])
        cells = ", ".join(f"{option}: {row['mean']:+.3f} ({int(row['count'])})" for option, row in effects.iterrows())
        print(f"  {pattern:9s} {cells}")


if __name__ == "__main__":
    main()
