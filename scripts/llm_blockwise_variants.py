"""ONNX Runtime's block-wise weight quantization (``MatMulNBits``) of SmolLM2's decoder, variant by variant (issue 17).

Why: on AVX2-only CPUs the float32 ONNX graph is estimated at ~0.6 s per 10-candidate ranking (docs/llm.md,
instruction counts under valgrind) against the 0.25 s target, and per-tensor dynamic int8 moves the scores by 1-2.6
nats per token (SmolLM2's outlier activation channels). Block-wise quantization gives every block of
``block_size`` weights along the input dimension its own scale, and at ``accuracy_level`` 4 quantizes the
activations per block too, so an outlier channel only coarsens its own block. This script measures, per variant
(``q<bits>-b<block>-<sym|asym>-a<level>``, see :class:`abgym.llm.onnx_decoder.BlockwiseQuantization`), in one run:

- agreement with torch float32 on the bench's 10 rankings (``scripts/bench_llm.py``: 150-token prompts, 10
  candidate titles, prompt-prefix reuse): max |mean logprob diff| and same rankings, with bench_llm's ``agreement``;
- native CPU and wall time per ranking with 1 and 2 ONNX Runtime threads (median; natively this machine runs
  MLAS's AVX-512 kernels: the AVX2 figures are instruction counts, ``scripts/count_llm_avx2.py --variants``);
- optionally (``--generate``) the bench's generation workload: 4 prompts x 32 new tokens, greedy, one batch;
- how far the quantized weights are from the float32 ones (which are the GGUF's Q4_1 weights de-quantized):
  relative RMS error and the share of weights reproduced exactly;
- the roofline: the floating-point work of one bench ranking and the GFLOP/s that 0.25 s needs.

    nice .venv/bin/python scripts/llm_blockwise_variants.py                     # the default variants
    nice .venv/bin/python scripts/llm_blockwise_variants.py --variants q8-b32-sym-a4 q4-b32-asym-a0 --generate
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from abgym.machine import cpu_description, load_line  # noqa: E402
from bench_llm import CANDIDATES, GENERATION_PROMPTS, agreement, build_prompt, timed  # noqa: E402

DEFAULT_VARIANTS = ["q8-b32-sym-a4", "q8-b32-asym-a4", "q8-b128-sym-a4", "q4-b32-asym-a4", "q4-b32-sym-a4",
                    "q8-b32-sym-a0", "q4-b32-asym-a0"]
REFERENCES = ("float32", "onnxruntime")  # torch float32 (the agreement's reference) and the float32 ONNX graph


# ---------------------------------------------------------------------------------------------------- the child
def attach(lm, variant: str) -> None:
    """``lm`` (torch float32) scoring through the float32 ONNX graph or one of its block-wise quantizations."""
    from abgym.llm import model_files

    if variant == "float32":
        return
    folder = model_files.converted_root() / "onnx-float32-kv"
    lm.use_onnxruntime(folder, blockwise=None if variant == "onnxruntime" else variant)


def child(variant: str, repeats: int, generate: bool) -> dict:
    import torch

    from abgym.llm import LanguageModel

    started = time.perf_counter()
    lm = LanguageModel.load(backend="float32", shared=False)
    attach(lm, variant)
    load_s = time.perf_counter() - started
    prompts = [build_prompt(lm, user) for user in range(repeats)]
    lm.score(build_prompt(lm, 99), CANDIDATES)  # warm-up; leaves the template and instructions cached
    walls, cpus, results = timed(lambda prompt: lm.score(prompt, CANDIDATES), prompts)  # bench_llm's
    means = [result.mean_logprob.tolist() for result in results]
    out = {"variant": variant, "threads": lm._onnx.threads if lm._onnx else torch.get_num_threads(),
           "load_s": load_s, "rank_s": statistics.median(walls), "rank_cpu": statistics.median(cpus),
           "mean_logprob": means, "probe_gap": lm.onnx_probe_gap, "reused_tokens": lm.last_prompt_tokens_reused,
           "prompt_tokens": statistics.median(len(lm._encode(lm.format_prompt(p))) for p in prompts),
           "candidate_tokens": sum(len(lm._encode(c)) for c in CANDIDATES)}
    if generate:
        lm.generate(GENERATION_PROMPTS[:1], max_new_tokens=4)  # warm-up
        gen_walls, replies = [], []
        for _ in range(2):
            wall = time.perf_counter()
            replies = lm.generate(GENERATION_PROMPTS, max_new_tokens=32)
            gen_walls.append(time.perf_counter() - wall)
        tokens = sum(len(lm._encode(reply)) for reply in replies)
        out.update(gen_tok_s=tokens / min(gen_walls), gen_reply=replies[0][:70])
    return out


# --------------------------------------------------------------------------------------------------- the parent
def run_child(variant: str, threads: int, args) -> dict | None:
    env = {**os.environ, "ABGYM_TORCH_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "result.json"
        command = [sys.executable, __file__, "--child", variant, "--json", str(target), "--repeats", str(args.repeats)]
        done = subprocess.run(command + (["--generate"] if args.generate else []), env=env, capture_output=True,
                              text=True)
        if done.returncode != 0 or not target.exists():
            print(f"  {variant} ({threads} threads) failed: {done.stderr.strip().splitlines()[-3:]}", flush=True)
            return None
        return json.loads(target.read_text())


def dequantized_weights(graph: Path) -> dict[str, "np.ndarray"]:
    """Every MatMulNBits weight of ``graph`` de-quantized to float32 (K, N), keyed by its float32 source's name."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(graph))
    tensors = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    out = {}
    for node in model.graph.node:
        if node.op_type != "MatMulNBits":
            continue
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        bits, block, k, n = attributes["bits"], attributes["block_size"], attributes["K"], attributes["N"]
        packed = tensors[node.input[1]].reshape(n, -1)
        if bits == 4:
            q = np.stack([packed & 0x0F, packed >> 4], axis=-1).reshape(n, -1)
        else:
            q = packed
        blocks = q.shape[1] // block
        q = q.reshape(n, blocks, block).astype(np.float32)
        scales = tensors[node.input[2]].reshape(n, blocks, 1).astype(np.float32)
        if len(node.input) > 3 and node.input[3]:
            zero = tensors[node.input[3]].reshape(n, -1)
            if bits == 4:
                zero = np.stack([zero & 0x0F, zero >> 4], axis=-1).reshape(n, -1)
            zero = zero[:, :blocks].reshape(n, blocks, 1).astype(np.float32)
        else:
            zero = np.float32(2 ** (bits - 1))
        out[node.input[1].rsplit("_Q", 1)[0]] = ((q - zero) * scales).reshape(n, -1)[:, :k].T
    return out


def weight_error(variant: str) -> dict:
    """Relative RMS error of ``variant``'s weights against the float32 graph's, and the share reproduced exactly
    (to 1e-6 relative: the float32 weights are themselves Q4_1 values, so a 4-bit block-32 quantization that found
    the same grid would reproduce them)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from abgym.llm import model_files

    root = model_files.converted_root()
    source = onnx.load(str(root / "onnx-float32-kv" / "decoder.onnx"))
    floats = {t.name: numpy_helper.to_array(t) for t in source.graph.initializer}
    quantized = dequantized_weights(root / f"onnx-float32-kv-{variant}" / "decoder.onnx")
    squared = total = exact = count = 0.0
    for name, weights in quantized.items():
        reference = floats[name]
        squared += float(np.sum((weights - reference) ** 2))
        total += float(np.sum(reference ** 2))
        exact += float(np.sum(np.abs(weights - reference) <= 1e-6 * np.abs(reference).max()))
        count += reference.size
    return {"matrices": len(quantized), "rel_rms": (squared / total) ** 0.5, "exact": exact / count}


def roofline(prompt_tokens: int, reused: int, candidate_tokens: int, candidates: int, lm_config: dict) -> dict:
    """Floating-point operations (2 per multiply-add) of one packed ranking as it runs: the decoder's matrix
    products on the tokens actually computed (the fresh prompt tokens and every candidate token but its last),
    attention as executed (dense: every computed token against every key of the pass, the mask only zeroes
    weights), and the vocabulary projection on the rows that predict a needed token. ``reused=0``: no prefix reuse."""
    hidden, mlp, layers = lm_config["hidden_size"], lm_config["intermediate_size"], lm_config["num_hidden_layers"]
    heads, kv_heads, vocab = lm_config["num_attention_heads"], lm_config["num_key_value_heads"], lm_config["vocab_size"]
    head_dim = hidden // heads
    per_token = 2 * (2 * hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim + 3 * hidden * mlp)
    tokens = prompt_tokens - reused + candidate_tokens - candidates
    linear = layers * per_token * tokens
    attention = layers * 2 * 2 * heads * head_dim * tokens * (reused + tokens)  # Q K^T and weights x V
    head_rows = 1 + candidate_tokens - candidates
    vocabulary = 2 * hidden * vocab * head_rows
    return {"tokens": tokens, "head_rows": head_rows, "linear": linear, "attention": attention,
            "vocabulary": vocabulary, "total": linear + attention + vocabulary}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS)
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--repeats", type=int, default=10, help="timed rankings per variant and thread count")
    parser.add_argument("--generate", action="store_true", help="also time the bench's generation workload")
    parser.add_argument("--out", help="write every child's results here (JSON)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        Path(args.json).write_text(json.dumps(child(args.child, args.repeats, args.generate)))
        return 0
    from abgym.llm.onnx_decoder import BlockwiseQuantization

    for variant in args.variants:
        BlockwiseQuantization.parse(variant)  # a bad name fails before any child runs
    print(f"CPU: {cpu_description()}; {load_line()} at start", flush=True)
    results: dict[str, dict[int, dict]] = {}
    for variant in [*REFERENCES, *args.variants]:
        for threads in args.threads:
            result = run_child(variant, threads, args)
            if result is not None:
                results.setdefault(variant, {})[threads] = result
                print(f"  {variant:<16} {threads} thread(s): {result['rank_s']:.3f} s wall, {result['rank_cpu']:.3f} "
                      f"CPU-s per ranking ({load_line()})", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results))
    if "float32" not in results:
        print("no torch float32 result: no agreement")
        return 1
    reference = next(iter(results["float32"].values()))["mean_logprob"]
    print(f"\nPer variant (bench ranking: {next(iter(results['float32'].values()))['prompt_tokens']:.0f}-token prompts, "
          f"10 candidates; median of {args.repeats}; native kernels, i.e. AVX-512 here):")
    print(f"  {'variant':<16} {'max|dmean|':>10} {'same':>5} {'probe gap':>9} {'wRMS':>7} {'exact':>6} "
          + " ".join(f"{f'{t}T wall':>8} {f'{t}T CPU':>8}" for t in args.threads)
          + ("  gen tok/s" if args.generate else ""))
    for variant, per_thread in results.items():
        first = next(iter(per_thread.values()))
        gap, same, count = agreement(first, reference)
        errors = weight_error(variant) if variant not in REFERENCES else {"rel_rms": 0.0, "exact": 1.0}
        probe = f"{first['probe_gap']:.2e}" if first["probe_gap"] is not None else "-"
        timing = " ".join(f"{per_thread[t]['rank_s']:>7.3f}s {per_thread[t]['rank_cpu']:>8.3f}" if t in per_thread
                          else f"{'-':>8} {'-':>8}" for t in args.threads)
        generation = " ".join(f"{per_thread[t].get('gen_tok_s', 0):.1f}" for t in args.threads if t in per_thread)
        print(f"  {variant:<16} {gap:>10.2e} {same:>2}/{count:<2} {probe:>9} {errors['rel_rms']:>7.4f} "
              f"{errors['exact']:>6.1%} {timing}  {generation if args.generate else ''}")
        if args.generate:
            print(f"    reply: {first.get('gen_reply', '')!r}")
    from abgym.llm import model_files

    config = json.loads((model_files.weights_dir("float32") / "config.json").read_text())
    first = next(iter(results["float32"].values()))
    for reused in (first["reused_tokens"], 0):
        work = roofline(int(first["prompt_tokens"]), reused, first["candidate_tokens"], len(CANDIDATES), config)
        print(f"\nRoofline of one bench ranking, {reused} prompt tokens reused: {work['tokens']} tokens through the "
              f"decoder, {work['head_rows']} rows through the vocabulary projection: linear layers "
              f"{work['linear'] / 1e9:.2f} GFLOP, attention {work['attention'] / 1e9:.2f}, vocabulary "
              f"{work['vocabulary'] / 1e9:.2f}, total {work['total'] / 1e9:.2f} GFLOP; in 0.25 s that is "
              f"{work['total'] / 0.25e9:.0f} GFLOP/s, {work['total'] / 0.5e9:.0f} per core on 2 cores")
    print(f"\ndone; {load_line()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
