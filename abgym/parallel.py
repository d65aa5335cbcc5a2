"""Run a study's independent cells one after another (``serial``) or as Ray tasks (``ray``), same results.

A study (the marketing comparison, the journey comparison) is a grid of cells, one per (agent, seed, drift); each
cell builds its own env and agent from its arguments and seeds every draw from them, so a cell's result does not
depend on where or in which order it runs. :func:`map_cells` is the one place that knows how cells are run:

    from abgym.parallel import map_cells
    results = map_cells(run_cell, [(config, cell) for cell in cells], backend="ray")   # a local Ray instance
    results = map_cells(run_cell, ..., backend="ray", address="auto")                  # an existing cluster

Results come back in the order of the cells, whatever order they finished in; ``on_result(index, result)`` is
called as each one finishes (to log it and to save partial results). Ray is an optional extra
(``pip install 'abgym[ray]'``); the serial backend needs nothing. See docs/scaling.md.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

BACKENDS = ("serial", "ray")
RAY_INSTALL = "pip install 'abgym[ray]'  (or: make setup, which installs .[all,dev,ray])"


def add_backend_arguments(parser) -> None:
    """``--backend`` and ``--address``, the same on every command that fans out."""
    parser.add_argument("--backend", choices=BACKENDS, default="serial",
                        help="serial: one cell after another in this process (default); ray: each (agent, seed, "
                             "setting) cell is a Ray task (see docs/scaling.md)")
    parser.add_argument("--address", default=None,
                        help="with --backend ray: the address of an existing Ray cluster ('auto', or HOST:PORT of "
                             "its head); default: start a local Ray instance on this machine's cores")


def check_backend(backend: str, address: str | None) -> None:
    """One clear ValueError for a bad backend choice, before any cell runs."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if address is not None and backend != "ray":
        raise ValueError("--address is for --backend ray (the address of a Ray cluster); add --backend ray")
    if backend == "ray":
        try:
            import ray  # noqa: F401
        except ImportError as error:
            raise ValueError(f"--backend ray needs Ray, which is not installed ({error}); install it: "
                             f"{RAY_INSTALL}") from None


def map_cells(function: Callable[..., Any], arguments: Sequence[tuple], backend: str = "serial",
              address: str | None = None, on_result: Callable[[int, Any], None] | None = None,
              num_cpus_per_cell: float = 1.0) -> list:
    """``[function(*args) for args in arguments]``, serially or as one Ray task per cell; results in cell order.

    ``function`` must be importable by name (a module-level function) so that Ray workers can load it.
    """
    check_backend(backend, address)
    if backend == "serial":
        results = []
        for index, args in enumerate(arguments):
            results.append(function(*args))
            if on_result is not None:
                on_result(index, results[-1])
        return results
    return _map_ray(function, arguments, address, on_result, num_cpus_per_cell)


def _map_ray(function, arguments, address, on_result, num_cpus_per_cell) -> list:
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        init_ray(address)
    try:
        task = ray.remote(num_cpus=num_cpus_per_cell, max_retries=0)(function)
        pending = {task.remote(*args): index for index, args in enumerate(arguments)}
        results: list = [None] * len(arguments)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            index = pending.pop(done[0])
            results[index] = ray.get(done[0])  # a cell's exception is raised here, with its traceback
            if on_result is not None:
                on_result(index, results[index])
        return results
    finally:
        if started_here:
            ray.shutdown()


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Start a local Ray instance (no dashboard), or connect to the cluster at ``address``.

    Connecting to a cluster ships this checkout's ``abgym`` package to the workers (``runtime_env`` ``py_modules``),
    so that they run the driver's code; the workers' Python needs abgym's dependencies installed
    (``pip install 'abgym[ray]'``). ``ABGYM_CACHE_DIR`` is passed on when set, so a cache on a shared filesystem
    is used by every node.
    """
    import ray

    import abgym

    if address is None:
        # address="local": always a new instance; plain ray.init() would join a cluster that `ray start` left on this
        # machine (RAY_ADDRESS, /tmp/ray/ray_current_cluster), even a stopped one.
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        return
    env_vars = {key: os.environ[key] for key in ("ABGYM_CACHE_DIR", "ABGYM_MOVIELENS_DIR", "ABGYM_TORCH_THREADS")
                if key in os.environ}
    runtime_env = {"py_modules": [str(Path(abgym.__file__).parent)], "env_vars": env_vars,
                   "excludes": ["__pycache__", "*.pyc"]}
    try:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    except ConnectionError as error:
        raise ValueError(f"cannot reach a Ray cluster at --address {address} ({error}); start one with "
                         "`ray start --head`; a cluster with token authentication (ray start's default) needs "
                         "RAY_AUTH_MODE=token here and its token (`ray get-auth-token` on the head) in "
                         "~/.ray/auth_token or $RAY_AUTH_TOKEN; or drop --address to run on a local instance") from None


__all__ = ["BACKENDS", "add_backend_arguments", "check_backend", "init_ray", "map_cells"]
