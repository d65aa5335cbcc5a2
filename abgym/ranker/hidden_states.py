"""Headline vectors from the hidden states of the project's own language models (SmolLM2-135M, Gemma 3 270M).

A causal LM's intermediate layers carry more about style and wording than a sentence embedder trained for
semantic similarity, which is what a click-through ranker needs. One forward pass gives every layer; the vectors of
a few layers (``MODELS[model].cached_layers``) under two poolings (mean over the headline's tokens, or the last
token's state) are stored at once, each (layer, pooling) in its own SQLite cache like the sentence embedder's
(:class:`abgym.llm.embedding_cache.EmbeddingCache`: one transaction per batch, so an interrupted pass keeps what
it finished and never leaves half a batch). Which model, layer(s) and pooling the ranker uses is chosen by
cross-validation inside the training archive (experiments/ranker_representations.py). Several layers can be
averaged (``layer=(15, 18, 21)``): each layer's vector is L2-normalised, the mean is normalised again.

The text is the bare headline (no chat template): the model reads it as it would read any text. Gemma is given its
BOS token first (it was trained with one and its states drift without it); the BOS position is left out of the mean.
Only the transformer body runs (no language-model head: Gemma's 262k-word head would cost more than its layers),
and only up to the deepest layer asked for: a cold pass for layer 10 of Gemma's 18 stops there (forward hooks),
storing the cached layers up to it; a deeper layer asked for later is computed then.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from abgym.llm.embedding_cache import EmbeddingCache, text_key
from abgym.paths import cache_dir

POOLINGS = ("mean", "last")
_BATCH = 32


@dataclass(frozen=True)
class HiddenStateModel:
    """A language model whose hidden states can be a ranker block: how to load it and what is cached."""
    name: str            # the representation block's prefix, e.g. "smollm2" in "smollm2-L18-mean"
    label: str           # shown in progress bars and model ids
    folder: str          # the cache folder under embeddings/
    dim: int
    cached_layers: tuple[int, ...]
    prepend_bos: bool

    def load(self):
        if self.name == "gemma3":
            from abgym.llm.gemma import load_gemma
            return load_gemma()
        from abgym.llm import LanguageModel
        return LanguageModel.load()


MODELS = {
    "smollm2": HiddenStateModel("smollm2", "SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct-default", 576,
                                (6, 12, 15, 18, 21, 24, 30), prepend_bos=False),
    "gemma3": HiddenStateModel("gemma3", "Gemma-3-270M", "Gemma-3-270M-bfloat16", 640,
                               (4, 6, 8, 10, 12, 14, 16, 18), prepend_bos=True),
}
CACHED_LAYERS = MODELS["smollm2"].cached_layers  # SmolLM2's, kept for callers of the first version


def parse_block(block: str) -> tuple[str, tuple[int, ...], str] | None:
    """``"smollm2-L18-mean"`` -> ("smollm2", (18,), "mean"); ``"gemma3-L8,10,12-mean"`` averages layers 8, 10, 12.
    None when ``block`` is not a hidden-state block; ValueError naming the choices when it is one with an unknown
    layer or pooling."""
    match = re.fullmatch(r"([a-z0-9]+)-L([0-9,]+)-([a-z]+)", block)
    if not match or match.group(1) not in MODELS:
        return None
    spec = MODELS[match.group(1)]
    layers = tuple(int(x) for x in match.group(2).split(",") if x)
    if not layers or any(layer not in spec.cached_layers for layer in layers) or len(set(layers)) != len(layers):
        raise ValueError(f"block {block!r}: {spec.label} layers must be distinct values of {spec.cached_layers}")
    if match.group(3) not in POOLINGS:
        raise ValueError(f"block {block!r}: pooling must be one of {POOLINGS}")
    return spec.name, layers, match.group(3)


class HiddenStateEmbedder:
    """``encode(texts) -> (n, dim)`` float32: layer ``layer``'s hidden states pooled by ``pooling``, L2-normalised
    (a tuple of layers: their normalised vectors averaged, then normalised).

    ``model``: a key of :data:`MODELS` ("smollm2", the default, or "gemma3"). ``language_model``: a loaded
    :class:`abgym.llm.LanguageModel` to use instead (tests); its caches are named after it. Layer 0 is the token
    embeddings, the last layer the last block's output.
    """

    def __init__(self, layer: int | Sequence[int] = 18, pooling: str = "mean", language_model=None,
                 cache: bool = True, cached_layers: Sequence[int] | None = None, model: str = "smollm2"):
        if model not in MODELS:
            raise ValueError(f"unknown hidden-state model {model!r}; choose from {sorted(MODELS)}")
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose from {POOLINGS}")
        self.spec = MODELS[model]
        self.cached_layers = tuple(cached_layers) if cached_layers is not None else self.spec.cached_layers
        self.layers = (int(layer),) if np.isscalar(layer) else tuple(int(x) for x in layer)
        for value in self.layers:
            if value not in self.cached_layers:
                raise ValueError(f"layer {value} is not computed; choose from {self.cached_layers}")
        self.layer, self.pooling, self.use_cache = self.layers[0], pooling, cache
        self._lm = language_model
        # The cache folder names the model's dtype: vectors of bfloat16 and float32 runs differ slightly.
        self._folder = (self.spec.folder if language_model is None
                        else "hidden-states-" + re.sub(r"[^A-Za-z0-9_.=-]+", "-", language_model.name).strip("-"))
        self.dim = int(language_model.model.config.hidden_size) if language_model is not None else self.spec.dim
        layer_text = ",".join(str(x) for x in self.layers)
        self.model_id = f"{self.spec.label}/hidden-L{layer_text}-{pooling}"

    @property
    def lm(self):
        if self._lm is None:
            self._lm = self.spec.load()
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
        """The on-disk cache of this embedder's own (first layer, pooling)."""
        return self._caches()[(self.layer, self.pooling)]

    def encode(self, texts: Sequence[str], show_progress: bool | None = None) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.empty((0, self.dim), np.float32)
        if not self.use_cache:
            vectors = self._compute(sorted(set(texts)), show_progress, caches=None)
            return self._combine([np.stack([vectors[t][layer] for t in texts]) for layer in self.layers])
        caches = self._caches()
        keys = [text_key(t) for t in texts]
        unique = sorted(set(keys))
        found = {layer: caches[(layer, self.pooling)].get_many(unique) for layer in self.layers}
        missing = sorted({t for t, k in zip(texts, keys) if any(k not in found[layer] for layer in self.layers)})
        if missing:
            computed = self._compute(missing, show_progress, caches)
            for layer in self.layers:
                found[layer].update((text_key(t), v[layer]) for t, v in computed.items())
        return self._combine([np.stack([found[layer][k] for k in keys]) for layer in self.layers])

    @staticmethod
    def _combine(per_layer: list[np.ndarray]) -> np.ndarray:
        if len(per_layer) == 1:
            return per_layer[0].astype(np.float32)
        mean = np.mean(per_layer, axis=0)
        return (mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def _compute(self, texts: list[str], show_progress, caches) -> dict[str, dict[int, np.ndarray]]:
        """Run the model over ``texts`` (longest first, in batches), store every cached (layer, pooling) per batch,
        and return this embedder's pooling per layer."""
        import torch
        from tqdm.auto import tqdm

        lm = self.lm
        tokenizer, model = lm.tokenizer, lm.model
        body = getattr(model, "model", model)  # the transformer without its language-model head
        skip = 1 if self.spec.prepend_bos and tokenizer.bos_token_id is not None else 0
        ids = [tokenizer(t, add_special_tokens=False)["input_ids"][:64] or [tokenizer.eos_token_id] for t in texts]
        if skip:
            ids = [[tokenizer.bos_token_id] + i for i in ids]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        order = np.argsort([-len(i) for i in ids], kind="stable")
        upto = max(self.layers)
        computed_layers = [layer for layer in self.cached_layers if layer <= upto]
        result: dict[str, dict[int, np.ndarray]] = {}
        progress = tqdm(total=len(texts), desc=f"{self.spec.label} hidden states", unit="text",
                        disable=not (show_progress if show_progress is not None else len(texts) >= 200))
        with torch.inference_mode():
            for start in range(0, len(texts), _BATCH):
                batch = order[start:start + _BATCH]
                width = max(len(ids[i]) for i in batch)
                tokens = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    tokens[row, :len(ids[i])] = torch.tensor(ids[i])
                    mask[row, :len(ids[i])] = 1
                states = _hidden_states(body, tokens, mask, upto)
                weights = mask.unsqueeze(-1).float()
                if skip:
                    weights[:, :skip] = 0.0
                last = mask.sum(dim=1) - 1
                pooled = {}
                for layer in computed_layers:
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
                    result[texts[i]] = {layer: pooled[(layer, self.pooling)][row] for layer in self.layers}
                progress.update(len(batch))
        progress.close()
        return result


class _Enough(Exception):
    """Raised by the forward hook of the deepest layer needed: the rest of the network is not run."""


def _hidden_states(body, tokens, mask, upto: int):
    """The hidden states of layers 0..``upto`` (0: the token embeddings as the model scales them), as
    ``output_hidden_states`` gives them, without running the layers above ``upto``. The full pass when ``upto`` is
    the last layer (whose entry in ``output_hidden_states`` may be after the final norm) or the body has no
    ``layers`` / ``embed_tokens`` to hook."""
    layers, embed = getattr(body, "layers", None), getattr(body, "embed_tokens", None)
    if layers is None or embed is None or upto >= len(layers):
        return body(input_ids=tokens, attention_mask=mask, output_hidden_states=True).hidden_states
    captured: dict[int, object] = {}

    def keep(index):
        def hook(module, args, output):
            captured[index] = output[0] if isinstance(output, tuple) else output
            if index == upto:
                raise _Enough
        return hook

    handles = [embed.register_forward_hook(keep(0))]
    handles += [layers[i - 1].register_forward_hook(keep(i)) for i in range(1, upto + 1)]
    try:
        body(input_ids=tokens, attention_mask=mask)
    except _Enough:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return [captured[i] for i in range(upto + 1)]
