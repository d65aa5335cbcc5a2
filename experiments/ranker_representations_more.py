"""Round two of the representation study: Gemma 3 270M hidden states, several SmolLM2 layers, a fine-tuned MiniLM.

    nice .venv/bin/python experiments/ranker_representations_more.py                  # CV only (training split)
    nice .venv/bin/python experiments/ranker_representations_more.py --finetune-folds 2
    nice .venv/bin/python experiments/ranker_representations_more.py --reuse results/ranker_representations_more.json --test

Same harness as experiments/ranker_representations.py (the shipped ContentRanker, pairwise objective, 5-fold CV
grouped by test inside the 1,684 training tests; folds by a hash of the test id), with every CV score reported on
all the folds' tests and on those significant at p < 0.05 and p < 0.01 (chi-square across arms).

Selection rule, fixed before any of these runs: the CV criterion is the mean Spearman on the training folds'
p < 0.01 tests (the subset on which the previous default failed to separate from Algorithm 1 on the held-out
split); a candidate replaces the current default ("minilm+smollm2-L18-mean+char", standardised, ridge 10) only if
it beats it on that criterion AND on the all-tests CV Spearman. Only then is the held-out split scored, once, for
the winner beside the required rows (random, Algorithm 1, the char n-gram baseline, the current default).

Fine-tuning (``--finetune-folds K``): MiniLM fine-tuned by abgym.ranker.finetune (one epoch, fixed settings: batch
32, lr 2e-5 body / 1e-2 head, seed 0) inside each of the first K CV folds on that fold's training tests only; the
fine-tuned vectors of every headline are cached in ``--work``; the representations that use it are scored on those
K folds, beside the same K folds' scores of the frozen candidates (a fair comparison on the same tests).
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
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ranker_representations import (N_FOLDS, Features, Lookup, batch_predict, cv_scores,  # noqa: E402
                                    fit_predict, load_study, report_leave_one_group_out)

from abgym.paths import atomic_write  # noqa: E402
from abgym.ranker.evaluation import evaluate_predictions, protocol_table, random_report  # noqa: E402
from abgym.ranker.hidden_states import MODELS  # noqa: E402
from abgym.ranker.ranker import ALGORITHM_1, ContentRanker  # noqa: E402

CURRENT = ("minilm+smollm2-L18-mean+char", True, 10.0)
NEW_DEFAULT = ("minilm+smollm2-L18-mean+gemma3-L10-mean+char", True, 30.0)  # this study's CV winner: GEMMA_ROUND_TWO
# (abgym.ranker.ranker), not the default: its paired CV gain over CURRENT, the default, did not exclude zero
NGRAM_ALPHA = 30.0  # chosen by CV in experiments/ranker_representations.py
CRITERION = "p<0.01"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--finetune-folds", type=int, default=0, help="fine-tune MiniLM inside this many CV folds")
    parser.add_argument("--finetune-only", action="store_true", help="skip the frozen candidates' CV")
    parser.add_argument("--finetune-full", action="store_true",
                        help="fine-tune MiniLM on the whole training split (for --test-finetuned) and stop")
    parser.add_argument("--test-finetuned", nargs="*", default=None, metavar="REPRESENTATION:STANDARDIZE:RIDGE",
                        help="score the held-out split once for these fine-tuned candidates (block 'minilm-ft'), "
                             "beside the required rows and the default")
    parser.add_argument("--test", action="store_true", help="after CV: score the held-out split once")
    parser.add_argument("--reuse", nargs="*", default=[], help="earlier outputs whose CV scores are reused")
    parser.add_argument("--work", default="results/ranker_finetune", help="fine-tuned models and their vectors")
    parser.add_argument("--extra", nargs="*", default=[], metavar="REPRESENTATION:RIDGE",
                        help="more standardised candidates to score by CV (e.g. to extend a ridge grid whose best "
                             "value is at its edge)")
    parser.add_argument("--paired-cv", action="store_true",
                        help="the CV winner minus the current default per training test (both CV subsets), with "
                             "paired bootstrap intervals: is the CV gain larger than its noise?")
    parser.add_argument("--loo", type=int, default=0,
                        help="with --test: also leave-one-group-out over train + test (this many hash groups) for "
                             "Algorithm 1, the n-gram baseline, the current default and the CV winner")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results/ranker_representations_more.json")
    args = parser.parse_args(argv)
    started = time.time()
    train, test, features, folds = load_study()
    out = Path(args.out)
    result = {"n_train": len(train), "n_test": len(test), "criterion": CRITERION, "cv": {}, "cv_folds": {},
              "timings": {}}
    reused_cv, reused_folds = {}, {}
    for path in args.reuse:
        earlier = json.loads(Path(path).read_text())
        reused_cv.update(earlier.get("cv", {}))
        reused_folds.update(earlier.get("cv_folds", {}))
        result["timings"].update(earlier.get("timings", {}))

    def save():
        result["seconds"] = time.time() - started
        with atomic_write(out, "w") as handle:
            json.dump(result, handle, indent=1, default=str)

    def key_of(representation, standardize, ridge):
        return f"{representation} std={standardize} ridge={ridge:g}"

    def score(representation, standardize=True, ridge=10.0):
        key = key_of(representation, standardize, ridge)
        if key not in reused_cv:
            t0 = time.time()
            reused_cv[key] = cv_scores(features, representation, standardize, ridge, train, folds, args.seed)
            reused_cv[key]["seconds"] = time.time() - t0
        result["cv"][key] = s = reused_cv[key]
        print(f"CV {key:<64} all {s['all']:+.4f}  p<0.05 {s['p<0.05']:+.4f}  p<0.01 {s['p<0.01']:+.4f} "
              f"({s.get('seconds', 0):.0f} s)", flush=True)
        save()
        return s

    def best_of(keys):
        return max(keys, key=lambda k: result["cv"][k][CRITERION])

    if args.finetune_full:
        from abgym.ranker.finetune import encode_with, finetune_minilm
        vectors_path = Path(args.work) / "full" / "vectors.npy"
        info = finetune_minilm(train, Path(args.work) / "full", seed=args.seed)
        t0 = time.time()
        vectors = encode_with(info["path"], features.texts)
        info["encode_seconds"] = time.time() - t0
        with atomic_write(vectors_path, "wb") as handle:
            np.save(handle, vectors)
        result["timings"]["finetune full training split"] = info
        print(f"fine-tuned on the training split: {info}", flush=True)
        save()
        return 0
    if args.test_finetuned:
        return _test_finetuned(args, features, train, test, result, save)

    if not args.finetune_only:
        # The references first: the current default and its parts, now with the significant CV subsets.
        for representation, standardize in (("minilm", False), ("smollm2-L18-mean", True),
                                            ("minilm+smollm2-L18-mean", True), (CURRENT[0], True)):
            score(representation, standardize)
        # (a) Gemma 3 270M: every cached layer x pooling, standardised, at the middle ridge.
        gemma = [f"gemma3-L{layer}-{pooling}" for layer in MODELS["gemma3"].cached_layers
                 for pooling in ("mean", "last")]
        for name in gemma:
            score(name)
        best_gemma_key = best_of([key_of(n, True, 10.0) for n in gemma])
        best_gemma = best_gemma_key.split(" ")[0]
        score(best_gemma, False)
        for ridge in (1.0, 100.0):
            score(best_gemma, True, ridge)
        # a few layers around the best one, averaged
        layer = int(best_gemma.split("-")[1][1:])
        pooling = best_gemma.split("-")[2]
        cached = MODELS["gemma3"].cached_layers
        neighbours = [x for x in cached if abs(cached.index(x) - cached.index(layer)) <= 1]
        if len(neighbours) > 1:
            score(f"gemma3-L{','.join(map(str, neighbours))}-{pooling}")
        # (b) several SmolLM2 layers: averaged, and side by side
        score("smollm2-L15,18,21-mean")
        score("smollm2-L12,15,18,21,24-mean")
        score("smollm2-L15-mean+smollm2-L18-mean+smollm2-L21-mean")
        smol_keys = [key_of(n, True, 10.0) for n in ("smollm2-L18-mean", "smollm2-L15,18,21-mean",
                                                      "smollm2-L12,15,18,21,24-mean",
                                                      "smollm2-L15-mean+smollm2-L18-mean+smollm2-L21-mean")]
        best_smol = best_of(smol_keys).split(" ")[0]
        gemma_keys = [k for k in result["cv"] if k.startswith("gemma3") and "std=True ridge=10" in k]
        best_gemma = best_of(gemma_keys).split(" ")[0]
        result["best_gemma"], result["best_smollm2"] = best_gemma, best_smol
        # combinations with the current default's blocks
        for combo in (f"minilm+{best_gemma}", f"minilm+{best_gemma}+char", f"minilm+smollm2-L18-mean+{best_gemma}",
                      f"minilm+smollm2-L18-mean+{best_gemma}+char", f"minilm+{best_smol}+char",
                      f"minilm+{best_smol}+{best_gemma}+char"):
            score(combo)
        combo_keys = [k for k in result["cv"] if "+char" in k and k.startswith("minilm+")]
        best_combo = best_of(combo_keys)
        for ridge in (3.0, 30.0):
            score(best_combo.split(" ")[0], True, ridge)

    for extra in args.extra:
        representation, ridge = extra.rsplit(":", 1)
        score(representation, True, float(ridge))

    if args.finetune_folds:
        # (c) MiniLM fine-tuned inside each of the first K folds.
        from abgym.ranker.finetune import encode_with, finetune_minilm
        work = Path(args.work)
        fold_features, fold_result = {}, {}
        for k in range(args.finetune_folds):
            vectors_path = work / f"fold{k}" / "vectors.npy"
            if not vectors_path.is_file():
                inner_train = [e for e, f in zip(train, folds) if f != k]
                info = finetune_minilm(inner_train, work / f"fold{k}", seed=args.seed)
                t0 = time.time()
                vectors = encode_with(info["path"], features.texts)
                info["encode_seconds"] = time.time() - t0
                vectors_path.parent.mkdir(parents=True, exist_ok=True)
                with atomic_write(vectors_path, "wb") as handle:
                    np.save(handle, vectors)
                result["timings"][f"finetune fold {k}"] = info
                print(f"fine-tuned fold {k}: {info}", flush=True)
                save()
            here = Features(train + test)
            here.blocks = dict(features.blocks)
            here.precomputed["minilm-ft"] = np.load(vectors_path)
            here.blocks.pop("minilm-ft", None)
            fold_features[k] = here
        active = list(range(args.finetune_folds))

        def fold_score(representation, standardize, ridge=10.0, use=None):
            """CV restricted to the first K folds (the same tests for every representation)."""
            reports = []
            for k in active:
                inner_train = [e for e, f in zip(train, folds) if f != k]
                inner_test = [e for e, f in zip(train, folds) if f == k]
                here = (use or {}).get(k, features)
                reports.append(evaluate_predictions(
                    fit_predict(here, representation, standardize, ridge, inner_train, inner_test), inner_test,
                    args.seed))
            rho = np.concatenate([r.spearman for r in reports])
            p = np.concatenate([r.p_value for r in reports])
            s = {"all": float(rho.mean()), "p<0.05": float(rho[p < 0.05].mean()),
                 "p<0.01": float(rho[p < 0.01].mean()), "n": int(len(rho)), "folds": active}
            key = key_of(representation, standardize, ridge) + f" folds={len(active)}"
            result["cv_folds"][key] = fold_result[key] = s
            print(f"CV({len(active)} folds) {key:<60} all {s['all']:+.4f}  p<0.01 {s['p<0.01']:+.4f}", flush=True)
            save()
            return s

        # the fine-tuned embedder's block is a precomputed one: registered as a Lookup block name
        import ranker_representations as harness
        original = harness.representation_blocks

        def with_ft(representation):
            dense, sparse = [], []
            for block in representation.split("+"):
                (sparse if block in ("char", "word") else dense).append(block)
            return dense, sparse
        harness.representation_blocks = with_ft
        from abgym.ranker import ranker as ranker_module
        shipped_blocks = ranker_module.representation_blocks

        def shipped_with_ft(representation):
            if "minilm-ft" in representation.split("+"):
                return with_ft(representation)
            return shipped_blocks(representation)
        ranker_module.representation_blocks = shipped_with_ft
        try:
            fold_score("minilm", False)
            fold_score("minilm-ft", False, use=fold_features)
            fold_score("minilm-ft", True, use=fold_features)
            fold_score(CURRENT[0], True)
            fold_score("minilm-ft+smollm2-L18-mean+char", True, use=fold_features)
            fold_score(NEW_DEFAULT[0], True, NEW_DEFAULT[2])
            fold_score("minilm-ft+smollm2-L18-mean+gemma3-L10-mean+char", True, 30.0, use=fold_features)
            fold_score("minilm-ft+smollm2-L18-mean+gemma3-L10-mean+char", True, 10.0, use=fold_features)
        finally:
            harness.representation_blocks = original
            ranker_module.representation_blocks = shipped_blocks

    # The selection rule.
    current_key = key_of(*CURRENT)
    if current_key in result["cv"]:
        current = result["cv"][current_key]
        candidates = {k: v for k, v in result["cv"].items()
                      if v[CRITERION] > current[CRITERION] and v["all"] > current["all"]}
        winner = max(candidates, key=lambda k: candidates[k][CRITERION]) if candidates else current_key
        result["winner_by_cv"] = winner
        print(f"winner by CV ({CRITERION}, and all tests not worse): {winner}", flush=True)
        save()
    if args.paired_cv and result.get("winner_by_cv", current_key) != current_key:
        from abgym.ranker.evaluation import bootstrap_ci

        def per_test(key):
            representation, standardize, ridge = _parse_key(key)
            reports = []
            for k in range(N_FOLDS):
                inner_train = [e for e, f in zip(train, folds) if f != k]
                inner_test = [e for e, f in zip(train, folds) if f == k]
                reports.append(evaluate_predictions(
                    fit_predict(features, representation, standardize, ridge, inner_train, inner_test), inner_test))
            return (np.concatenate([r.spearman for r in reports]), np.concatenate([r.p_value for r in reports]))

        winner_rho, p_values = per_test(result["winner_by_cv"])
        current_rho, _ = per_test(current_key)
        paired = {}
        for subset, mask in (("all", np.ones(len(p_values), bool)), ("p<0.05", p_values < 0.05),
                             ("p<0.01", p_values < 0.01)):
            difference = winner_rho[mask] - current_rho[mask]
            paired[subset] = {"n": int(mask.sum()), "delta_spearman": float(difference.mean()),
                              "ci": bootstrap_ci(difference, seed=args.seed)}
            print(f"CV paired, winner minus current default, {subset} ({mask.sum()} tests): "
                  f"{difference.mean():+.4f} {paired[subset]['ci']}", flush=True)
        result["cv_paired_winner_minus_current"] = paired
        save()
    if not args.test:
        print(f"wrote {out} ({time.time() - started:.0f} s)")
        return 0

    # The held-out split, once: the required rows, the current default and the CV winner.
    winner = result["winner_by_cv"]
    representation, standardize, ridge = _parse_key(winner)
    from abgym.ranker.baselines import NgramRidge
    reports = {"random (uniform guess)": random_report(test, seed=args.seed)}
    paper = ContentRanker(ALGORITHM_1, embedder=Lookup(features, "minilm")).fit(train)
    reports["Algorithm 1 (paper), MiniLM"] = evaluate_predictions(batch_predict(paper, test), test)
    ngram = NgramRidge(alpha=NGRAM_ALPHA).fit(train)
    reports["char n-gram ridge (baseline)"] = evaluate_predictions([ngram.predict(e.texts()) for e in test], test)
    reports[f"previous default {CURRENT[0]}"] = evaluate_predictions(
        fit_predict(features, *CURRENT, train, test), test)
    if winner != current_key:
        reports[f"CV winner {representation}"] = evaluate_predictions(
            fit_predict(features, representation, standardize, ridge, train, test), test)
    table, figures = protocol_table(reports, baselines=("Algorithm 1 (paper), MiniLM", "char n-gram ridge (baseline)"),
                                    seed=args.seed)
    result["test"], result["test_table"] = figures, table
    result["held_out_configurations_scored"] = 1 if winner != current_key else 0
    print("\n" + table)
    save()
    if args.loo:
        methods = {
            "Algorithm 1 (paper), MiniLM": lambda tr, te: batch_predict(
                ContentRanker(ALGORITHM_1, embedder=Lookup(features, "minilm")).fit(tr), te),
            "char n-gram ridge (baseline)": lambda tr, te: [
                m.predict(e.texts()) for m in [NgramRidge(alpha=NGRAM_ALPHA).fit(tr)] for e in te],
            f"previous default {CURRENT[0]}": lambda tr, te: fit_predict(features, *CURRENT, tr, te),
        }
        if winner != current_key:
            methods[f"CV winner {representation}"] = lambda tr, te: fit_predict(features, representation,
                                                                                standardize, ridge, tr, te)
        report_leave_one_group_out(methods, train + test, args.loo, args.seed, result, save)
    print(f"wrote {out} ({time.time() - started:.0f} s)")
    return 0


def _with_finetuned_block(function):
    """Run ``function()`` with "minilm-ft" accepted as a dense block name (a precomputed matrix)."""
    import ranker_representations as harness

    from abgym.ranker import ranker as ranker_module
    original, shipped = harness.representation_blocks, ranker_module.representation_blocks

    def split(representation):
        if "minilm-ft" not in representation.split("+"):
            return shipped(representation)
        dense, sparse = [], []
        for block in representation.split("+"):
            (sparse if block in ("char", "word") else dense).append(block)
        return dense, sparse
    harness.representation_blocks = ranker_module.representation_blocks = split
    try:
        return function()
    finally:
        harness.representation_blocks, ranker_module.representation_blocks = original, shipped


def _test_finetuned(args, features, train, test, result, save) -> int:
    """The held-out split, once, for fine-tuned candidates (MiniLM fine-tuned on the whole training split)."""
    from abgym.ranker.baselines import NgramRidge
    vectors = Path(args.work) / "full" / "vectors.npy"
    if not vectors.exists():
        raise SystemExit(f"{vectors} is missing: run this script with --finetune-full first")
    features.precomputed["minilm-ft"] = np.load(vectors)
    reports = {"random (uniform guess)": random_report(test, seed=args.seed)}
    paper = ContentRanker(ALGORITHM_1, embedder=Lookup(features, "minilm")).fit(train)
    reports["Algorithm 1 (paper), MiniLM"] = evaluate_predictions(batch_predict(paper, test), test)
    ngram = NgramRidge(alpha=NGRAM_ALPHA).fit(train)
    reports["char n-gram ridge (baseline)"] = evaluate_predictions([ngram.predict(e.texts()) for e in test], test)
    reports[f"round two's winner {NEW_DEFAULT[0]}"] = evaluate_predictions(fit_predict(features, *NEW_DEFAULT, train, test), test)
    for candidate in args.test_finetuned:
        representation, standardize, ridge = candidate.split(":")
        standardize, ridge = standardize == "True", float(ridge)
        reports[f"fine-tuned {representation} ridge {ridge:g}"] = _with_finetuned_block(
            lambda: evaluate_predictions(fit_predict(features, representation, standardize, ridge, train, test),
                                         test))
    table, figures = protocol_table(reports, baselines=("Algorithm 1 (paper), MiniLM", "char n-gram ridge (baseline)"),
                                    seed=args.seed)
    result["test_finetuned"] = {"candidate": args.test_finetuned, "figures": figures, "table": table}
    print("\n" + table)
    save()
    return 0


def _parse_key(key: str) -> tuple[str, bool, float]:
    """"REPRESENTATION std=True ridge=30" -> (representation, standardize, ridge)."""
    return key.split(" ")[0], key.split("std=")[1].startswith("True"), float(key.split("ridge=")[1])


if __name__ == "__main__":
    sys.exit(main())
