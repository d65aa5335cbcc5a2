"""Which text representation should the ranker use? Chosen by grouped CV inside the training archive only.

    nice .venv/bin/python experiments/ranker_representations.py                 # CV, then the held-out split once
    nice .venv/bin/python experiments/ranker_representations.py --cv-only       # no test split at all

Representations (one row per distinct headline):
- ``minilm``: the sentence embedder all-MiniLM-L6-v2 (384);
- ``smollm2-L{layer}-{mean|last}``: hidden states of the project's SmolLM2-135M (576), layer and pooling chosen by
  CV among abgym.ranker.hidden_states.CACHED_LAYERS (computed once, cached on disk, with progress);
- ``char``: TF-IDF character n-grams (char_wb, 2-5, min_df 2, sublinear tf) and ``word``: word 1-2-grams, both
  vectorisers fitted on the training split's headlines only (unsupervised; no test text is ever seen);
- combinations ``a+b``: blocks side by side, each scaled to a mean squared row norm of 1 on the training arms.

Dense blocks may be standardised per dimension (training arms' sd; chosen by CV: the language model's hidden states
have a few huge dimensions that would otherwise take the whole ridge budget). Every representation is fitted with
the default objective (pairwise soft-label logistic on within-experiment differences, abgym.ranker.ranker) and its
ridge penalty chosen by the same 5-fold grouped CV (criterion: mean Spearman on the folds' experiments). The
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
import scipy.sparse as sp  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from abgym.data.upworthy import load_experiments  # noqa: E402
from abgym.paths import atomic_write  # noqa: E402
from abgym.ranker.baselines import NgramRidge, cross_validated_alpha  # noqa: E402
from abgym.ranker.evaluation import evaluate_predictions, hash_group, protocol_table, random_report  # noqa: E402
from abgym.ranker.hidden_states import CACHED_LAYERS, POOLINGS, HiddenStateEmbedder  # noqa: E402
from abgym.ranker.ranker import (ALGORITHM_1, ArmTable, RankerConfig, fit_linear, pairwise_differences,  # noqa: E402
                                 soft_logistic)

RIDGES = (1.0, 10.0, 100.0)
N_FOLDS = 5


class Features:
    """Per-representation matrices over the distinct headlines, and the arm -> row index of every experiment."""

    def __init__(self, experiments, train_texts):
        self.texts = sorted({t for e in experiments for t in e.texts()})
        self.row = {t: i for i, t in enumerate(self.texts)}
        self.train_texts = train_texts
        self.blocks: dict[str, object] = {}

    def block(self, name):
        if name not in self.blocks:
            self.blocks[name] = self._compute(name)
        return self.blocks[name]

    def _compute(self, name):
        from sklearn.feature_extraction.text import TfidfVectorizer
        if name == "minilm":
            from abgym.llm import Embedder
            return np.asarray(Embedder().encode(self.texts, show_progress=True), np.float64)
        if name.startswith("smollm2-"):
            _, layer, pooling = name.split("-")
            return np.asarray(HiddenStateEmbedder(int(layer[1:]), pooling).encode(self.texts, show_progress=True),
                              np.float64)
        if name in ("char", "word"):
            kind = dict(char=dict(analyzer="char_wb", ngram_range=(2, 5)), word=dict(analyzer="word",
                                                                                   ngram_range=(1, 2)))[name]
            vectorizer = TfidfVectorizer(min_df=2, sublinear_tf=True, **kind).fit(self.train_texts)
            return vectorizer.transform(self.texts).tocsr()
        raise ValueError(f"unknown representation {name!r}")

    def arms(self, experiments):
        return np.array([self.row[t] for e in experiments for t in e.texts()])


def table_of(experiments) -> ArmTable:
    clicks = np.concatenate([np.asarray(e.clicks, float) for e in experiments])
    impressions = np.concatenate([np.asarray(e.impressions, float) for e in experiments])
    groups = np.concatenate([np.full(e.n_arms, i) for i, e in enumerate(experiments)])
    return ArmTable(np.zeros((len(clicks), 0)), clicks, impressions, groups)


def design(features: Features, representation: str, standardize: bool, train_rows: np.ndarray, rows: np.ndarray):
    """The representation's matrix at ``rows``, blocks preprocessed with statistics of ``train_rows`` only."""
    parts = []
    for name in representation.split("+"):
        block = features.block(name)
        if sp.issparse(block):
            scale = np.sqrt(block[train_rows].multiply(block[train_rows]).sum(axis=1).mean())
            parts.append(block[rows] / scale)
            continue
        mean = block[train_rows].mean(axis=0)
        x, fit = block[rows] - mean, block[train_rows] - mean
        if standardize:
            sd = fit.std(axis=0) + 1e-8
            x, fit = x / sd, fit / sd
        parts.append(x / np.sqrt(np.mean(np.sum(fit ** 2, axis=1))))
    if any(sp.issparse(p) for p in parts):
        return sp.hstack([sp.csr_matrix(p) for p in parts]).tocsr()
    return np.hstack(parts)


def fit_predict(features, representation, standardize, ridge, train, test):
    """Pairwise soft-label logistic on the representation; one centred score array per test experiment."""
    train_rows, test_rows = features.arms(train), features.arms(test)
    x_train = design(features, representation, standardize, train_rows, train_rows)
    x_test = design(features, representation, standardize, train_rows, test_rows)
    diffs, soft = pairwise_differences(x_train, table_of(train))
    beta = soft_logistic(diffs, soft, ridge)
    scores = np.asarray(x_test @ beta).ravel()
    bounds = np.cumsum([0] + [e.n_arms for e in test])
    return [scores[a:b] - scores[a:b].mean() for a, b in zip(bounds[:-1], bounds[1:])]


def cv_score(features, representation, standardize, ridge, train, folds, seed=0):
    rho = []
    for k in range(N_FOLDS):
        inner_train = [e for e, f in zip(train, folds) if f != k]
        inner_test = [e for e, f in zip(train, folds) if f == k]
        predictions = fit_predict(features, representation, standardize, ridge, inner_train, inner_test)
        rho.append(evaluate_predictions(predictions, inner_test, seed).spearman)
    return float(np.concatenate(rho).mean())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cv-only", action="store_true", help="choose by CV and stop: never touch the test split")
    parser.add_argument("--layers", type=int, nargs="*", default=list(CACHED_LAYERS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/ranker_representations.json")
    args = parser.parse_args(argv)
    started = time.time()
    from threadpoolctl import threadpool_limits
    threadpool_limits(limits=1, user_api="blas")

    merge = ("headline",)
    train = load_experiments(split="train", merge_identical=merge)
    test = load_experiments(split="test", merge_identical=merge)
    features = Features(train + test, sorted({t for e in train for t in e.texts()}))
    folds = np.array([hash_group(e.test_id + "/cv", N_FOLDS) for e in train])
    result = {"n_train": len(train), "n_test": len(test), "cv": {}, "machine": os.uname().nodename}
    out = Path(args.out)

    def save():
        result["seconds"] = time.time() - started
        with atomic_write(out, "w") as handle:
            json.dump(result, handle, indent=1, default=str)

    def search(representation, standardize_options=(False,)):
        best = None
        for standardize in standardize_options:
            for ridge in RIDGES:
                t0 = time.time()
                score = cv_score(features, representation, standardize, ridge, train, folds, args.seed)
                key = f"{representation} std={standardize} ridge={ridge:g}"
                result["cv"][key] = score
                print(f"CV {key:<48} spearman {score:+.4f} ({time.time() - t0:.0f} s)", flush=True)
                if best is None or score > best[0]:
                    best = (score, standardize, ridge)
        save()
        return best

    ngram_alpha, ngram_scores = cross_validated_alpha(train, seed=args.seed)
    result["ngram_alpha"], result["ngram_cv"] = ngram_alpha, ngram_scores
    print(f"CV char n-gram ridge baseline: alpha {ngram_alpha} {ngram_scores}", flush=True)
    chosen = {}
    for name in ("minilm", "char", "word"):
        chosen[name] = search(name, (False,) if name != "minilm" else (False, True))
    # The language model: layer and pooling by CV (standardised and not), then its best with the others.
    hidden = {}
    for layer in args.layers:
        for pooling in POOLINGS:
            name = f"smollm2-L{layer}-{pooling}"
            hidden[name] = search(name, (False, True))
    best_hidden = max(hidden, key=lambda n: hidden[n][0])
    chosen[best_hidden] = hidden[best_hidden]
    result["best_hidden"] = best_hidden
    for combo in ("char+word", "minilm+char", f"minilm+{best_hidden}", f"{best_hidden}+char",
                  f"minilm+{best_hidden}+char"):
        chosen[combo] = search(combo, (False, True))
    winner = max(chosen, key=lambda n: chosen[n][0])
    result["chosen"] = {n: {"cv_spearman": s, "standardize": st, "ridge": r} for n, (s, st, r) in chosen.items()}
    result["winner_by_cv"] = winner
    print(f"winner by CV inside the training split: {winner} {chosen[winner]}", flush=True)
    save()
    if args.cv_only:
        return 0

    # The held-out split, scored once per row.
    from abgym.ranker.ranker import ContentRanker

    class Lookup:  # the MiniLM block as an embedder, so Algorithm 1 runs through ContentRanker itself
        dim, model_id = 384, "all-MiniLM-L6-v2"

        def encode(self, texts, show_progress=None):
            return features.block("minilm")[[features.row[t] for t in texts]]

    reports = {"random (uniform guess)": random_report(test, seed=args.seed)}
    paper = ContentRanker(ALGORITHM_1, embedder=Lookup()).fit(train)
    reports["Algorithm 1 (paper), MiniLM"] = evaluate_predictions([paper.predict(e.texts()) for e in test], test)
    ngram = NgramRidge(alpha=ngram_alpha).fit(train)
    reports["char n-gram ridge (baseline)"] = evaluate_predictions([ngram.predict(e.texts()) for e in test], test)
    default = ContentRanker(RankerConfig(), embedder=Lookup()).fit(train)
    reports["pairwise MiniLM (previous default)"] = evaluate_predictions(
        [default.predict(e.texts()) for e in test], test)
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
    print(f"wrote {out} ({time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
