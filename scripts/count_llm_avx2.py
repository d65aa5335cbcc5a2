"""Instruction counts of one SmolLM2 ranking per backend on AVX2 kernels, under valgrind (callgrind).

Why: the project must rank fast on AVX2-only CPUs (issue 17), and the development machine has AVX-512. Torch can
be limited to AVX2 by environment variables (``scripts/bench_llm.py --isa avx2``), ONNX Runtime cannot: its MLAS
kernels dispatch on CPUID. Valgrind emulates a CPU whose CPUID reports AVX2 and no AVX-512 (it cannot run AVX-512
code), so under valgrind both torch (oneDNN, MKL) and ONNX Runtime (MLAS) choose their AVX2 kernels for real.
Valgrind is thousands of times slower than the CPU, so its wall times say nothing; callgrind's instruction counts
(``Ir``, guest instructions executed) are exact and repeatable whatever the machine's load. Their ratio between
backends, times a wall time measured on a real AVX2 machine for one of them, estimates the other's.

Each backend runs in its own ``valgrind --tool=callgrind --instr-atstart=no`` child, on one thread (valgrind
runs threads one at a time anyway, and waiting threads would add instructions). The child loads the model
uninstrumented, warms up with a short ranking that shares the prompt's template and instructions (so the counted
rankings reuse the 43-token prefix as the benchmark's timed rankings do), then switches callgrind's
instrumentation on (``callgrind_control -i on``) and counts each ``lm.score(prompt, candidates)`` of
``--rankings`` alone (counters zeroed before it, dumped after it). The parent reads the totals, the top functions
by instructions (they show the kernels chosen: MKL names its ``mkl_blas_avx2_*``; ONNX Runtime's library is
stripped, so its kernels show as addresses, to disassemble), the CPUID and capability each child saw, and the
scores' agreement with float32.

    nice python scripts/count_llm_avx2.py                          # onnxruntime and float32, the bench's ranking
    nice python scripts/count_llm_avx2.py --rankings 60:2 100:5    # smaller rankings (PROMPT_TOKENS:CANDIDATES)
    nice python scripts/count_llm_avx2.py --rankings 60:2 100:5 150:10 --native 10   # the same, timed natively
    nice python scripts/count_llm_avx2.py --variants q8-b32-asym-a4 --rankings 100:5  # + a MatMulNBits graph
    nice python scripts/count_llm_avx2.py --report DIR --variants q8-b32-asym-a4   # runs sharing one --out-dir

Under valgrind a ranking runs 1,500-3,000x slower than natively (measured: a 60:2 ranking 4 min against 0.09-0.15
CPU-s; a 100:5 one 10 min), so the bench's 150:10 ranking would take ~20 min per backend; the onnxruntime child
also spends ~9 min loading (session and check), the float32 one ~12 s. ``--native N`` times the same rankings
without valgrind instead (torch limited to AVX2 as in the bench; ONNX Runtime on its AVX-512 kernels), to see how
the ratio moves with the ranking's size. Figures and caveats: docs/llm.md.

Needs valgrind (``apt-get install valgrind``) and a Python executable that is a binary, not a shell shim (valgrind
does not follow an ``exec``): run it with the virtual environment's python.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from abgym.machine import cpu_description, load_line  # noqa: E402
from abgym.paths import atomic_write  # noqa: E402
from bench_llm import CANDIDATES, ISA_LIMITS, agreement, build_prompt  # noqa: E402

# The figure: torch float32, the old default, per 10-candidate ranking on a real AVX2-only 2-core EPYC.
AVX2_EPYC_FLOAT32_S = 0.627
BACKENDS = ("onnxruntime", "float32", "onnxruntime-int8", "int8")


# ---------------------------------------------------------------------------------------------------- the child
def load_backend(backend: str):
    """A backend of ``LanguageModel.load``, or a block-wise quantization of the ONNX graph (``--variants``, e.g.
    ``q8-b32-sym-a4``: torch float32 scoring through ``onnx-float32-kv-<variant>``, see
    ``scripts/llm_blockwise_variants.py``)."""
    from abgym.llm import LanguageModel, model_files

    if backend in BACKENDS:
        return LanguageModel.load(backend=backend, shared=False)
    lm = LanguageModel.load(backend="float32", shared=False)
    lm.use_onnxruntime(model_files.converted_root() / "onnx-float32-kv", blockwise=backend)
    return lm


def prepare_variant(variant: str) -> None:
    """Quantize the graph natively before valgrind runs it (under valgrind the quantizer alone takes minutes)."""
    from abgym.llm import model_files
    from abgym.llm.onnx_decoder import GRAPH_NAME, BlockwiseQuantization, blockwise_graph

    try:
        quantization = BlockwiseQuantization.parse(variant)  # checks the name before the export's check below
    except ValueError as error:
        raise SystemExit(f"--variants: {error}") from None
    folder = model_files.converted_root() / "onnx-float32-kv"
    if not (folder / GRAPH_NAME).exists():
        raise SystemExit(f"{folder / GRAPH_NAME} is missing: run the onnxruntime backend once natively to export it")
    blockwise_graph(folder, quantization)


def callgrind_control(*arguments: str) -> str:
    """Send a command to the callgrind that runs this process, and keep executing while it arrives.

    callgrind_control talks to valgrind's gdbserver, which valgrind polls every few thousand basic blocks of the
    client: a thread blocked in ``wait`` would execute none, so poll instead (a few million instructions, which
    the totals include: under 0.01% of a ranking).
    """
    process = subprocess.Popen(["callgrind_control", *arguments, str(os.getpid())], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    while process.poll() is None:
        pass
    output = process.stdout.read()
    if process.returncode != 0 or "OK" not in output:
        raise RuntimeError(f"callgrind_control {' '.join(arguments)} failed: {output.strip()}")
    return output


def visible_simd() -> str:
    """The AVX instruction sets this process's CPUID reports, as numpy's dispatcher reads them (under valgrind:
    AVX2 and FMA3, no AVX-512, whatever the host has)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # numpy < 2
        from numpy.core._multiarray_umath import __cpu_features__
    return " ".join(name for name, found in __cpu_features__.items() if found and name.startswith(("AVX", "FMA")))


def child(backend: str, sizes: list[tuple[int, int]], json_path: str, native_repeats: int = 0) -> None:
    """Load uninstrumented, warm up, then count each ranking of ``sizes`` (prompt tokens, candidates) on its own:
    counters zeroed before it, dumped after it (one callgrind file per ranking); the results are written after
    each ranking, so a run stopped early keeps the rankings done. With ``native_repeats`` (no valgrind), time that
    many rankings of each size instead (CPU seconds, median)."""
    import statistics

    import torch

    from abgym.llm.language_model import native_bfloat16

    started = time.perf_counter()
    lm = load_backend(backend)
    out = {"backend": backend, "capability": torch.backends.cpu.get_cpu_capability(),
           "native_bf16": native_bfloat16(), "threads": torch.get_num_threads() if lm._onnx is None else lm._onnx.threads,
           "load_s": time.perf_counter() - started, "torch": torch.__version__, "cpu_features": visible_simd(),
           "rankings": []}
    if lm._onnx is not None:
        import onnxruntime

        out["onnxruntime"] = onnxruntime.__version__
    # Another user's history per ranking: consecutive prompts share only the template and the instructions (43
    # tokens), which prompt-prefix reuse takes from the previous prompt's cache, as in the bench's timed rankings.
    prompts = [build_prompt(lm, user, tokens) for user, (tokens, _) in enumerate(sizes)]
    lm.score(build_prompt(lm, 99, 60), CANDIDATES[:1])  # warm-up; leaves the template + instructions cached
    if native_repeats:
        for tokens, candidates in sizes:
            cpus = []
            for user in range(native_repeats):
                prompt = build_prompt(lm, user, tokens)
                started = time.process_time()
                result = lm.score(prompt, CANDIDATES[:candidates])
                cpus.append(time.process_time() - started)
            out["rankings"].append({"size": f"{tokens}:{candidates}", "cpu_s": statistics.median(cpus),
                                    "reused_tokens": lm.last_prompt_tokens_reused})
        with atomic_write(json_path, "w") as handle:
            json.dump(out, handle)
        return
    callgrind_control("-i", "on")
    for prompt, (tokens, candidates) in zip(prompts, sizes):
        chosen = CANDIDATES[:candidates]
        callgrind_control("--zero")
        started = time.perf_counter()
        result = lm.score(prompt, chosen)
        rank_s = time.perf_counter() - started
        callgrind_control(f"--dump=ranking {tokens}:{candidates}")
        out["rankings"].append({
            "size": f"{tokens}:{candidates}", "valgrind_rank_s": rank_s, "reused_tokens": lm.last_prompt_tokens_reused,
            "prompt_tokens": len(lm._encode(lm.format_prompt(prompt))),
            "candidate_tokens": sum(len(lm._encode(c)) for c in chosen), "mean_logprob": result.mean_logprob.tolist()})
        with atomic_write(json_path, "w") as handle:
            json.dump(out, handle)


# --------------------------------------------------------------------------------------------------- the parent
def check_tools() -> str:
    """valgrind's version; a clear error when valgrind is missing or this Python cannot be run under it."""
    for tool in ("valgrind", "callgrind_control", "callgrind_annotate"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: install valgrind (Debian/Ubuntu: apt-get install valgrind)")
    with open(os.path.realpath(sys.executable), "rb") as handle:
        if handle.read(4) != b"\x7fELF":
            raise SystemExit(f"{sys.executable} is not a binary (a shim script?): valgrind would not follow its "
                             "exec; run this script with the virtual environment's python, e.g. .venv/bin/python")
    return subprocess.run(["valgrind", "--version"], capture_output=True, text=True).stdout.strip()


def dumped_rankings(out_file: Path) -> dict[str, tuple[int, Path]]:
    """Instructions per ranking from callgrind's dump files (``<out_file>.<n>``, one per ``--dump`` request)."""
    counts = {}
    for part in sorted(out_file.parent.glob(out_file.name + ".*")):
        text = part.read_text(errors="replace")
        label = re.search(r"^desc: Trigger: .*?(ranking \d+:\d+)", text, re.M)
        total = re.search(r"^(?:totals|summary):\s*(\d+)", text, re.M)
        if label and total:
            counts[label.group(1).split()[-1]] = (int(total.group(1)), part)
    return counts


def top_functions(callgrind_file: Path, count: int) -> list[tuple[int, str]]:
    """The ``count`` functions with the most instructions of their own (callgrind_annotate), as (Ir, name)."""
    text = subprocess.run(["callgrind_annotate", "--inclusive=no", str(callgrind_file)], capture_output=True,
                          text=True).stdout
    rows = []
    for line in text.splitlines():
        match = re.match(r"^\s*([\d,]+)\s+\([^)]*\)\s+(.+)$", line)
        if match and "PROGRAM TOTALS" not in line:
            where, _, library = match.group(2).strip().partition(" [")
            library = Path(library.rstrip("]")).name
            rows.append((int(match.group(1).replace(",", "")), where.rsplit(":", 1)[-1] + (f" [{library}]" if library else "")))
    return rows[:count]


def read_backend(backend: str, folder: Path, top: int) -> dict:
    """A child's results (its JSON) with each ranking's instructions and top functions (its callgrind dump)."""
    result = json.loads((folder / f"{backend}.json").read_text())
    counts = dumped_rankings(folder / f"callgrind.{backend}.out")
    for ranking in result["rankings"]:
        ranking["instructions"], part = counts[ranking["size"]]
        ranking["top"] = top_functions(part, top)
    return result


def run_backend(backend: str, sizes: list[tuple[int, int]], args, folder: Path) -> dict | None:
    out_file, json_file = folder / f"callgrind.{backend}.out", folder / f"{backend}.json"
    env = {**os.environ, "ABGYM_TORCH_THREADS": str(args.threads), "OMP_NUM_THREADS": str(args.threads)}
    command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out_file}",
               sys.executable, __file__, "--child", backend, "--json", str(json_file),
               "--rankings", *(f"{tokens}:{candidates}" for tokens, candidates in sizes)]
    print(f"  {backend}: {' '.join(command[:4])} ... ({load_line()})", flush=True)
    started = time.perf_counter()
    with open(folder / f"{backend}.log", "w") as log:
        done = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode != 0 or not json_file.exists():
        tail = [line for line in (folder / f"{backend}.log").read_text().splitlines() if line.strip()][-5:]
        print(f"  {backend} under valgrind failed (exit {done.returncode}); log {folder / (backend + '.log')}:\n    "
              + "\n    ".join(tail))
        if not json_file.exists():
            return None
    result = read_backend(backend, folder, args.top)
    print(f"    {(time.perf_counter() - started) / 60:.1f} min (load {result['load_s'] / 60:.1f} min): capability "
          f"{result['capability']}, native bf16 {result['native_bf16']}, threads {result['threads']}; "
          + "; ".join(f"ranking {r['size']}: {r['instructions']:,} instructions ({r['valgrind_rank_s'] / 60:.1f} min)"
                      for r in result["rankings"]), flush=True)
    return result


def run_native(backend: str, sizes: list[tuple[int, int]], args, folder: Path) -> dict | None:
    """The same rankings without valgrind, timed: torch limited to AVX2 as in ``bench_llm.py --isa avx2``;
    ONNX Runtime cannot be limited, so its figures here are its AVX-512 kernels'."""
    json_file = folder / f"{backend}.native.json"
    env = {**os.environ, **ISA_LIMITS["avx2"], "ABGYM_TORCH_THREADS": str(args.threads),
           "OMP_NUM_THREADS": str(args.threads)}
    command = [sys.executable, __file__, "--child", backend, "--json", str(json_file), "--native", str(args.native),
               "--rankings", *(f"{tokens}:{candidates}" for tokens, candidates in sizes)]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0 or not json_file.exists():
        print(f"  {backend} (native) failed: {done.stderr.strip().splitlines()[-1:]}")
        return None
    return json.loads(json_file.read_text())


def report_native(results: dict, args) -> None:
    reference = {r["size"]: r for r in results["float32"]["rankings"]}
    print(f"\nNative, no valgrind ({args.native} rankings per size, {args.threads} thread; torch limited to AVX2 "
          f"by {' '.join(ISA_LIMITS['avx2'])}; ONNX Runtime unlimited, i.e. AVX-512 here): median CPU-s per ranking")
    print(f"  {'ranking':<8} {'backend':<17} {'capability':<10} {'CPU-s':>8} {'/ float32':>9}")
    for backend, result in results.items():
        for r in result["rankings"]:
            print(f"  {r['size']:<8} {backend:<17} {result['capability']:<10} {r['cpu_s']:>8.3f} "
                  f"{r['cpu_s'] / reference[r['size']]['cpu_s']:>9.3f}")
    for backend, result in results.items():
        print(f"  {backend}: CPUID as the process saw it (numpy): {result['cpu_features']}")


def parse_size(text: str) -> tuple[int, int]:
    try:
        tokens, candidates = (int(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"a ranking is PROMPT_TOKENS:CANDIDATES, e.g. 150:10; got {text!r}") from None
    if tokens < 60 or not 1 <= candidates <= len(CANDIDATES):
        raise argparse.ArgumentTypeError(f"prompt tokens must be >= 60 (the warm-up's length) and candidates 1-"
                                         f"{len(CANDIDATES)}; got {text!r}")
    return tokens, candidates


def report(results: dict, args) -> None:
    base = results["float32"]
    reference = {r["size"]: r for r in base["rankings"]}
    print(f"\nRankings under valgrind (AVX2 kernels, {args.threads} thread; prompt tokens include the chat template, "
          f"of which the warm-up's {base['rankings'][0]['reused_tokens']} are reused from the cache):")
    onnx = {r["size"]: r for r in results["onnxruntime"]["rankings"]} if "onnxruntime" in results else {}
    print(f"  {'ranking':<8} {'backend':<17} {'capability':<10} {'tokens':>12} {'instructions':>16} {'/ float32':>9} "
          f"{'/ onnx f32':>10} {'max|dmean|':>10} {'same rank':>9} {'AVX2-EPYC est.':>14}")
    for backend, result in results.items():
        for r in result["rankings"]:
            if r["size"] not in reference:
                continue
            f32 = reference[r["size"]]
            ratio = r["instructions"] / f32["instructions"]
            gap, same, _ = agreement({"mean_logprob": [r["mean_logprob"]]}, [f32["mean_logprob"]])  # bench_llm's
            same = bool(same)
            estimate = f"{AVX2_EPYC_FLOAT32_S * ratio:.3f} s"
            to_onnx = f"{r['instructions'] / onnx[r['size']]['instructions']:.3f}" if r["size"] in onnx else "-"
            print(f"  {r['size']:<8} {backend:<17} {result['capability']:<10} {r['prompt_tokens']:>5}+{r['candidate_tokens']:<6} "
                  f"{r['instructions']:>16,} {ratio:>9.3f} {to_onnx:>10} {gap:>10.2e} {str(same):>9} {estimate:>14}")
    print(f"  (estimate: {AVX2_EPYC_FLOAT32_S} s, torch float32 per 150:10 ranking measured on a real AVX2-only EPYC "
          "in issue 17, x this ranking's instruction ratio; for a smaller ranking, that assumes the ratio holds at "
          "150:10. Instructions are not cycles, and that figure's threads and torch build may differ.)")
    for backend, result in results.items():
        print(f"  {backend}: CPUID as the process saw it (numpy): {result.get('cpu_features', 'not recorded')}; "
              f"torch capability {result['capability']}, oneDNN native bf16 {result['native_bf16']}")
    for backend, result in results.items():
        for r in result["rankings"]:
            print(f"  {backend} {r['size']}: top functions by own instructions:")
            for instructions, name in r["top"]:
                print(f"    {instructions / r['instructions']:6.1%}  {name[:110]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", nargs="*", default=["onnxruntime", "float32"], choices=BACKENDS,
                        help="backends to count (none: only --variants)")
    parser.add_argument("--variants", nargs="+", default=[], metavar="VARIANT",
                        help="also ONNX Runtime block-wise quantizations of the graph, e.g. q8-b32-sym-a4 "
                             "(bits, block size, sym/asym, accuracy level: scripts/llm_blockwise_variants.py)")
    parser.add_argument("--no-float32", dest="float32", action="store_false",
                        help="do not run torch float32 in this run (another run with the same --out-dir does; "
                             "--report then reads both)")
    parser.add_argument("--rankings", nargs="+", type=parse_size, default=[(150, 10)],
                        help="rankings to count, each PROMPT_TOKENS:CANDIDATES (the bench's: 150:10)")
    parser.add_argument("--threads", type=int, default=1, help="threads per backend (1: see the docstring)")
    parser.add_argument("--top", type=int, default=6, help="functions to list per ranking")
    parser.add_argument("--native", type=int, default=0, metavar="REPEATS",
                        help="instead of valgrind, time REPEATS rankings of each size natively (CPU-s per ranking)")
    parser.add_argument("--report", metavar="DIR", help="print the report of a finished run kept in DIR (--out-dir)")
    parser.add_argument("--out-dir", help="keep the callgrind files here (default: a new temporary folder)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.rankings, args.json, args.native)
        return 0
    if "float32" not in args.backends and (args.float32 or args.report):
        args.backends = [*args.backends, "float32"]  # the reference for the ratio and the agreement
    if not args.report:
        for variant in args.variants:
            prepare_variant(variant)  # also checks the name
    args.backends = [*args.variants, *args.backends]
    if args.report:
        folder = Path(args.report)
        results = {backend: read_backend(backend, folder, args.top) for backend in args.backends
                   if (folder / f"{backend}.json").exists()}
        if "float32" not in results:
            raise SystemExit(f"no float32.json in {folder}: give the --out-dir of a finished run")
        report(results, args)
        return 0
    version = check_tools() if not args.native else "no valgrind (--native)"
    folder = Path(args.out_dir or tempfile.mkdtemp(prefix="count_llm_avx2-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"CPU: {cpu_description()}\n{version}; {load_line()} at start; files in {folder}", flush=True)
    results = {}
    if args.native:
        for backend in args.backends:
            result = run_native(backend, args.rankings, args, folder)
            if result is not None:
                results[backend] = result
        if "float32" in results:
            report_native(results, args)
        print(f"\ndone; {load_line()}")
        return 0 if "float32" in results else 1
    for backend in args.backends:
        result = run_backend(backend, args.rankings, args, folder)
        if result is not None and result["rankings"]:
            results[backend] = result
    if "float32" not in results:
        print("no float32 rankings counted here: no ratios (give this --out-dir to --report once float32 is there)")
        return 0 if results else 1
    report(results, args)
    print(f"\ndone; {load_line()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
