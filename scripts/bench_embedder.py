"""Benchmark: the cached Embedder against sentence-transformers' own ``encode`` on Upworthy headlines.

Cold pass: ``Embedder.encode`` with an empty cache against ``SentenceTransformer.encode`` (batch 64, normalised)
on the same texts, the model already loaded for both, in the same process; by default on a 2,000-headline subset to
spare the shared CPU (``--cold-subset 0`` uses them all). Cached pass: a new ``Embedder`` over all 18k headlines
(10k distinct) from the cache in ``$ABGYM_CACHE_DIR`` (filled first if needed), with no model load.

    python scripts/bench_embedder.py [--cold-subset 2000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from abgym.llm import Embedder  # noqa: E402

HEADLINES = os.path.join(os.path.dirname(__file__), "..", "abgym", "data", "files", "upworthy-exploratory-dev.csv.gz")


def load_headlines() -> list[str]:
    return pd.read_csv(HEADLINES, usecols=["headline"])["headline"].astype(str).tolist()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold-subset", type=int, default=2000, help="distinct headlines in the cold pass (0: all)")
    parser.add_argument("--repeats", type=int, default=3, help="timed cached passes (median)")
    args = parser.parse_args(argv)

    headlines = load_headlines()
    distinct = list(dict.fromkeys(headlines))
    rng = np.random.default_rng(0)
    subset = distinct if args.cold_subset <= 0 else [distinct[i] for i in
                                                      rng.choice(len(distinct), args.cold_subset, replace=False)]
    print(f"{len(headlines)} headlines ({len(distinct)} distinct); cold pass on {len(subset)} distinct headlines")

    # Cold pass, with a throw-away cache so that nothing is cached yet.
    previous = os.environ.get("ABGYM_CACHE_DIR")
    with tempfile.TemporaryDirectory() as empty_cache:
        os.environ["ABGYM_CACHE_DIR"] = empty_cache
        cold = Embedder()
        start = time.perf_counter()
        model = cold.model
        load_s = time.perf_counter() - start
        import torch

        model.encode(subset[:64], batch_size=64)  # warm-up for both
        start = time.perf_counter()
        theirs = model.encode(subset, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
        theirs_s = time.perf_counter() - start
        start = time.perf_counter()
        ours = cold.encode(subset, show_progress=False)
        ours_s = time.perf_counter() - start
        difference = float(np.abs(ours - theirs).max())
    if previous is None:
        del os.environ["ABGYM_CACHE_DIR"]
    else:
        os.environ["ABGYM_CACHE_DIR"] = previous
    print(f"model load: {load_s:.1f} s, {torch.get_num_threads()} torch threads")
    print(f"cold  sentence-transformers encode: {theirs_s:.2f} s ({len(subset) / theirs_s:.0f} headlines/s)")
    print(f"cold  Embedder.encode (+ cache writes): {ours_s:.2f} s ({len(subset) / ours_s:.0f} headlines/s); "
          f"ratio sentence-transformers/Embedder {theirs_s / ours_s:.2f}; max |difference| {difference:.1e}")

    # Cached pass over every headline, from the real cache.
    filler = Embedder()
    start = time.perf_counter()
    filler.encode(headlines)
    print(f"filling the cache at {filler._cache.path}: {time.perf_counter() - start:.1f} s "
          f"({'model loaded' if filler.model_loaded else 'all cached already'})")
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        fresh = Embedder()
        vectors = fresh.encode(headlines)
        times.append(time.perf_counter() - start)
        assert not fresh.model_loaded and vectors.shape == (len(headlines), fresh.dim)
    cached_s = statistics.median(times)
    print(f"cached pass, new Embedder over {len(headlines)} headlines: median {cached_s:.2f} s "
          f"({len(headlines) / cached_s:.0f} headlines/s), model not loaded; "
          f"vs the cold rate above: {len(headlines) / (len(subset) / ours_s) / cached_s:.0f}x faster")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
