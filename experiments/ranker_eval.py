"""Evaluate every ranker variant side by side on the same held-out Upworthy experiments.

    nice .venv/bin/python experiments/ranker_eval.py                      # hash split, 20 % of experiments held out
    nice .venv/bin/python experiments/ranker_eval.py --split-by week      # the latest weeks held out
    nice .venv/bin/python experiments/ranker_eval.py --loo 5              # + leave-one-group-out over 5 groups

Arms with identical headlines are merged first and only experiments with at least two distinct headlines are kept.
Hyperparameters (q, ridge) of each variant are chosen by 5-fold grouped cross-validation *inside the training
split*; the test split is scored once per variant. Every method is reported by the paper's protocol beside ours:
all test experiments, and those whose chi-square test of clicks across arms gives p < 0.05 and p < 0.01, with
Spearman, top-1 and pairwise accuracy on significant pairs (abgym.ranker.evaluation), the random baseline, and the
required character n-gram baseline (abgym.ranker.baselines.NgramRidge, alpha by the same CV). Prints markdown
tables and writes JSON with every figure.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices: one thread is fastest on a shared machine

import numpy as np  # noqa: E402
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from abgym.data.upworthy import load_experiments  # noqa: E402
from abgym.paths import atomic_write  # noqa: E402
from abgym.ranker.baselines import NgramRidge, cross_validated_alpha  # noqa: E402
from abgym.ranker.evaluation import (bootstrap_ci, evaluate_predictions, hash_group, leave_one_group_out,  # noqa: E402
                                     protocol_table, random_report)
from abgym.ranker.ranker import ContentRanker, RankerConfig  # noqa: E402


class PrecomputedEmbedder:
    """Embeds every text once through the cached Embedder and answers later calls from memory."""

    def __init__(self, embedder):
        self.embedder, self.dim, self.model_id = embedder, embedder.dim, embedder.model_id
        self.table: dict[str, np.ndarray] = {}

    def warm(self, texts):
        missing = sorted({t for t in texts if t not in self.table})
        if missing:
            vectors = self.embedder.encode(missing, show_progress=True)
            self.table.update(zip(missing, vectors))

    def encode(self, texts, show_progress=None):
        self.warm(texts)
        return np.stack([self.table[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)


# Each variant: a name, the ranker configuration, the grid searched on the training split, and notes.
GRID = dict(n_components=[32, 128, None], ridge=[1.0, 10.0, 100.0])
MINILM = dict(representation="minilm", standardize=False)  # this script compares objectives on MiniLM alone
VARIANTS = [
    ("Algorithm 1 (paper): pointwise CTR, FE, impression-weighted ridge", dict(objective="pointwise", **MINILM), GRID),
    ("Algorithm 1, PCA (q <= 128) fitted on train + test texts",
     dict(objective="pointwise", _transductive=True, **MINILM),
     dict(n_components=[32, 128], ridge=[1.0, 10.0, 100.0])),
    ("relative CTR target (ctr / experiment mean - 1)", dict(objective="pointwise_relative", **MINILM), GRID),
    ("pairwise, soft labels P(ctr_i > ctr_j)", dict(objective="pairwise", **MINILM), GRID),
    ("pairwise, headline + excerpt", dict(objective="pairwise", fields=("headline", "excerpt"), **MINILM), GRID),
]


def predictions(ranker: ContentRanker, experiments) -> list[np.ndarray]:
    return [ranker.predict(e.texts(ranker.config.fields)) for e in experiments]


def fit(config: RankerConfig, embedder, train, test=None, transductive=False) -> ContentRanker:
    extra = [t for e in test for t in e.texts(config.fields)] if transductive and test else None
    return ContentRanker(config, embedder=embedder).fit(train, projection_texts=extra)


def cross_validate(base: dict, grid: dict, embedder, train, n_folds=5, seed=0):
    """Grid search by grouped K-fold inside ``train``; the criterion is mean Spearman on the held-out folds."""
    transductive = base.get("_transductive", False)
    base = {k: v for k, v in base.items() if not k.startswith("_")}
    folds = np.array([hash_group(e.test_id + "/cv", n_folds) for e in train])
    best, results = None, []
    keys = list(grid)
    for values in np.array(np.meshgrid(*[np.arange(len(grid[k])) for k in keys])).T.reshape(-1, len(keys)):
        params = {k: grid[k][i] for k, i in zip(keys, values)}
        config = RankerConfig(**base, **params)
        rho = []
        for k in range(n_folds):
            inner_train = [e for e, f in zip(train, folds) if f != k]
            inner_test = [e for e, f in zip(train, folds) if f == k]
            ranker = fit(config, embedder, inner_train, inner_test, transductive)
            rho.append(evaluate_predictions(predictions(ranker, inner_test), inner_test, seed).spearman)
        score = float(np.concatenate(rho).mean())
        results.append((params, score))
        if best is None or score > best[1]:
            best = (params, score)
    return RankerConfig(**base, **best[0]), best[1], results


NGRAM_NAME = "char n-gram ridge (baseline)"


def zscore(values: np.ndarray) -> np.ndarray:
    sd = values.std()
    return (values - values.mean()) / sd if sd > 0 else values - values.mean()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split-by", choices=["hash", "week"], default="hash")
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--loo", type=int, default=0, help="also leave-one-group-out over this many groups")
    parser.add_argument("--no-cv", action="store_true", help="skip the grid search; use each grid's middle values")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/ranker_eval.json")
    args = parser.parse_args(argv)

    from abgym.llm import Embedder

    started = time.time()
    merge = ("headline",)
    train = load_experiments(split="train", split_by=args.split_by, test_fraction=args.test_fraction,
                             merge_identical=merge)
    test = load_experiments(split="test", split_by=args.split_by, test_fraction=args.test_fraction,
                            merge_identical=merge)
    embedder = PrecomputedEmbedder(Embedder())
    fields_used = {f for _, base, _ in VARIANTS for f in base.get("fields", ("headline",))}
    for fields in {tuple(base.get("fields", ("headline",))) for _, base, _ in VARIANTS}:
        embedder.warm([t for e in train + test for t in e.texts(fields)])
    print(f"{len(train)} train / {len(test)} test experiments (split by {args.split_by}); fields {fields_used}; "
          f"embeddings ready after {time.time() - started:.0f} s", flush=True)

    rows, test_scores, reports = [], {}, {}
    chance = random_report(test, seed=args.seed)
    reports["random (uniform guess)"] = chance
    rows.append({"variant": "random (uniform guess)", **chance.summary()})
    t0 = time.time()
    alpha, ngram_cv = (1.0, None) if args.no_cv else cross_validated_alpha(train, seed=args.seed)
    ngram = NgramRidge(alpha=alpha).fit(train)
    report = evaluate_predictions([ngram.predict(e.texts()) for e in test], test, args.seed)
    reports[NGRAM_NAME] = report
    rows.append({"variant": NGRAM_NAME, "alpha": alpha, "cv_spearman_by_alpha": ngram_cv, **report.summary(),
                 "seconds": time.time() - t0})
    print(report.line(NGRAM_NAME[:34]), f"alpha={alpha} ({time.time() - t0:.0f} s)", flush=True)
    for name, base, grid in VARIANTS:
        t0 = time.time()
        transductive = base.get("_transductive", False)
        if args.no_cv:
            params = {k: v[len(v) // 2] for k, v in grid.items()}  # q=128, ridge=10
            config = RankerConfig(**{k: v for k, v in base.items() if not k.startswith("_")}, **params)
            cv_score = None
        else:
            config, cv_score, _ = cross_validate(base, grid, embedder, train, seed=args.seed)
        ranker = fit(config, embedder, train, test, transductive)
        scores = predictions(ranker, test)
        test_scores[name] = scores
        report = evaluate_predictions(scores, test, args.seed)
        reports[name] = report
        rows.append({"variant": name, "config": asdict(config), "cv_spearman": cv_score, **report.summary(),
                     "seconds": time.time() - t0})
        print(report.line(name[:34]), f"q={config.n_components} ridge={config.ridge} ({time.time() - t0:.0f} s)",
              flush=True)

    # Ensembles: the mean of z-scored member scores per experiment (no refitting).
    def ensemble(names):
        return [np.mean([zscore(test_scores[n][i]) for n in names], axis=0) for i in range(len(test))]

    names = [v[0] for v in VARIANTS]
    for label, members in [("ensemble: relative + pairwise", [names[2], names[3]]),
                           ("ensemble: paper + relative + pairwise + h+e", [names[0], names[2], names[3], names[4]])]:
        report = evaluate_predictions(ensemble(members), test, args.seed)
        reports[label] = report
        rows.append({"variant": label, "members": members, **report.summary()})
        print(report.line(label[:34]), flush=True)

    # Paired differences against the paper's method on the same experiments (bootstrap over experiments).
    paper = reports[names[0]]
    for row in rows:
        other = reports.get(row["variant"])
        if other is not None and row["variant"] != names[0]:
            row["vs_paper"] = {}
            for metric in ("spearman", "top1"):
                diff = getattr(other, metric) - getattr(paper, metric)
                row["vs_paper"][metric] = float(diff.mean())
                row["vs_paper"][f"{metric}_ci"] = bootstrap_ci(diff, seed=args.seed)

    result = {"split_by": args.split_by, "test_fraction": args.test_fraction, "n_train": len(train),
              "n_test": len(test), "rows": rows, "seconds": time.time() - started}
    table, figures = protocol_table(reports, baselines=(names[0], NGRAM_NAME), seed=args.seed)
    result["protocol"] = figures
    result["protocol_table"] = table

    if args.loo:
        # Leave-one-group-out over train + test, each variant with the configuration chosen above; paired deltas.
        loo, pooled_reports = {}, {}
        everything = train + test
        for name in [names[0], names[2], names[3]]:
            config = next(RankerConfig(**r["config"]) for r in rows if r["variant"] == name)

            def fit_predict(tr, te, config=config):
                return predictions(fit(config, embedder, tr), te)

            pooled, folds = leave_one_group_out(everything, fit_predict, n_groups=args.loo, by=args.split_by)
            pooled_reports[name] = pooled
            loo[name] = {"pooled": pooled.summary(), "folds": [f.summary() for f in folds]}
            print(pooled.line(("LOO " + name)[:34]), flush=True)

        def ngram_predict(tr, te):
            model = NgramRidge(alpha=alpha).fit(tr)
            return [model.predict(e.texts()) for e in te]

        rng = np.random.default_rng(args.seed)

        def random_predict(tr, te):
            return [rng.random(e.n_arms) for e in te]

        for name, fit_predict in ((NGRAM_NAME, ngram_predict), ("random (uniform guess)", random_predict)):
            pooled, folds = leave_one_group_out(everything, fit_predict, n_groups=args.loo, by=args.split_by)
            pooled_reports[name] = pooled
            loo[name] = {"pooled": pooled.summary(), "folds": [f.summary() for f in folds]}
            print(pooled.line(("LOO " + name)[:34]), flush=True)
        for name in [names[2], names[3]]:
            for metric in ("spearman", "top1"):
                diff = getattr(pooled_reports[name], metric) - getattr(pooled_reports[names[0]], metric)
                loo[name][f"{metric}_vs_paper"] = (float(diff.mean()), bootstrap_ci(diff, seed=args.seed))
            print(f"LOO {name[:30]} vs paper: spearman {loo[name]['spearman_vs_paper'][0]:+.3f} "
                  f"{loo[name]['spearman_vs_paper'][1]}, top-1 {loo[name]['top1_vs_paper'][0]:+.3f} "
                  f"{loo[name]['top1_vs_paper'][1]}", flush=True)
        order = ["random (uniform guess)"] + [n for n in pooled_reports if n != "random (uniform guess)"]
        loo_table, loo_figures = protocol_table({n: pooled_reports[n] for n in order},
                                                baselines=(names[0], NGRAM_NAME), seed=args.seed)
        loo["protocol"], loo["protocol_table"] = loo_figures, loo_table
        result["leave_one_group_out"] = {"n_groups": args.loo, "by": args.split_by, **loo}

    print("\n| variant | Spearman [95% CI] | top-1 [95% CI] | random top-1 | Δ Spearman vs paper [95% CI] | "
          "Δ top-1 vs paper [95% CI] |\n|---|---|---|---|---|---|")
    for row in rows:
        delta = row.get("vs_paper")
        paired = (f"{delta['spearman']:+.3f} [{delta['spearman_ci'][0]:+.3f}, {delta['spearman_ci'][1]:+.3f}] | "
                  f"{delta['top1']:+.3f} [{delta['top1_ci'][0]:+.3f}, {delta['top1_ci'][1]:+.3f}]"
                  if delta else "| ")
        print(f"| {row['variant']} | {row['spearman']:+.3f} [{row['spearman_ci'][0]:+.3f}, "
              f"{row['spearman_ci'][1]:+.3f}] | {row['top1']:.3f} [{row['top1_ci'][0]:.3f}, "
              f"{row['top1_ci'][1]:.3f}] | {row['random_top1']:.3f} | {paired} |")
    print("\n## The paper's protocol (held-out split): all tests and tests significant by chi-square\n")
    print(table)
    if args.loo:
        print(f"\n## Leave-one-group-out ({args.loo} groups), the paper's protocol\n")
        print(result["leave_one_group_out"]["protocol_table"])
    out = Path(args.out)
    with atomic_write(out, "w") as handle:
        json.dump(result, handle, indent=1, default=str)
    print(f"\nwrote {out} ({time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
