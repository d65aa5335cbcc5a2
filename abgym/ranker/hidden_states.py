"""Headline vectors from the hidden states of the project's own language model (SmolLM2-135M-Instruct).

A causal LM's intermediate layers carry more about style and wording than a sentence embedder trained for
semantic similarity, which is what a click-through ranker needs. One forward pass gives every layer; the vectors of
a few layers (``CACHED_LAYERS``) under two poolings (mean over the headline's tokens, or the last token's state)
are stored at once, each (layer, pooling) in its own SQLite cache like the sentence embedder's
(:class:`abgym.llm.embedding_cache.EmbeddingCache`: one transaction per batch, so an interrupted pass keeps what
it finished and never leaves half a batch). Which layer and pooling the ranker uses is chosen by cross-validation
inside the training archive (experiments/ranker_representations.py).

The text is the bare headline (no chat template): the model reads it as it would read any text.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from abgym.llm.embedding_cache import EmbeddingCache, text_key
from abgym.paths import cache_dir

CACHED_LAYERS = (6, 12, 15, 18, 21, 24, 30)
POOLINGS = ("mean", "last")
_BATCH = 32


class HiddenStateEmbedder:
    """``encode(texts) -> (n, 576)`` float32: layer ``layer``'s hidden states pooled by ``pooling``, L2-normalised.

    ``language_model``: a :class:`abgym.llm.LanguageModel` (default: ``LanguageModel.load()``, bfloat16 where the
    CPU has it). Layer 0 is the token embeddings, layer 30 the last block's output (before the final norm).
    """

    def __init__(self, layer: int = 18, pooling: str = "mean", language_model=None, cache: bool = True,
                 cached_layers: Sequence[int] = CACHED_LAYERS):
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose from {POOLINGS}")
        self.cached_layers = tuple(cached_layers)
        if layer not in self.cached_layers:
            raise ValueError(f"layer {layer} is not computed; choose from {self.cached_layers}")
        self.layer, self.pooling, self.use_cache = layer, pooling, cache
        self._lm = language_model
        # The cache folder names the model's dtype: vectors of bfloat16 and float32 runs differ slightly.
        self._folder = ("SmolLM2-135M-Instruct-default" if language_model is None
                        else "hidden-states-" + re.sub(r"[^A-Za-z0-9_.=-]+", "-", language_model.name).strip("-"))
        self.dim = int(language_model.model.config.hidden_size) if language_model is not None else 576
        self.model_id = f"SmolLM2-135M-Instruct/hidden-L{layer}-{pooling}"

    @property
    def lm(self):
        if self._lm is None:
            from abgym.llm import LanguageModel
            self._lm = LanguageModel.load()
        return self._lm

    def _caches(self) -> dict[tuple[int, str], EmbeddingCache]:
        """One cache per (layer, pooling), opened once per embedder (each keeps its SQLite connection)."""
        root = str(cache_dir("embeddings"))
        if getattr(self, "_cache_root", None) != root:  # ABGYM_CACHE_DIR may change between calls (tests)
            self._cache_root, self._cache_objects = root, self._open_caches()
        return self._cache_objects

    def _open_caches(self) -> dict[tuple[int, str], EmbeddingCache]:
        return {(layer, pooling): EmbeddingCache(
                    cache_dir("embeddings", self._folder, f"hidden-L{layer}-{pooling}"),
                    self.dim)
                for layer in self.cached_layers for pooling in POOLINGS}

    def cache_for_pooling(self) -> EmbeddingCache:
        """The on-disk cache of this embedder's own (layer, pooling)."""
        return self._caches()[(self.layer, self.pooling)]

    def encode(self, texts: Sequence[str], show_progress: bool | None = None) -> np.ndarray:
        texts = list(texts)
        out = np.empty((len(texts), self.dim), np.float32)
        if not texts:
            return out
        keys = [text_key(t) for t in texts]
        if not self.use_cache:
            vectors = self._compute(sorted(set(texts)), show_progress, caches=None)
            return np.stack([vectors[t] for t in texts])
        caches = self._caches()
        mine = caches[(self.layer, self.pooling)]
        found = mine.get_many(sorted(set(keys)))
        missing = sorted({t for t, k in zip(texts, keys) if k not in found})
        if missing:
            computed = self._compute(missing, show_progress, caches)
            found.update((text_key(t), v) for t, v in computed.items())
        for i, key in enumerate(keys):
            out[i] = found[key]
        return out

    def _compute(self, texts: list[str], show_progress, caches) -> dict[str, np.ndarray]:
        """Run the model over ``texts`` (longest first, in batches), store every cached (layer, pooling) per batch,
        and return this embedder's vectors."""
        import torch
        from tqdm.auto import tqdm

        lm = self.lm
        tokenizer, model = lm.tokenizer, lm.model
        ids = [tokenizer(t, add_special_tokens=False)["input_ids"][:64] or [tokenizer.eos_token_id] for t in texts]
        order = np.argsort([-len(i) for i in ids], kind="stable")
        result: dict[str, np.ndarray] = {}
        progress = tqdm(total=len(texts), desc="SmolLM2 hidden states", unit="text",
                        disable=not (show_progress if show_progress is not None else len(texts) >= 200))
        with torch.inference_mode():
            for start in range(0, len(texts), _BATCH):
                batch = order[start:start + _BATCH]
                width = max(len(ids[i]) for i in batch)
                tokens = torch.full((len(batch), width), tokenizer.pad_token_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    tokens[row, :len(ids[i])] = torch.tensor(ids[i])
                    mask[row, :len(ids[i])] = 1
                states = model(input_ids=tokens, attention_mask=mask, output_hidden_states=True).hidden_states
                weights = mask.unsqueeze(-1).float()
                last = mask.sum(dim=1) - 1
                pooled = {}
                for layer in self.cached_layers:
                    h = states[layer].float()
                    pooled[(layer, "mean")] = (h * weights).sum(dim=1) / weights.sum(dim=1)
                    pooled[(layer, "last")] = h[torch.arange(len(batch)), last]
                for key, value in pooled.items():
                    value = value.numpy()
                    value = value / np.maximum(np.linalg.norm(value, axis=1, keepdims=True), 1e-12)
                    pooled[key] = value.astype(np.float32)
                    if caches is not None:
                        caches[key].put_many((text_key(texts[i]), value[row]) for row, i in enumerate(batch))
                for row, i in enumerate(batch):
                    result[texts[i]] = pooled[(self.layer, self.pooling)][row]
                progress.update(len(batch))
        progress.close()
        return result
