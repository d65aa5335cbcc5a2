"""Real models, offline: a cached sentence embedder and a local language model (SmolLM2).

Importing this package is cheap: torch, transformers and sentence-transformers are imported only when a model is
first needed.
"""
from __future__ import annotations

from abgym.llm._runtime import ModelPackageMissingError
from abgym.llm.embedder import Embedder

__all__ = ["Embedder", "LanguageModel", "ScoreResult", "ModelPackageMissingError"]


def __getattr__(name: str):
    # The language-model module pulls nothing heavy at import either, but keep it out of `import abgym.llm`.
    if name in ("LanguageModel", "ScoreResult"):
        from abgym.llm import language_model

        return getattr(language_model, name)
    raise AttributeError(f"module 'abgym.llm' has no attribute {name!r}")
