"""Which text representation should the ranker use? Chosen by grouped CV inside the training archive only.

    nice .venv/bin/python experiments/ranker_representations.py                 # CV, then the held-out split once
    nice .venv/bin/python experiments/ranker_representations.py --cv-only       # no test split at all

Representations (one row per distinct headline):
- ``minilm``: the sentence embedder all-MiniLM-L6-v2 (384);
- ``smollm2-L{layer}-{mean|last}``: hidden states of the project's SmolLM2-135M (576), layer and pooling chosen by
  CV among abgym.ranker.hidden_states.CACHED_LAYERS (computed once, cached on disk, with progress);
- ``char``: TF-IDF character n-grams (char_wb, 2-5, min_df 2, sublinear tf) and ``word``: word 1-2-grams, hashed
  (abgym.ranker.ngrams.HashedTfidf), idf fitted on the training split's headlines only (no test text is seen);
- combinations ``a+b``: blocks side by side, each scaled to a mean squared row norm of 1 on the training arms.

Dense blocks may be standardised per dimension (training arms' sd; chosen by CV: the language model's hidden states
have a few huge dimensions that would otherwise take the whole ridge budget). Every representation is fitted by the
shipped ContentRanker (RankerConfig(representation=..., standardize=..., ridge=...); the pairwise soft-label
logistic on within-experiment differences; n-gram idf fitted on each fit's training texts), its ridge penalty
chosen by the same 5-fold grouped CV (criterion: mean Spearman on the folds' experiments). The
representation with the best CV score is the candidate default; only then is the held-out split scored, once per
row, by the paper's protocol beside ours, with paired differences from Algorithm 1 and the char n-gram baseline.
Every stage's figures are written to the JSON as soon as they exist.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from abgym.data.upworthy import load_experiments  # noqa: E402
from abgym.paths import atomic_write  # noqa: E402
from abgym.ranker.baselines import NgramRidge, cross_validated_alpha  # noqa: E402
from abgym.ranker.evaluation import evaluate_predictions, hash_group, protocol_table, random_report  # noqa: E402
from abgym.ranker.hidden_states import CACHED_LAYERS, POOLINGS, HiddenStateEmbedder, parse_block  # noqa: E402
from abgym.ranker.ranker import (ALGORITHM_1, MINILM_PAIRWISE, ContentRanker, RankerConfig,  # noqa: E402
                                 representation_blocks)

RIDGES = (1.0, 10.0, 100.0)
NGRAM_ALPHAS = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
N_FOLDS = 5


class Features:
    """Per-representation matrices over the distinct headlines, and the arm -> row index of every experiment."""

    def __init__(self, experiments):
        self.texts = sorted({t for e in experiments for t in e.texts()})
        self.row = {t: i for i, t in enumerate(self.texts)}
        self.blocks: dict[str, object] = {}
        self.precomputed: dict[str, np.ndarray] = {}

    def block(self, name):
        if name not in self.blocks:
            self.blocks[name] = self._compute(name)
        return self.blocks[name]

    def _compute(self, name):
        if name == "minilm":
            from abgym.llm import Embedder
            return np.asarray(Embedder().encode(self.texts, show_progress=True), np.float64)
        if name in self.precomputed:  # e.g. a fine-tuned embedder's vectors (experiments/ranker_representations_more.py)
            return np.asarray(self.precomputed[name], np.float64)
        parsed = parse_block(name)
        if parsed is not None:
            model, layers, pooling = parsed
            return np.asarray(HiddenStateEmbedder(layers, pooling, model=model).encode(self.texts, show_progress=True),
                              np.float64)
        raise ValueError(f"unknown representation {name!r}")



class Lookup:
    """The dense blocks of a representation as an embedder over the precomputed matrices (ContentRanker's input)."""

    def __init__(self, features: Features, representation: str):
        self.features = features
        self.blocks = representation_blocks(representation)[0]
        self.block_dims = [features.block(b).shape[1] for b in self.blocks]
        self.dim, self.model_id = sum(self.block_dims), "+".join(self.blocks)

    def encode(self, texts, show_progress=None):
        rows = [self.features.row[t] for t in texts]
        return np.hstack([self.features.block(b)[rows] for b in self.blocks])


def fit_predict(features, representation, standardize, ridge, train, test):
    """The shipped ContentRanker (pairwise objective) on the representation; one centred score array per test
    experiment."""
    config = RankerConfig(representation=representation, standardize=standardize, ridge=ridge)
    ranker = ContentRanker(config, embedder=Lookup(features, representation)).fit(train)
    return batch_predict(ranker, test)


def batch_predict(ranker, experiments):
    """ranker.predict per experiment, computed in one pass over all their texts (the same numbers, faster)."""
    scores = ranker.scores([t for e in experiments for t in e.texts()])
    bounds = np.cumsum([0] + [e.n_arms for e in experiments])
    return [scores[a:b] - scores[a:b].mean() for a, b in zip(bounds[:-1], bounds[1:])]


def cv_score(features, representation, standardize, ridge, train, folds, seed=0):
    """Mean Spearman over the CV folds' experiments (every training experiment scored once)."""
    return cv_scores(features, representation, standardize, ridge, train, folds, seed)["all"]


def cv_scores(features, representation, standardize, ridge, train, folds, seed=0, fold_features=None):
    """Mean CV Spearman over all the folds' experiments and over those significant at p < 0.05 and p < 0.01
    (chi-square across arms, computed on each experiment's own counts: a property of the data, not of the fold).
    ``fold_features``: one Features per fold instead of ``features`` (a representation fitted inside each fold)."""
    reports = []
    for k in range(N_FOLDS):
        inner_train = [e for e, f in zip(train, folds) if f != k]
        inner_test = [e for e, f in zip(train, folds) if f == k]
        here = fold_features[k] if fold_features is not None else features
        predictions = fit_predict(here, representation, standardize, ridge, inner_train, inner_test)
        reports.append(evaluate_predictions(predictions, inner_test, seed))
    rho = np.concatenate([r.spearman for r in reports])
    p = np.concatenate([r.p_value for r in reports])
    return {"all": float(rho.mean()), "p<0.05": float(rho[p < 0.05].mean()), "p<0.01": float(rho[p < 0.01].mean()),
            "n": int(len(rho)), "n_p<0.01": int((p < 0.01).sum())}


def load_study():
    """The study's data, once for both rounds: BLAS on one thread (the fits run side by side with the feature
    passes), the train and test splits with identical headlines merged, their features, and the CV folds."""
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=1, user_api="blas")
    merge = ("headline",)
    train = load_experiments(split="train", merge_identical=merge)
    test = load_experiments(split="test", merge_identical=merge)
    folds = np.array([hash_group(e.test_id + "/cv", N_FOLDS) for e in train])
    return train, test, Features(train + test), folds


def report_leave_one_group_out(methods, experiments, n_groups, seed, result, save) -> None:
    """Each method scored leave-one-group-out over ``experiments``, the first two as the table's baselines."""
    from abgym.ranker.evaluation import leave_one_group_out
    pooled = {}
    for name, method in methods.items():
        t0 = time.time()
        pooled[name], _ = leave_one_group_out(experiments, method, n_groups=n_groups)
        print(pooled[name].line(name[:34]), f"({time.time() - t0:.0f} s)", flush=True)
    loo_table, loo_figures = protocol_table(pooled, baselines=list(methods)[:2], seed=seed)
    result["leave_one_group_out"] = {"n_groups": n_groups, "protocol": loo_figures, "table": loo_table}
    print("\n" + loo_table)
    save()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cv-only", action="store_true", help="choose by CV and stop: never touch the test split")
    parser.add_argument("--stage", choices=["all", "ngram", "hidden"], default="all",
                        help="ngram / hidden: only that part of the CV (run both side by side, then 'all' with "
                             "--reuse to merge them and score the test split)")
    parser.add_argument("--loo", type=int, default=0,
                        help="also leave-one-group-out over train + test (this many hash groups) for Algorithm 1, "
                             "the n-gram baseline and the CV winner, each with its configuration chosen above")
    parser.add_argument("--reuse", nargs="*", default=[], help="JSON outputs of earlier runs whose CV scores are "
                                                               "reused instead of recomputed")
    parser.add_argument("--layers", type=int, nargs="*", default=list(CACHED_LAYERS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/ranker_representations.json")
    args = parser.parse_args(argv)
    started = time.time()
    train, test, features, folds = load_study()
    result = {"n_train": len(train), "n_test": len(test), "cv": {}, "machine": os.uname().nodename,
              "stage": args.stage}
    out = Path(args.out)
    reused: dict = {}
    for path in args.reuse:
        earlier = json.loads(Path(path).read_text())
        reused.update(earlier.get("cv", {}))
        if "ngram_alpha" in earlier:
            reused["ngram"] = (earlier["ngram_alpha"], earlier["ngram_cv"])

    def save():
        result["seconds"] = time.time() - started
        with atomic_write(out, "w") as handle:
            json.dump(result, handle, indent=1, default=str)

    def search(representation, standardize_options=(False,), ridges=RIDGES):
        best = None
        for standardize in standardize_options:
            for ridge in ridges:
                t0 = time.time()
                key = f"{representation} std={standardize} ridge={ridge:g}"
                score = reused[key] if key in reused else cv_score(features, representation, standardize, ridge,
                                                                    train, folds, args.seed)
                result["cv"][key] = score
                print(f"CV {key:<48} spearman {score:+.4f} ({time.time() - t0:.0f} s)", flush=True)
                if best is None or score > best[0]:
                    best = (score, standardize, ridge)
        save()
        return best

    chosen = {}
    chosen["minilm"] = search("minilm", (False, True))
    if args.stage in ("all", "ngram"):
        # The baseline's alpha by the same CV (scores of alphas an earlier run measured are reused).
        ngram_scores = {float(a): v for a, v in (reused.get("ngram") or (None, {}))[1].items()}
        todo = [a for a in NGRAM_ALPHAS if a not in ngram_scores]
        if todo:
            ngram_scores.update(cross_validated_alpha(train, alphas=todo, seed=args.seed)[1])
        ngram_alpha = max(ngram_scores, key=ngram_scores.get)
        result["ngram_alpha"], result["ngram_cv"] = ngram_alpha, ngram_scores
        print(f"CV char n-gram ridge baseline: alpha {ngram_alpha} {ngram_scores}", flush=True)
        for combo in ("minilm+char", "minilm+word", "minilm+char+word"):
            # the dense block's standardisation as chosen for it alone
            chosen[combo] = search(combo, (chosen["minilm"][1],))
        if args.stage == "ngram":
            return 0
    # The language model: layer, pooling and standardisation by CV at the middle ridge, then the ridge for the best
    # of them; then that one with the others.
    hidden = {}
    for layer in args.layers:
        for pooling in POOLINGS:
            name = f"smollm2-L{layer}-{pooling}"
            hidden[name] = search(name, (False, True), ridges=(10.0,))
    best_hidden = max(hidden, key=lambda n: hidden[n][0])
    chosen[best_hidden] = search(best_hidden, (hidden[best_hidden][1],))
    result["best_hidden"] = best_hidden
    for combo in (f"minilm+{best_hidden}", f"{best_hidden}+char", f"minilm+{best_hidden}+char"):
        chosen[combo] = search(combo, (hidden[best_hidden][1],))
    if args.stage == "hidden":
        return 0
    winner = max(chosen, key=lambda n: chosen[n][0])
    result["chosen"] = {n: {"cv_spearman": s, "standardize": st, "ridge": r} for n, (s, st, r) in chosen.items()}
    result["winner_by_cv"] = winner
    print(f"winner by CV inside the training split: {winner} {chosen[winner]}", flush=True)
    save()
    if args.cv_only:
        return 0

    # The held-out split, scored once per row.
    reports = {"random (uniform guess)": random_report(test, seed=args.seed)}
    paper = ContentRanker(ALGORITHM_1, embedder=Lookup(features, "minilm")).fit(train)
    reports["Algorithm 1 (paper), MiniLM"] = evaluate_predictions(batch_predict(paper, test), test)
    ngram = NgramRidge(alpha=ngram_alpha).fit(train)
    reports["char n-gram ridge (baseline)"] = evaluate_predictions([ngram.predict(e.texts()) for e in test], test)
    default = ContentRanker(MINILM_PAIRWISE, embedder=Lookup(features, "minilm")).fit(train)
    reports["pairwise MiniLM (previous default)"] = evaluate_predictions(batch_predict(default, test), test)
    for name, (_, standardize, ridge) in chosen.items():
        label = f"pairwise {name}" + (" (CV winner)" if name == winner else "")
        reports[label] = evaluate_predictions(fit_predict(features, name, standardize, ridge, train, test), test)
        print(reports[label].line(label[:34]), flush=True)
    table, figures = protocol_table(reports, baselines=("Algorithm 1 (paper), MiniLM", "char n-gram ridge (baseline)"),
                                    seed=args.seed)
    result["test"] = figures
    result["test_table"] = table
    print("\n" + table)
    save()
    if args.loo:
        _, standardize, ridge = chosen[winner]
        methods = {
            "Algorithm 1 (paper), MiniLM": lambda tr, te: batch_predict(
                ContentRanker(ALGORITHM_1, embedder=Lookup(features, "minilm")).fit(tr), te),
            "char n-gram ridge (baseline)": lambda tr, te: [
                m.predict(e.texts()) for m in [NgramRidge(alpha=ngram_alpha).fit(tr)] for e in te],
            f"pairwise {winner} (CV winner)": lambda tr, te: fit_predict(features, winner, standardize, ridge, tr, te),
        }
        report_leave_one_group_out(methods, train + test, args.loo, args.seed, result, save)
    print(f"wrote {out} ({time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
