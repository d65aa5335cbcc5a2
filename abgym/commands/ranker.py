"""``abgym ranker fit|evaluate|explain``: the Experimentation Accelerator on the Upworthy archive."""
from __future__ import annotations

DEFAULT_MODEL_NAME = "ranker.npz"


def register(subparsers) -> None:
    from abgym.commands.options import non_negative_float, non_negative_int, open_fraction

    parser = subparsers.add_parser("ranker", help="content-aware CTR ranker: fit, evaluate, explain an experiment")
    commands = parser.add_subparsers(dest="ranker_command", metavar="ACTION", required=True)

    def data_options(p):
        p.add_argument("--data", default=None, help="Upworthy package CSV (default: the shipped subset)")
        p.add_argument("--split-by", choices=["hash", "week"], default="hash",
                       help="train/test split by test id hash or by week (latest weeks are test)")
        p.add_argument("--test-fraction", type=open_fraction, default=0.2)

    fit = commands.add_parser("fit", help="fit the ranker on the train split and save it")
    data_options(fit)
    fit.add_argument("--objective", choices=["pointwise", "pointwise_relative", "pairwise"], default="pairwise",
                     help="pointwise: the paper's Algorithm 1; pairwise (default, RankerConfig()): "
                          "within-experiment soft-label logistic")
    fit.add_argument("--fields", nargs="+", default=["headline"], choices=["headline", "excerpt", "lede"])
    fit.add_argument("--components", type=int, default=0,
                     help="PCA dimensions q (0: none, the full embedding; chosen by cross-validation, docs/ranker.md)")
    fit.add_argument("--ridge", type=non_negative_float, default=None,
                     help="L2 penalty (default: RankerConfig()'s, 10; round two's Gemma ranker used 30)")
    fit.add_argument("--representation", default=None,
                     help="text blocks joined by '+': minilm, smollm2-L<layer>-<mean|last>, gemma3-L<layer>-<mean|last>"
                          ", char, word (default: RankerConfig()'s, minilm+smollm2-L18-mean+char; "
                          "'minilm' needs no language model)")
    fit.add_argument("--standardize", choices=["yes", "no"], default=None,
                     help="scale dense dimensions by their sd (default: yes, as RankerConfig())")
    fit.add_argument("--all", action="store_true", help="fit on every experiment, not only the train split")
    fit.add_argument("--out", default=None, help=f"where to save (default: the cache, {DEFAULT_MODEL_NAME})")
    fit.set_defaults(handler=run_fit)

    evaluate = commands.add_parser("evaluate", help="Spearman and top-1 on held-out experiments vs random")
    data_options(evaluate)
    evaluate.add_argument("--model", default=None, help="a saved ranker (default: the cached one; fitted if absent)")
    evaluate.add_argument("--seed", type=non_negative_int, default=0)
    evaluate.add_argument("--ngram-alpha", type=float, default=30.0,
                          help="ridge penalty of the character n-gram baseline (30: chosen by grouped CV inside the "
                               "training split, docs/ranker.md)")
    evaluate.set_defaults(handler=run_evaluate)

    explain = commands.add_parser("explain", help="drivers, opportunities, chart and LLM insights for one experiment")
    data_options(explain)
    explain.add_argument("--experiment", required=True, help="the clickability_test_id of the experiment")
    explain.add_argument("--model", default=None)
    explain.add_argument("--lexicon", default=None, help="attribute lexicon JSON (default: the shipped one)")
    explain.add_argument("--top", type=int, default=3, help="how many drivers and opportunities")
    explain.add_argument("--predicted", action="store_true",
                         help="contrast the predicted best and worst arms (before traffic), not the observed ones")
    explain.add_argument("--no-llm", action="store_true", help="skip the language-model insights")
    explain.add_argument("--out", default="results/ranker", help="folder for the chart PNG and the JSON report")
    explain.set_defaults(handler=run_explain)


def _model_path(arg):
    from pathlib import Path

    from abgym.paths import cache_dir

    return Path(arg) if arg else cache_dir("ranker") / DEFAULT_MODEL_NAME


def _load_or_fit(args):
    from abgym.ranker.ranker import ContentRanker, RankerFileError

    from abgym.ranker.ranker import RankerConfig

    path = _model_path(args.model)
    if path.is_file():
        try:
            ranker = ContentRanker.load(path)
        except RankerFileError as error:
            raise SystemExit(f"error: {error}") from error
        if not args.model and ranker.config != RankerConfig():
            print(f"note: {path} holds a {ranker.config.objective} ranker on {ranker.config.representation!r}, not "
                  f"the default ({RankerConfig().representation!r}); `abgym ranker fit` refits the default")
        return ranker, path
    if args.model:
        raise SystemExit(f"error: no ranker at {path}; fit one with `abgym ranker fit --out {path}`")
    print(f"no fitted ranker at {path} yet: fitting the default one (abgym ranker fit)")
    default = RankerConfig()  # the one default: what ContentRanker() and RankerPrior.default() fit
    ranker = _fit(args, objective=default.objective, fields=default.fields, components=default.n_components or 0,
                  ridge=default.ridge, use_all=False, representation=default.representation,
                  standardize=default.standardize)
    ranker.save(path)
    return ranker, path


def _experiments(args, split):
    from abgym.data.upworthy import load_experiments

    return load_experiments(args.data, split=split, split_by=args.split_by, test_fraction=args.test_fraction,
                            merge_identical=("headline",))


def _fit(args, objective, fields, components, ridge, use_all, representation=None, standardize=None):
    import time

    from abgym.ranker.ranker import ContentRanker, RankerConfig

    default = RankerConfig()
    config = RankerConfig(fields=tuple(fields), n_components=components or None,
                          ridge=default.ridge if ridge is None else ridge, objective=objective,
                          representation=representation or default.representation,
                          standardize=default.standardize if standardize is None else standardize)
    experiments = _experiments(args, "all" if use_all else "train")
    started = time.time()
    ranker = ContentRanker(config)
    _announce_cold_embedding(ranker, [t for e in experiments for t in e.texts(config.fields)])
    ranker.fit(experiments)
    print(f"fitted {objective} ranker ({config.representation}) on {len(experiments)} experiments "
          f"({ranker.metadata['n_arms']} arms) in {time.time() - started:.1f} s")
    return ranker


# Measured on the 2-core development machine (docs/ranker.md): 8,815 headlines in 55 s idle, 360 s under load.
_TEXTS_PER_SECOND_IDLE, _TEXTS_PER_SECOND_LOADED = 160.0, 25.0
# Hidden states (headlines per second, idle and busy): SmolLM2 200 headlines in 1.9 s idle, 5 per second with one
# torch thread at load average 16; Gemma 3 270M up to layer 10: 37 per second measured at load average 5.5
# (docs/ranker.md, "Cold fit"), 60 idle assumed, 5 on an overloaded machine assumed like SmolLM2's.
_HIDDEN_PER_SECOND = {"smollm2": (100.0, 5.0), "gemma3": (60.0, 5.0)}


def _announce_cold_embedding(ranker, texts) -> None:
    """Say how many texts the embedder still has to compute and how long that should take (the cold first fit)."""
    from abgym.llm.embedding_cache import text_key

    keys = sorted({text_key(t) for t in texts})
    for part in getattr(ranker.embedder, "parts", [ranker.embedder]):
        cache = getattr(part, "_cache", None)
        if cache is not None:  # the sentence embedder
            speeds = (_TEXTS_PER_SECOND_IDLE, _TEXTS_PER_SECOND_LOADED)
        elif hasattr(part, "cache_for_pooling"):  # the language model's hidden states
            cache, speeds = part.cache_for_pooling(), _HIDDEN_PER_SECOND.get(part.spec.name, (60.0, 5.0))
        else:
            continue
        missing = len(keys) - len(cache.get_many(keys))
        if missing >= 200:
            print(f"{getattr(part, 'model_id', 'embedder')}: {missing} texts not yet in the cache (computed once; "
                  f"later fits take seconds): about {max(missing / speeds[0] / 60, 1):.0f}-"
                  f"{missing / speeds[1] / 60:.0f} min on two cores, from idle to busy", flush=True)


def run_fit(args) -> int:
    standardize = None if args.standardize is None else args.standardize == "yes"
    ranker = _fit(args, args.objective, args.fields, args.components, args.ridge, args.all, args.representation,
                  standardize)
    path = ranker.save(_model_path(args.out))
    print(f"saved {path}")
    return 0


def run_evaluate(args) -> int:
    import time

    from abgym.ranker.baselines import NgramRidge
    from abgym.ranker.evaluation import evaluate_predictions, evaluate_ranker, protocol_table, random_report

    ranker, path = _load_or_fit(args)
    test = _experiments(args, "test")
    print(f"ranker {path} ({ranker.config.objective}, fields {list(ranker.config.fields)}) on {len(test)} held-out "
          f"experiments with at least two distinct headlines (split by {args.split_by}):")
    started = time.time()
    ngram = NgramRidge(alpha=args.ngram_alpha, fields=ranker.config.fields).fit(_experiments(args, "train"))
    reports = {"random (uniform guess)": random_report(test, seed=args.seed),
               "char n-gram ridge (baseline)": evaluate_predictions(
                   [ngram.predict(e.texts(ngram.fields)) for e in test], test, args.seed),
               "ranker": evaluate_ranker(ranker, test, seed=args.seed)}
    for name, report in reports.items():
        print(report.line(name[:34]))
    table, _ = protocol_table(reports, baselines=("char n-gram ridge (baseline)",), seed=args.seed)
    print(f"\nby the paper's protocol (subsets: chi-square test of clicks across arms; pair accuracy over pairs "
          f"significant at p < 0.05; n-gram baseline fitted on the train split in {time.time() - started:.0f} s):\n")
    print(table)
    return 0


def run_explain(args) -> int:
    import json
    from pathlib import Path

    import numpy as np

    from abgym.paths import atomic_write
    from abgym.ranker.attributes import AttributeSpace, LexiconError, load_lexicon
    from abgym.ranker.chart import contribution_chart
    from abgym.ranker.impact import fit_impact
    from abgym.ranker.insights import explain_experiment

    ranker, _ = _load_or_fit(args)
    everything = _experiments(args, "all")
    matches = [e for e in everything if e.test_id == args.experiment]
    if not matches:
        sample = ", ".join(e.test_id for e in everything[:3])
        raise SystemExit(f"error: no experiment {args.experiment!r} with at least two distinct headlines in "
                         f"{args.data or 'the shipped Upworthy subset'}; ids look like {sample}")
    experiment = matches[0]
    try:
        lexicon = load_lexicon(args.lexicon)
    except LexiconError as error:
        raise SystemExit(f"error: {error}") from error
    space = AttributeSpace(ranker.embedder, lexicon, reference_mean=ranker.mu)
    corpus = ranker.embed([t for e in _experiments(args, "train") for t in e.texts(ranker.config.fields)])
    impact = fit_impact(ranker, space, corpus)
    targets = np.quantile(space.scores_from_embeddings(corpus), 0.9, axis=0)
    insights = explain_experiment(experiment, ranker, space, impact, targets, k=args.top,
                                  use_observed=not args.predicted)
    out = Path(args.out)
    chart = contribution_chart(insights, out / f"{experiment.test_id}_contributions.png")
    report = {"insights": insights.to_dict(), "chart": str(chart),
              "impact": {"alpha": impact.alpha, "fidelity_r2": impact.fidelity, "active": len(impact.active)}}

    print(f"experiment {experiment.test_id} (week {experiment.test_week}, {experiment.n_arms} distinct headlines)")
    for i, text in enumerate(insights.texts):
        mark = "best " if i == insights.best_arm else "worst" if i == insights.worst_arm else "     "
        print(f"  {mark} ctr {insights.observed_ctr[i]:.4f} predicted {insights.predicted[i]:+.4f}  {text}")
    print(f"attribute model: {len(impact.active)} active attributes, R^2 {impact.fidelity:.2f} of the ranker's scores")
    print("top drivers (" + insights.contrast + " best vs worst):")
    for d in insights.drivers or []:
        print(f"  {d.name:<26} insight index {d.value:+.2f}  impact {d.bin}")
    if not insights.drivers:
        print("  none: no attribute pushes towards the best arm")
    print("opportunities" + (" (fallback: strongest positive attributes)" if insights.opportunities_fallback else "")
          + ":")
    for o in insights.opportunities:
        print(f"  {o.name:<26} index {o.value:.4f}  impact {o.bin}")

    if not args.no_llm:
        report["llm"] = _llm_section(ranker, insights, experiment)
    with atomic_write(out / f"{experiment.test_id}.json", "w") as handle:
        json.dump(report, handle, indent=1, default=float)
    print(f"chart: {chart}\nreport: {out / (experiment.test_id + '.json')}")
    return 0


def _llm_section(ranker, insights, experiment) -> dict:
    from abgym.llm import LanguageModel
    from abgym.ranker.insights import conversion_potential, learning_potential, novelty
    from abgym.ranker.narrative import narrate

    lm = LanguageModel.load()
    section = {}
    for kind in ("insight", "suggestion"):
        narrative = narrate(lm, insights, kind)
        section[kind] = narrative.to_dict()
        print(f"LLM {kind}s: {narrative.status}; {len(narrative.items)} accepted, {len(narrative.rejected)} rejected "
              f"by self-reflection, {len(narrative.malformed_lines)} malformed lines dropped")
        for item in narrative.items:
            print(f"  [{item.attribute}] {item.text}")
        if kind == "suggestion" and narrative.items:
            candidates = [item.text for item in narrative.items]
            arms = ranker.embed(insights.texts)
            new = ranker.embed(candidates)
            gap = ranker.scores(candidates) - ranker.scores(insights.texts).max()
            conversion = conversion_potential(gap, ranker.metadata.get("residual_scale", 1.0))
            learning = learning_potential(novelty(new, arms), conversion)
            section["suggestion_potentials"] = [
                {"text": c, "novelty": float(n), "conversion_potential": float(p), "learning_potential": float(l)}
                for c, n, p, l in zip(candidates, novelty(new, arms), conversion, learning)]
            for row in section["suggestion_potentials"]:
                print(f"  novelty {row['novelty']:.2f} conversion {row['conversion_potential']:.2f} "
                      f"learning {row['learning_potential']:.2f}  {row['text']}")
    return section
