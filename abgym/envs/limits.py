"""Memory bounds on environment settings: refuse, before allocating, a setting that would not fit the machine.

Why: a typo such as ``n_segments=10**6`` otherwise asks numpy for terabytes (an ``n_segments``-square one-hot table)
and dies with a bare ``MemoryError``, or a ``population_size=10**7`` swaps for a minute first. Each env estimates the
memory of its largest arrays from its settings (:func:`marketing_memory_terms`) and :func:`check_memory` compares the
total with the budget: ``$ABGYM_MEMORY_LIMIT_GB`` if set, else half of this machine's physical memory. The error
names the setting behind the largest part, the bytes it would need and the budget.
"""
from __future__ import annotations

import os

# The simulator's fixed shapes (abgym.envs.users): age bands, devices, channels, days of a week.
_AGE_BANDS, _DEVICES, _CHANNELS, _DAYS = 5, 3, 4, 7
_MAX_ATTRIBUTES = 47  # the attribute lexicon's size: an upper bound on the content features beyond the embedding
_TYPICAL_ARMS = 14  # ABTest-v0's default max_arms: the number of variants assumed before an experiment is read


def memory_limit_bytes() -> int:
    configured = os.environ.get("ABGYM_MEMORY_LIMIT_GB")
    if configured:
        try:
            return int(float(configured) * 2**30)
        except ValueError:
            raise ValueError(f"ABGYM_MEMORY_LIMIT_GB must be a number of GiB, got {configured!r}") from None
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):  # not POSIX: assume a small machine
        return 8 * 2**30


def format_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def check_memory(env_name: str, terms: dict[str, tuple[float, str]]) -> None:
    """``terms``: what -> (bytes, the setting(s) to lower). Raise ValueError if their sum exceeds the budget."""
    total = float(sum(size for size, _ in terms.values()))
    limit = memory_limit_bytes()
    if total <= limit:
        return
    what, (size, settings) = max(terms.items(), key=lambda item: item[1][0])
    source = "ABGYM_MEMORY_LIMIT_GB" if os.environ.get("ABGYM_MEMORY_LIMIT_GB") else "half of this machine's memory"
    raise ValueError(
        f"{env_name} settings would need about {format_bytes(total)} of memory, more than the limit of "
        f"{format_bytes(limit)} ({source}); the largest part is {what} ({format_bytes(size)}): lower {settings}, "
        "or set ABGYM_MEMORY_LIMIT_GB if the machine really has the memory")


def marketing_memory_terms(config: dict, n_worlds: int = 1) -> dict[str, tuple[float, str]]:
    """Estimated bytes of PersonalizedMarketing-v0's largest arrays (abgym.envs.users), from a validated config.

    An estimate of the peak while the env is built (float64 temporaries included). Measured against tracemalloc's
    peak on the 2-core development machine (scripts/probe_memory_estimate.py): 0.96-1.85x
    the real peak (defaults 1.30x; n_segments=3,000 1.28x; population_size=300,000 1.85x; arrivals_per_day=100,000
    0.96x; n_regimes=150 1.00x).
    """
    try:
        return _marketing_terms(config, n_worlds)
    except OverflowError:  # a setting beyond what a float holds (10**400): far beyond any machine
        return {"settings beyond a float's range": (float("inf"), "the settings that are whole numbers")}


def _marketing_terms(config: dict, n_worlds: int) -> dict[str, tuple[float, str]]:
    segments, profiles = int(config["n_segments"]), int(config["population_size"])
    regimes, per_day = int(config["n_regimes"]), int(config["arrivals_per_day"])
    embedding, memory_len, slots = int(config["embedding_dim"]), int(config["memory_len"]), int(config["active_users"])
    if config.get("content_source") == "texts" and config.get("texts") is not None:
        variants = len(config["texts"])
    elif config.get("content_source") == "generated":
        variants = int(config["n_variants"])
    else:
        variants = _TYPICAL_ARMS
    features = embedding + _MAX_ATTRIBUTES
    user_dim = segments + _AGE_BANDS + _DEVICES + _CHANNELS + embedding
    week = _DAYS * per_day
    context_dim = 2 + _DAYS + _CHANNELS + regimes
    return {
        "the segment one-hot table (n_segments^2 x 8 bytes)": (8.0 * segments**2, "n_segments"),
        "the user portraits (population_size x (n_segments + embedding_dim + 12), float64 and float32)":
            (12.0 * profiles * user_dim, "population_size or n_segments"),
        "the per-profile click tables (population_size x 9 x variants, float64)":
            (8.0 * profiles * ((2 * _CHANNELS + 1) * variants + features), "population_size"),
        "the context table (7 x arrivals_per_day x 4 channels x n_regimes rows, with its float64 temporaries)":
            (16.0 * week * _CHANNELS * regimes * context_dim, "arrivals_per_day or n_regimes"),
        "the drift state (n_worlds x n_regimes x n_segments x features, float64)":
            (8.0 * n_worlds * (regimes + 3) * segments * (features + variants), "n_segments or n_regimes"),
        "the users' memories and counters (n_worlds x active_users x (memory_len + variants))":
            (8.0 * n_worlds * slots * (memory_len + 2 * variants + 8), "active_users or memory_len"),
    }
