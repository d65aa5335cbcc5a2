"""Compare PersonalizedMarketing-v0's memory estimate (abgym.envs.limits) with the real peak while it is built.

    .venv/bin/python scripts/probe_memory_estimate.py

tracemalloc sees numpy's allocations; the peak is taken over make + reset. Needs about 3 GiB free.
"""
import tracemalloc

import gymnasium as gym

import abgym  # noqa: F401
from abgym.envs.limits import format_bytes, marketing_memory_terms
from abgym.envs.personalized_marketing import make_config

gym.make("abgym/PersonalizedMarketing-v0")  # warm the content-feature caches first
for override in [{}, {"n_segments": 3000}, {"population_size": 300000}, {"arrivals_per_day": 100000},
                 {"n_regimes": 150}]:
    tracemalloc.start()
    env = gym.make("abgym/PersonalizedMarketing-v0", config=override)
    env.reset(seed=0)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    estimate = sum(size for size, _ in marketing_memory_terms(make_config(override)).values())
    print(f"{str(override):34} peak {format_bytes(peak):>11}  estimate {format_bytes(estimate):>11}  "
          f"estimate / peak {estimate / peak:.2f}")
    del env
