"""Benchmark: ranking 10 candidate movie titles after a ~150-token prompt with SmolLM2-135M-Instruct, per backend
and per CPU instruction set, and with one core busy with another process.

Every measurement runs in a child process of this script, one after another in the same run, so that the ratios
compare figures taken minutes apart on the same (shared) machine:

- per ISA (``native``, and ``avx2``: ATen, oneDNN, MKL and FBGEMM limited to AVX2 through ATEN_CPU_CAPABILITY,
  ONEDNN_MAX_CPU_ISA, MKL_ENABLE_INSTRUCTIONS and FBGEMM_ENABLE_INSTRUCTIONS; this emulates an AVX2-only CPU on
  an AVX-512 machine, it is not the same machine: clocks, caches and memory stay the Zen 4's, and ONNX Runtime
  cannot be limited, so its figure there is its AVX-512 one), each backend of ``abgym.llm.LanguageModel``:
  median wall and CPU time per ranking on the default path, ratio to the naive path (one forward pass per
  candidate, float32 torch), agreement of its scores with float32 (max |mean log-prob diff|, same ranking), and
  greedy generation (new tokens per second);
- the default backend with a busy-loop process beside it (one core taken): the adaptive thread count against the
  old fixed one thread per core.

    python scripts/bench_llm.py                                   # everything (about 10-20 min on 2 busy cores)
    python scripts/bench_llm.py --isa avx2 --backends float32 onnxruntime --repeats 8
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from abgym.machine import cpu_description, load_line  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")

HISTORY = [
    "Toy Story (1995)", "Aladdin (1992)", "The Lion King (1994)", "Beauty and the Beast (1991)",
    "Finding Nemo (2003)", "Monsters, Inc. (2001)", "Shrek (2001)", "The Incredibles (2004)",
    "Up (2009)", "Ratatouille (2007)", "WALL-E (2008)", "Inside Out (2015)",
]
CANDIDATES = [
    "Toy Story 2 (1999)", "The Godfather (1972)", "Saw (2004)", "Frozen (2013)", "Pulp Fiction (1994)",
    "Coco (2017)", "The Exorcist (1973)", "Schindler's List (1993)", "Zootopia (2016)", "Die Hard (1988)",
]
GENERATION_PROMPTS = ["Recommend one family movie.", "Write a catchy headline about saving energy.",
                      "Name a good science fiction film.", "Suggest a title for a cooking video."]
ISA_LIMITS = {
    "native": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
             "FBGEMM_ENABLE_INSTRUCTIONS": "AVX2"},
}
BACKENDS = ["float32", "bfloat16", "int8", "onnxruntime", "onnxruntime-int8"]


def build_prompt(lm, user: int = 0, target_tokens: int = 150) -> str:
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


# ---------------------------------------------------------------------------------------------------- the child
def timed(function, items) -> tuple[list[float], list[float], list]:
    walls, cpus, results = [], [], []
    for item in items:
        start, cpu_start = time.perf_counter(), time.process_time()
        results.append(function(item))
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu_start)
    return walls, cpus, results


def child(backend: str, repeats: int, naive: int, generate: bool) -> dict:
    """One backend in this process: rankings on the default path, naive rankings, generation."""
    import torch

    from abgym.llm import LanguageModel
    from abgym.llm.language_model import default_backend, native_bfloat16

    backend = default_backend() if backend == "default" else backend
    load_start = time.perf_counter()
    lm = LanguageModel.load(backend=backend, shared=False)
    load_s = time.perf_counter() - load_start
    prompts = [build_prompt(lm, user) for user in range(repeats)]
    lm.score(build_prompt(lm, 99), CANDIDATES)  # warm-up (allocator, kernels, the thread meter's first window)
    walls, cpus, results = timed(lambda p: lm.score(p, CANDIDATES), prompts)
    threads = torch.get_num_threads() if lm._onnx is None else lm._onnx.threads
    out = {
        "backend": backend, "name": lm.name, "capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": native_bfloat16(), "threads": threads, "load_s": load_s,
        "rank_s": statistics.median(walls), "rank_cpu": statistics.median(cpus),
        "rank_p90_s": sorted(walls)[int(0.9 * (len(walls) - 1))],
        "reused_tokens": lm.last_prompt_tokens_reused,
        "mean_logprob": [r.mean_logprob.tolist() for r in results],
        "prompt_tokens": statistics.median(len(lm._encode(lm.format_prompt(p))) for p in prompts),
        "candidate_tokens": sum(len(lm._encode(c)) for c in CANDIDATES),
    }
    if naive:
        lm.score_naive(prompts[0], CANDIDATES)  # warm-up
        walls, cpus, naive_results = timed(lambda p: lm.score_naive(p, CANDIDATES), prompts[:naive])
        out.update(naive_s=statistics.median(walls), naive_cpu=statistics.median(cpus),
                   naive_mean_logprob=[r.mean_logprob.tolist() for r in naive_results])
    if generate:
        lm.generate(GENERATION_PROMPTS[:1], max_new_tokens=4)  # warm-up
        walls, cpus, replies = timed(lambda _: lm.generate(GENERATION_PROMPTS, max_new_tokens=32), [0, 1])
        new_tokens = sum(len(lm._encode(reply)) for reply in replies[-1])
        out.update(gen_s=min(walls), gen_cpu=min(cpus), gen_tokens=new_tokens, gen_tok_s=new_tokens / min(walls),
                   gen_reply=replies[-1][0][:70])
    out["load_end"] = os.getloadavg()[0]
    out["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return out


# --------------------------------------------------------------------------------------------------- the parent
def run_child(backend: str, isa: str, args, *, naive: int = 0, generate: bool = True, repeats: int | None = None,
              threads: int | None = None) -> dict | None:
    env = {**os.environ, **ISA_LIMITS[isa]}
    if threads:  # else ABGYM_TORCH_THREADS, if the caller set it, applies to every child
        env["ABGYM_TORCH_THREADS"] = str(threads)
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "result.json"
        command = [sys.executable, __file__, "--child", backend, "--json", str(target),
                   "--repeats", str(repeats or args.repeats), "--naive", str(naive)] + ([] if generate else ["--no-generate"])
        load_start = os.getloadavg()[0]
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0 or not target.exists():
            print(f"  {isa}/{backend}: the child failed: {done.stderr.strip().splitlines()[-1:]}")
            return None
        result = json.loads(target.read_text())
    result["load_start"] = load_start
    return result


def agreement(result: dict, reference: list[list[float]]) -> tuple[float, int, int]:
    import numpy as np

    pairs = list(zip(result["mean_logprob"], reference))
    gap = max(float(np.max(np.abs(np.array(a) - np.array(b)))) for a, b in pairs)
    same = sum(np.array_equal(np.argsort(-np.array(a), kind="stable"), np.argsort(-np.array(b), kind="stable"))
               for a, b in pairs)
    return gap, same, len(pairs)


def with_busy_core(function):
    """Run ``function()`` while another process spins on one core (``while True: pass``)."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(1.0)
        return function()
    finally:
        spinner.kill()
        spinner.wait()


def report_isa(isa: str, args) -> None:
    print(f"\n== ISA {isa}: {' '.join(f'{k}={v}' for k, v in ISA_LIMITS[isa].items()) or 'no limits'} ({load_line()})")
    results = {}
    for backend in args.backends:
        if backend == "bfloat16" and "float32" in results and not results["float32"]["native_bf16"]:
            print("  bfloat16: skipped, not native under this ISA (oneDNN reports no bf16)")
            continue
        result = run_child(backend, isa, args, naive=args.naive if backend == "float32" else 0)
        if result is not None:
            results[backend] = result
    if "float32" not in results:
        print("  (no float32 result: no ratios)")
        return
    base = results["float32"]
    print(f"  capability {base['capability']}, native bf16 {base['native_bf16']}; prompt {base['prompt_tokens']:.0f} "
          f"tokens, 10 candidates ({base['candidate_tokens']} tokens); naive (float32 torch, one pass per candidate): "
          f"{base['naive_s']:.3f} s wall, {base['naive_cpu']:.3f} CPU-s per ranking")
    gap, same, count = agreement({"mean_logprob": base["mean_logprob"][: len(base["naive_mean_logprob"])]},
                                 base["naive_mean_logprob"])
    print(f"  float32 fast vs naive: max |mean logprob diff| {gap:.1e}, same ranking {same}/{count}")
    print(f"  {'backend':<16} {'threads':>7} {'rank wall':>10} {'p90':>7} {'CPU-s':>7} {'naive/this':>10} "
          f"{'max|dmean|':>10} {'same rank':>9} {'gen tok/s':>9} {'gen CPU-s':>9}  load start/end")
    for backend, r in results.items():
        gap, same, count = agreement(r, base["mean_logprob"])
        print(f"  {backend:<16} {r['threads']:>7} {r['rank_s']:>9.3f}s {r['rank_p90_s']:>6.3f}s {r['rank_cpu']:>7.3f} "
              f"{base['naive_s'] / r['rank_s']:>9.1f}x {gap:>10.2e} {same:>4}/{count:<4} {r.get('gen_tok_s', 0):>9.1f} "
              f"{r.get('gen_cpu', 0):>9.2f} {r['rss_mib']:>5.0f}MiB  {r['load_start']:.1f}/{r['load_end']:.1f}")
    for backend, r in results.items():
        print(f"  {backend} reply: {r.get('gen_reply', '')!r}")
    if args.contention:
        cores = len(os.sched_getaffinity(0))
        adaptive = with_busy_core(lambda: run_child("default", isa, args, generate=False))
        if adaptive is None:
            return
        default = adaptive["backend"]
        # torch adapts its thread count (the alternative: the old fixed one thread per core); ONNX Runtime keeps
        # one thread per core (the alternative: one thread, what adapting would choose).
        other = 1 if default.startswith("onnxruntime") else cores
        print(f"  with one core busy (a busy-loop process beside the benchmark), default backend {default}:")
        fixed = with_busy_core(lambda: run_child(default, isa, args, generate=False, threads=other,
                                                 repeats=max(3, args.repeats // 3)))
        idle = results.get(default)
        rows = [("no busy loop, default threads", idle), ("busy core, default threads", adaptive),
                (f"busy core, {other} thread{'s' if other > 1 else ''} forced" + (" (before)" if other == cores else ""),
                 fixed)]
        for label, r in rows:
            if r is not None:
                print(f"    {label:<40} threads {r['threads']}: median {r['rank_s']:.3f} s wall, {r['rank_cpu']:.3f} "
                      f"CPU-s per ranking (load {r['load_start']:.1f}/{r['load_end']:.1f})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--isa", nargs="+", default=["native", "avx2"], choices=list(ISA_LIMITS))
    parser.add_argument("--backends", nargs="+", default=BACKENDS, choices=BACKENDS)
    parser.add_argument("--repeats", type=int, default=10, help="timed rankings per backend")
    parser.add_argument("--naive", type=int, default=3, help="timed naive rankings (float32)")
    parser.add_argument("--no-contention", dest="contention", action="store_false",
                        help="skip the runs with a busy-loop process beside the benchmark")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    parser.add_argument("--no-generate", dest="generate", action="store_false", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        Path(args.json).write_text(json.dumps(child(args.child, args.repeats, args.naive, args.generate)))
        return 0
    if "float32" not in args.backends:
        args.backends = ["float32"] + args.backends  # the reference for ratios and agreement
    import torch

    print(f"CPU: {cpu_description()}")
    print(f"python {sys.version.split()[0]}, torch {torch.__version__}, native capability "
          f"{torch.backends.cpu.get_cpu_capability()}; {load_line()} at start "
          f"(`uptime`: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()})")
    for isa in args.isa:
        report_isa(isa, args)
    print(f"\ndone; {load_line()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
