"""Gemma 3 270M from its PyPI chunk packages: joined, checked, loaded offline in transformers, scored like SmolLM2."""
import numpy as np
import pytest

from abgym.llm import gemma


def test_chunks_are_found_without_importing_them():
    import sys

    paths = gemma.chunk_files()
    assert [p.name for p in paths] == [f"gemma-3-270m-q4_k_m.gguf.part{k:02d}" for k in range(4)]
    assert not any(name.startswith("gemma3_270m") for name in sys.modules)  # read as files, never imported
    assert gemma.terms_of_use().is_file()


@pytest.mark.slow
def test_gemma_loads_and_packed_scoring_matches_the_naive_pass():
    """The first run joins the chunks (SHA-256 checked) and converts the GGUF (minutes on 2 cores); then seconds."""
    from abgym.envs.prompt_personalization import make_config, make_recommender

    lm = gemma.load_gemma()
    assert lm.tokenizer.chat_template is None  # a base model: scored as raw text
    prompt = "The viewer liked Star Wars (1977) and Alien (1979).\nAnswer:"
    titles = [" Toy Story (1995)", " Heat (1995)", " Fargo (1996)"]
    packed, naive = lm.score(prompt, titles, chat=False), lm.score_naive(prompt, titles, chat=False)
    np.testing.assert_allclose(packed.mean_logprob, naive.mean_logprob, atol=0.02)  # bfloat16 rounding
    recommender = make_recommender(make_config({"recommender": "llm-calibrated", "language_model": "gemma3-270m",
                                                "ranking_cache": False}), lm)
    assert not recommender.chat and recommender.model_id.startswith("Gemma-3-270M")
    assert sorted(recommender.rank(prompt, [t.strip() for t in titles]).order) == [0, 1, 2]
