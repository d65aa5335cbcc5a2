"""The language model's decoder as an ONNX graph run by ONNX Runtime: the scoring fast path's engine on CPUs.

Why: the packed scoring pass (prompt and candidates in one ~250-token sequence, see
:meth:`abgym.llm.LanguageModel.score`) is matrix products and small elementwise steps; ONNX Runtime runs the same
float32 computation as one optimised graph with fused kernels and no Python per layer, and was measured 2x faster
per ranking than torch in float32 (docs/llm.md). The graph takes and returns the key-value cache, so that the
prompt-prefix reuse of scoring and token-by-token generation run on it too.

The graph is exported once from the float32 torch model (TorchScript exporter, dynamic sequence length) into the
model cache beside the converted weights, written to a temporary folder and renamed into place like the other
conversions, and checked against torch on a probe sequence before it is kept.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from abgym.llm._runtime import available_cores, thread_override

GRAPH_NAME = "decoder.onnx"
_INPUTS = ("input_ids", "position_ids", "attention_mask")


def _cache_names(layers: int, prefix: str) -> list[str]:
    return [f"{prefix}_{layer}_{part}" for layer in range(layers) for part in ("keys", "values")]


def export_decoder(model, folder: Path) -> Path:
    """Write ``model``'s decoder (float32) as ``folder/decoder.onnx``.

    In: token ids and positions (batch, n), an additive float mask (batch, 1, n, past + n), and per layer the
    keys and values of the ``past`` tokens (batch, kv heads, past, head dim; past may be 0). Out: the last hidden
    states (batch, n, hidden) and the keys and values of all past + n tokens. The vocabulary projection stays in
    torch: scoring needs it on a few rows only, generation on the last one.
    """
    import torch
    from transformers import DynamicCache

    decoder, layers = model.get_decoder(), model.config.num_hidden_layers

    class DecoderStep(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.decoder = decoder

        def forward(self, input_ids, position_ids, attention_mask, *past):
            cache = DynamicCache(ddp_cache_data=[(past[2 * i], past[2 * i + 1]) for i in range(layers)])
            output = self.decoder(input_ids=input_ids, position_ids=position_ids, attention_mask=attention_mask,
                                  past_key_values=cache, use_cache=True)
            present = [tensor for layer in output.past_key_values.layers for tensor in (layer.keys, layer.values)]
            return (output.last_hidden_state, *present)

    ids, positions, mask = probe_inputs(12)
    past = empty_cache(model, batch=1, length=4)
    mask = np.concatenate([np.zeros((1, 1, 12, 4), np.float32), mask], axis=-1)
    inputs = [torch.from_numpy(a) for a in (ids, positions, mask, *past)]
    past_names, present_names = _cache_names(layers, "past"), _cache_names(layers, "present")
    axes = {"input_ids": {0: "b", 1: "n"}, "position_ids": {0: "b", 1: "n"}, "attention_mask": {0: "b", 2: "n", 3: "t"},
            "hidden_states": {0: "b", 1: "n"}, **{name: {0: "b", 2: "p"} for name in past_names},
            **{name: {0: "b", 2: "t"} for name in present_names}}
    path = Path(folder) / GRAPH_NAME
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python conditions, fixed for a float mask
        torch.onnx.export(DecoderStep().eval(), tuple(inputs), str(path), opset_version=17, dynamo=False,
                          input_names=[*_INPUTS, *past_names], output_names=["hidden_states", *present_names],
                          dynamic_axes=axes)
    return path


def quantize_graph(source: Path, target: Path) -> Path:
    """ONNX Runtime's dynamic int8 quantization of ``source``'s matrix products (per-channel int8 weights)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True)
    return target


@dataclass(frozen=True)
class BlockwiseQuantization:
    """ONNX Runtime's block-wise weight quantization of the decoder's matrix products (``MatMulNBits``).

    Each weight column is cut into blocks of ``block_size`` values along the input dimension, each with its own
    scale (and, unless ``symmetric``, zero point), so an outlier weight only coarsens its own block.
    ``accuracy_level`` 4 quantizes the activations to int8 per block as well and multiplies in integers (MLAS's
    int8 kernels); 0 (or 1) de-quantizes the weights and multiplies in float32. Written ``q8-b32-sym-a4``:
    bits, block size, ``sym``/``asym``, accuracy level."""

    bits: int = 8
    block_size: int = 32
    symmetric: bool = True
    accuracy_level: int = 4

    @property
    def name(self) -> str:
        return f"q{self.bits}-b{self.block_size}-{'sym' if self.symmetric else 'asym'}-a{self.accuracy_level}"

    @classmethod
    def parse(cls, text: str) -> BlockwiseQuantization:
        match = re.fullmatch(r"q(\d+)-b(\d+)-(sym|asym)-a(\d)", text)
        if not match or int(match[1]) not in (4, 8) or int(match[2]) not in (16, 32, 64, 128, 256) \
                or int(match[4]) not in (0, 1, 2, 3, 4):
            raise ValueError(f"a block-wise quantization is written q<4|8>-b<16|32|64|128|256>-<sym|asym>-a<0-4>, "
                             f"e.g. q8-b32-sym-a4; got {text!r}")
        return cls(int(match[1]), int(match[2]), match[3] == "sym", int(match[4]))


def quantize_graph_blockwise(source: Path, target: Path, quantization: BlockwiseQuantization) -> Path:
    """``source`` with every constant-weight MatMul replaced by ONNX Runtime's ``MatMulNBits`` (``quantization``);
    the embedding lookup (a Gather) and everything else stay float32."""
    import logging

    import onnx

    try:
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
    except ModuleNotFoundError as error:  # it imports onnx_ir, which onnxruntime does not require
        raise ModuleNotFoundError(
            f"ONNX Runtime's block-wise quantizer needs the package {error.name!r}: pip install 'abgym[llm]' "
            "(or pip install onnx-ir)", name=error.name) from error

    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)  # a line a node
    quantizer = MatMulNBitsQuantizer(onnx.load(str(source)), bits=quantization.bits,
                                     block_size=quantization.block_size, is_symmetric=quantization.symmetric,
                                     accuracy_level=quantization.accuracy_level)
    quantizer.process()
    quantizer.model.save_model_to_file(str(target), True)
    return target



def blockwise_graph(float32_folder: Path, quantization: BlockwiseQuantization | str) -> Path:
    """The folder holding ``float32_folder``'s graph quantized block-wise (``quantization`` or its name), written
    once beside it into ``<folder>-<name>`` like the other conversions."""
    from abgym.llm import model_files

    if isinstance(quantization, str):
        quantization = BlockwiseQuantization.parse(quantization)
    source = Path(float32_folder) / GRAPH_NAME
    return model_files._convert_into(source.parent.with_name(f"{source.parent.name}-{quantization.name}"),
                                     lambda tmp: quantize_graph_blockwise(source, tmp / GRAPH_NAME, quantization))

def empty_cache(model, batch: int, length: int = 0) -> list[np.ndarray]:
    """Zero keys and values for ``length`` past tokens, per layer: (batch, kv heads, length, head dim)."""
    config = model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    shape = (batch, config.num_key_value_heads, length, head_dim)
    return [np.zeros(shape, np.float32) for _ in range(2 * config.num_hidden_layers)]


def probe_inputs(length: int, offset: int = 3):
    """A causal sequence with a hole in the mask and shifted positions: what a packed scoring pass looks like."""
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 1000, size=(1, length), dtype=np.int64)
    positions = (np.arange(length, dtype=np.int64) + offset)[None]
    allowed = np.tril(np.ones((length, length), dtype=bool))
    allowed[length // 2 :, 2 : length // 4] = False
    mask = np.where(allowed, 0.0, np.finfo(np.float32).min).astype(np.float32)[None, None]
    return ids, positions, mask


class OnnxDecoder:
    """An ONNX Runtime session over an exported decoder; call it like the torch decoder with a key-value cache.

    Threads: one per core we may run on (``ABGYM_TORCH_THREADS`` overrides), and idle workers sleep instead of
    spinning. Unlike torch's OpenMP threads, ONNX Runtime's pool hands out work in small pieces that the calling
    thread also takes, so a worker descheduled by another job does not stall the pass: with a busy-loop process
    on one of two cores, two threads ranked in 0.38 s against 0.55 s with one (docs/llm.md), so the count is not
    lowered under load.
    """

    def __init__(self, path: Path, threads: int | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        self.threads = threads or thread_override() or available_cores()
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self._past_names = [i.name for i in self.session.get_inputs()][len(_INPUTS):]

    def __call__(self, input_ids, position_ids, attention_mask, past: list[np.ndarray]):
        """Hidden states (batch, n, hidden) and the new cache (a list like ``past``, past + n tokens long)."""
        feed = dict(zip(_INPUTS, (np.asarray(input_ids, np.int64), np.asarray(position_ids, np.int64),
                                  np.asarray(attention_mask, np.float32))))
        feed.update(zip(self._past_names, (np.ascontiguousarray(array, np.float32) for array in past)))
        hidden, *present = self.session.run(None, feed)
        return hidden, present


def check_against_torch(decoder: OnnxDecoder, model, atol: float = 1e-3) -> float:
    """Largest |difference| of the hidden states against torch on a probe sequence; raises if above ``atol``."""
    import torch

    ids, positions, mask = probe_inputs(40)
    with torch.inference_mode():
        expected = model.get_decoder()(input_ids=torch.from_numpy(ids), position_ids=torch.from_numpy(positions),
                                       attention_mask=torch.from_numpy(mask), use_cache=False).last_hidden_state
    hidden, _ = decoder(ids, positions, mask, empty_cache(model, batch=1))
    gap = float(np.max(np.abs(hidden - expected.float().numpy())))
    if not gap <= atol:
        raise ValueError(f"the ONNX decoder {decoder.path} differs from torch by {gap:.3g} (> {atol}) on a probe "
                         f"sequence: delete {decoder.path.parent} to export it again, or use another backend "
                         "(ABGYM_LLM_BACKEND=float32)")
    return gap
