"""Hidden-state vectors: pooling over real tokens only, cached per (layer, pooling), same vectors from the cache."""
import numpy as np
import pytest

from abgym.llm import LanguageModel
from abgym.ranker.hidden_states import HiddenStateEmbedder


@pytest.fixture(scope="module")
def tiny():
    return LanguageModel.tiny(seed=0)


def test_vectors_do_not_depend_on_batch_padding(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("ABGYM_CACHE_DIR", str(tmp_path))
    texts = ["A short one", "A much longer headline that gets padded partners in its batch", "x"]
    for pooling in ("mean", "last"):
        embedder = HiddenStateEmbedder(2, pooling, language_model=tiny, cache=False, cached_layers=(1, 2))
        together = embedder.encode(texts, show_progress=False)
        alone = np.stack([embedder.encode([t], show_progress=False)[0] for t in texts])
        np.testing.assert_allclose(together, alone, atol=1e-4)
        np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert together.shape == (3, 64)


def test_cache_serves_every_layer_and_pooling(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("ABGYM_CACHE_DIR", str(tmp_path))
    texts = ["one headline", "another headline"]
    first = HiddenStateEmbedder(2, "mean", language_model=tiny, cached_layers=(1, 2)).encode(texts)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(HiddenStateEmbedder, "_compute", lambda *a, **k: pytest.fail("recomputed a cached text"))
        other = HiddenStateEmbedder(1, "last", language_model=tiny, cached_layers=(1, 2))
        fresh = other.encode(texts)  # computed in the same pass as the first call and stored then
    assert (tmp_path / "embeddings" / "hidden-states-tiny-llama-seed=0" / "hidden-L1-last" / "vectors.sqlite").is_file()
    uncached = HiddenStateEmbedder(1, "last", language_model=tiny, cached_layers=(1, 2), cache=False)
    np.testing.assert_allclose(uncached.encode(texts), fresh, atol=1e-6)
    np.testing.assert_allclose(HiddenStateEmbedder(2, "mean", language_model=tiny, cached_layers=(1, 2))
                               .encode(texts), first)
    assert not np.allclose(first, fresh)
    with pytest.raises(ValueError, match="pooling"):
        HiddenStateEmbedder(2, "max", language_model=tiny, cached_layers=(1, 2))
    with pytest.raises(ValueError, match="layer 5"):
        HiddenStateEmbedder(5, "mean", language_model=tiny, cached_layers=(1, 2))


def test_several_layers_are_the_normalised_mean_of_each_layers_vector(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("ABGYM_CACHE_DIR", str(tmp_path))
    texts = ["one headline", "another, longer headline", "x"]
    singles = [HiddenStateEmbedder(layer, "mean", language_model=tiny, cached_layers=(1, 2)).encode(texts)
               for layer in (1, 2)]
    both = HiddenStateEmbedder((1, 2), "mean", language_model=tiny, cached_layers=(1, 2)).encode(texts)
    mean = (singles[0] + singles[1]) / 2
    np.testing.assert_allclose(both, mean / np.linalg.norm(mean, axis=1, keepdims=True), atol=1e-6)
    uncached = HiddenStateEmbedder((1, 2), "mean", language_model=tiny, cached_layers=(1, 2), cache=False)
    np.testing.assert_allclose(uncached.encode(texts), both, atol=1e-5)
    with pytest.raises(ValueError, match="unknown hidden-state model"):
        HiddenStateEmbedder(2, "mean", model="gpt9")


def test_representation_blocks_name_models_layers_and_poolings():
    from abgym.ranker.ranker import representation_blocks

    assert representation_blocks("minilm+gemma3-L10-mean+smollm2-L15,18,21-mean+char") == (
        ["minilm", "gemma3-L10-mean", "smollm2-L15,18,21-mean"], ["char"])
    for bad, message in (("gemma3-L11-mean", "unknown representation block.*layers must be distinct values"),
                         ("smollm2-L18,18-mean", "distinct"), ("smollm2-L18-max", "pooling"),
                         ("minilm+llama-L1-mean", "unknown representation block")):
        with pytest.raises(ValueError, match=message):
            representation_blocks(bad)
