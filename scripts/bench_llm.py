"""Benchmark: ranking 10 candidate movie titles after a ~150-token prompt with SmolLM2-135M-Instruct.

Naive (one full forward pass over prompt + candidate, per candidate) against the fast path of
``LanguageModel.score`` (prompt and all candidates in one forward pass over one packed sequence, the prompt computed once),
in the same process on the same inputs; prints medians, the ratio, tokens per second, peak memory, and how far the
two scores are apart. Also times batched generation.

    python scripts/bench_llm.py                       # the default dtype (bfloat16 where the CPU has it)
    python scripts/bench_llm.py --dtype float32 bfloat16 --repeats 20
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

from abgym.llm import LanguageModel  # noqa: E402

HISTORY = [
    "Toy Story (1995)", "Aladdin (1992)", "The Lion King (1994)", "Beauty and the Beast (1991)",
    "Finding Nemo (2003)", "Monsters, Inc. (2001)", "Shrek (2001)", "The Incredibles (2004)",
    "Up (2009)", "Ratatouille (2007)", "WALL-E (2008)", "Inside Out (2015)",
]
CANDIDATES = [
    "Toy Story 2 (1999)", "The Godfather (1972)", "Saw (2004)", "Frozen (2013)", "Pulp Fiction (1994)",
    "Coco (2017)", "The Exorcist (1973)", "Schindler's List (1993)", "Zootopia (2016)", "Die Hard (1988)",
]


def build_prompt(lm: LanguageModel, user: int = 0, target_tokens: int = 150) -> str:
    """A recommendation prompt, ``target_tokens`` long once chat-formatted (give or take a word); each ``user`` has
    the watch history in another order, so consecutive prompts share only the template and the instructions."""
    intro = "You are a movie recommender. The user recently watched and enjoyed these movies, in order:"
    outro = " Which single movie should they watch next? Answer with the title only."
    shift = user % len(HISTORY)
    words = "; ".join((HISTORY[shift:] + HISTORY[:shift]) * 10).split(" ")
    for count in range(1, len(words) + 1):
        prompt = intro + " " + " ".join(words[:count]) + "." + outro
        if len(lm._encode(lm.format_prompt(prompt))) >= target_tokens:
            return prompt
    raise ValueError(f"cannot build a {target_tokens}-token prompt from the history")


def timed(function, prompts: list[str]) -> tuple[float, list[float], list, float]:
    """Median wall time, all wall times, the results, and the median CPU time (all threads of the process)."""
    times, cpu_times, results = [], [], []
    for prompt in prompts:
        start, cpu_start = time.perf_counter(), time.process_time()
        results.append(function(prompt))
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    return statistics.median(times), times, results, statistics.median(cpu_times)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def bench_dtype(dtype: str, repeats: int) -> dict:
    import torch

    start = time.perf_counter()
    lm = LanguageModel.load(dtype=dtype)
    load_s = time.perf_counter() - start
    prompts = [build_prompt(lm, user) for user in range(repeats)]
    prompt_tokens = statistics.median(len(lm._encode(lm.format_prompt(p))) for p in prompts)
    candidate_tokens = [len(lm._encode(c)) for c in CANDIDATES]
    rss_loaded = peak_rss_mib()

    lm.reuse_prompt_prefix, lm._last_prompt = False, None
    lm.score(build_prompt(lm, 99), CANDIDATES)  # warm-up (allocator, kernels)
    fast_s, fast_times, fast, fast_cpu = timed(lambda p: lm.score(p, CANDIDATES), prompts)
    rss_fast = peak_rss_mib()
    lm.reuse_prompt_prefix = True
    reuse_s, _, _, reuse_cpu = timed(lambda p: lm.score(p, CANDIDATES), prompts)
    reused_tokens = lm.last_prompt_tokens_reused
    checked = max(3, repeats // 3)
    lm.score_naive(prompts[0], CANDIDATES)  # warm-up
    naive_s, _, naive, naive_cpu = timed(lambda p: lm.score_naive(p, CANDIDATES), prompts[:checked])
    rss_naive = peak_rss_mib()
    mean_gap = max(float(np.max(np.abs(f.mean_logprob - n.mean_logprob))) for f, n in zip(fast, naive))
    sum_gap = max(float(np.max(np.abs(f.sum_logprob - n.sum_logprob))) for f, n in zip(fast, naive))
    same_ranking = all(np.array_equal(np.argsort(-f.mean_logprob, kind="stable"),
                                      np.argsort(-n.mean_logprob, kind="stable")) for f, n in zip(fast, naive))
    fast = fast[0]

    fast_processed = prompt_tokens + sum(candidate_tokens)
    naive_processed = sum(prompt_tokens + n for n in candidate_tokens)
    gen_prompts = ["Recommend one family movie.", "Write a catchy headline about saving energy.",
                   "Name a good science fiction film.", "Suggest a title for a cooking video."]
    gen_s, _, outputs, _ = timed(lambda _: lm.generate(gen_prompts, max_new_tokens=32), ["", ""])
    replies = outputs[-1]
    gen_tokens = sum(len(lm._encode(r)) for r in replies)
    return {
        "dtype": lm.name, "load_s": load_s, "threads": torch.get_num_threads(), "prompt_tokens": prompt_tokens,
        "candidate_tokens": sum(candidate_tokens), "fast_s": fast_s, "fast_p90_s": float(np.quantile(fast_times, 0.9)),
        "naive_s": naive_s, "ratio": naive_s / fast_s, "fast_cpu": fast_cpu, "naive_cpu": naive_cpu,
        "fast_tok_s": fast_processed / fast_s, "naive_tok_s": naive_processed / naive_s,
        "max_mean_diff": mean_gap, "max_sum_diff": sum_gap, "same_ranking": same_ranking, "checked": checked,
        "reuse_s": reuse_s, "reuse_cpu": reuse_cpu, "reused_tokens": reused_tokens,
        "top3": [CANDIDATES[i] for i in np.argsort(-fast.mean_logprob, kind="stable")[:3]],
        "rss_loaded": rss_loaded, "rss_fast": rss_fast, "rss_naive": rss_naive,
        "gen_s": gen_s, "gen_tok_s": gen_tokens / gen_s, "gen_tokens": gen_tokens,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", nargs="+", default=[None], choices=["bfloat16", "float32"],
                        help="one or more dtypes to measure (default: the library's default)")
    parser.add_argument("--repeats", type=int, default=15, help="timed rankings per method (naive: a third)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: one per available core)")
    args = parser.parse_args(argv)
    if args.threads:
        os.environ["ABGYM_TORCH_THREADS"] = str(args.threads)
    import torch

    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, {os.cpu_count()} CPUs visible, "
          f"capability {torch.backends.cpu.get_cpu_capability()}, load average {os.getloadavg()[0]:.1f} at start")
    for dtype in args.dtype:
        r = bench_dtype(dtype, args.repeats)
        print(f"\n== {r['dtype']}, {r['threads']} torch threads "
              f"(loaded from the converted cache in {r['load_s']:.1f} s)")
        print(f"prompt {r['prompt_tokens']:.0f} tokens (chat template applied; a different user history each ranking), 10 candidates, "
              f"{r['candidate_tokens']} candidate tokens")
        print(f"naive  (forward per candidate): median {r['naive_s']:.3f} s per ranking, "
              f"{r['naive_tok_s']:.0f} tokens/s processed; CPU {r['naive_cpu']:.3f} s")
        print(f"fast   (one packed pass)      : median {r['fast_s']:.3f} s per ranking (p90 {r['fast_p90_s']:.3f} s), "
              f"{r['fast_tok_s']:.0f} tokens/s processed; CPU {r['fast_cpu']:.3f} s")
        print(f"fast + prompt-prefix reuse (default; {r['reused_tokens']} of the prompt's tokens shared with the "
              f"previous user's prompt): median {r['reuse_s']:.3f} s, CPU {r['reuse_cpu']:.3f} s")
        print(f"ratio naive/fast: {r['ratio']:.1f}x wall, {r['naive_cpu'] / r['fast_cpu']:.1f}x CPU time; naive/default "
              f"{r['naive_s'] / r['reuse_s']:.1f}x;   target <= 0.25 s (default path): {'met' if r['reuse_s'] <= 0.25 else 'NOT met'}")
        print(f"agreement over {r['checked']} prompts: max |mean logprob diff| {r['max_mean_diff']:.2e}, max |sum diff| {r['max_sum_diff']:.2e}, "
              f"same ranking: {r['same_ranking']}; top 3 for user 0: {r['top3']}")
        print(f"peak RSS: {r['rss_loaded']:.0f} MiB after load, {r['rss_fast']:.0f} MiB after fast scoring, "
              f"{r['rss_naive']:.0f} MiB after naive scoring (process peak, monotone)")
        print(f"generate: 4 prompts x 32 new tokens, greedy: {r['gen_s']:.2f} s, {r['gen_tok_s']:.0f} new tokens/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
