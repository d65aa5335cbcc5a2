"""What machine a benchmark ran on: the CPU model, the instruction sets that matter for speed, the load.

Benchmarks print this beside their figures (issue 17): absolute speeds differ between the machines the project
runs on (AVX2-only EPYCs, Zen 4 with AVX-512 BF16, ...), and a shared machine's load changes wall times by 2-5x.
"""
from __future__ import annotations

import os
from pathlib import Path

# Instruction sets the numeric libraries (oneDNN, MKL, FBGEMM, ONNX Runtime's MLAS) dispatch on.
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cpu_description() -> str:
    """E.g. "AMD EPYC 9R14, 2 cores usable; has avx2 fma avx512f ...; lacks amx_bf16 amx_int8" (Linux; elsewhere
    the flags are unknown)."""
    model, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        return f"{model}, {usable_cores()} cores usable; instruction sets unknown (no /proc/cpuinfo)"
    have = [flag for flag in SPEED_FLAGS if flag in flags]
    lacks = [flag for flag in SPEED_FLAGS if flag not in flags]
    return f"{model}, {usable_cores()} cores usable; has {' '.join(have) or '-'}; lacks {' '.join(lacks) or '-'}"


def load_line() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "load average unknown"
    return f"load average {one:.1f}, {five:.1f}, {fifteen:.1f} on {usable_cores()} cores"
