"""``abgym.evaluate`` fanned out: one (agent, seed) cell per call, run serially or as Ray tasks, then merged.

``abgym demo --backend ray`` uses it. An evaluation's (agent, seed) cells are independent: the evaluator resets
each agent at the first episode of every seed with a seed derived from ``(seed, episode)``, and every env reset
is seeded the same way, so evaluating one agent on one seed gives exactly the rows that the full evaluation gives
for it. The merged table is in the serial order (agents, then seeds), and the summary is recomputed from it with
``abgym.evaluation.summarize``, so it equals the serial one (tests/test_parallel.py); only ``seconds`` differ.

TensorBoard: each cell logs its own run, ``<logdir>/seed-<s>/<agent>`` (the serial evaluator logs all seeds of
an agent in one run, ``<logdir>/<agent>``).
"""
from __future__ import annotations

from pathlib import Path


def evaluate_cell(agent: str, env_id: str, episodes, seed: int, env_kwargs: dict | None, logdir: str | None):
    """One agent on one seed: the ``EvaluationResult`` of ``abgym.evaluate([agent], ..., seeds=[seed])``."""
    from abgym.evaluation import evaluate

    return evaluate([agent], env_id, episodes=episodes, seeds=[seed], env_kwargs=env_kwargs,
                    logdir=None if logdir is None else str(Path(logdir) / f"seed-{seed}"))


def evaluate_parallel(agents: list[str], env_id: str, episodes, seeds, *, env_kwargs: dict | None = None,
                      logdir=None, backend: str = "serial", address: str | None = None, log=None):
    """``abgym.evaluate(agents, env_id, episodes, seeds, ...)`` as (agent, seed) cells on ``backend``."""
    import numpy as np
    import pandas as pd

    from abgym.evaluation import EPISODE_COLUMNS, EvaluationResult, summarize
    from abgym.parallel import map_cells

    if not agents or not list(seeds):
        raise ValueError("need at least one agent and one seed")
    logdir = None if logdir is None else str(Path(logdir).resolve())  # a Ray worker has its own working directory
    cells = [(agent, env_id, episodes, int(seed), env_kwargs, logdir) for agent in agents for seed in seeds]

    def finished(index, result):
        if log is not None:
            agent, seed = cells[index][0], cells[index][3]
            log(f"{agent} seed {seed}: {len(result.episodes)} episodes, regret "
                f"{result.episodes['regret'].mean():.2f} per episode")

    results = map_cells(evaluate_cell, cells, backend, address, finished)
    table = pd.concat([result.episodes for result in results], ignore_index=True)[EPISODE_COLUMNS]
    curves = {}
    for name in dict.fromkeys(table["agent"]):  # agent names as the evaluator wrote them, in order
        curves[name] = np.vstack([result.curves[name] for result in results if name in result.curves])
    return EvaluationResult(table, summarize(table), curves)


__all__ = ["evaluate_cell", "evaluate_parallel"]
