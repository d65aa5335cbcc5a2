"""How often does SmolLM2-135M produce usable insights and suggestions? Counts over held-out experiments.

    nice .venv/bin/python experiments/ranker_narratives.py --experiments 10

For each of the first N test-split experiments (hash split, at least three distinct headlines): drivers and
opportunities from the ranker and the attribute model, then the language model's insights and suggestions through
the parsing and self-reflection pipeline of abgym/ranker/narrative.py. Reports, per kind, how many experiments gave
at least one accepted item, how many items parsed, how many self-reflection accepted, and how many lines were
dropped as malformed, with every raw output in the JSON file so a reader can judge the texts.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from abgym.data.upworthy import load_experiments  # noqa: E402
from abgym.llm import LanguageModel  # noqa: E402
from abgym.paths import atomic_write  # noqa: E402
from abgym.ranker.attributes import AttributeSpace  # noqa: E402
from abgym.ranker.impact import fit_impact  # noqa: E402
from abgym.ranker.insights import explain_experiment  # noqa: E402
from abgym.ranker.narrative import narrate  # noqa: E402
from abgym.ranker.prior import DEFAULT_CONFIG  # noqa: E402
from abgym.ranker.ranker import ContentRanker  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=10)
    parser.add_argument("--out", default="results/ranker_narratives.json")
    args = parser.parse_args(argv)
    started = time.time()
    train = load_experiments(split="train", merge_identical=("headline",))
    test = [e for e in load_experiments(split="test", merge_identical=("headline",)) if e.n_arms >= 3]
    ranker = ContentRanker(DEFAULT_CONFIG).fit(train)
    space = AttributeSpace(ranker.embedder, reference_mean=ranker.mu)
    corpus = ranker.embed([t for e in train for t in e.texts()])
    impact = fit_impact(ranker, space, corpus)
    targets = np.quantile(space.scores_from_embeddings(corpus), 0.9, axis=0)
    lm = LanguageModel.load()
    print(f"ranker, attribute model (R^2 {impact.fidelity:.2f}) and {lm} ready in {time.time() - started:.0f} s",
          flush=True)
    records, counts = [], {k: Counter() for k in ("insight", "suggestion")}
    for experiment in test[:args.experiments]:
        insights = explain_experiment(experiment, ranker, space, impact, targets)
        record = {"test_id": experiment.test_id, "texts": insights.texts}
        for kind in ("insight", "suggestion"):
            t0 = time.time()
            narrative = narrate(lm, insights, kind)
            record[kind] = narrative.to_dict()
            c = counts[kind]
            c["experiments"] += 1
            c[narrative.status] += 1
            c["parsed"] += narrative.n_parsed
            c["accepted"] += len(narrative.items)
            c["rejected"] += len(narrative.rejected)
            c["malformed"] += len(narrative.malformed_lines)
            print(f"{experiment.test_id} {kind}: {narrative.status}, {len(narrative.items)} accepted / "
                  f"{narrative.n_parsed} parsed / {len(narrative.malformed_lines)} malformed "
                  f"({time.time() - t0:.0f} s)", flush=True)
            for item in narrative.items:
                print(f"    [{item.attribute}] {item.text}", flush=True)
        records.append(record)
    summary = {kind: dict(c) for kind, c in counts.items()}
    print(json.dumps(summary, indent=1))
    with atomic_write(Path(args.out), "w") as handle:
        json.dump({"model": str(lm), "summary": summary, "records": records,
                   "seconds": time.time() - started}, handle, indent=1, default=float)
    print(f"wrote {args.out} ({time.time() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
