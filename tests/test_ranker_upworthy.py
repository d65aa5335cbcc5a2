"""The ranker on the real Upworthy archive with the real embedders (a cold pass: docs/ranker.md, "Cold fit")."""
import numpy as np
import pytest

from abgym.data.upworthy import load_experiments
from abgym.ranker.evaluation import evaluate_ranker
from abgym.ranker.ranker import ContentRanker


@pytest.mark.slow
def test_ranker_beats_random_on_held_out_upworthy_experiments(tmp_path):
    train = load_experiments(split="train", merge_identical=("headline",))
    test = load_experiments(split="test", merge_identical=("headline",))
    assert all(len(set(e.headlines)) == e.n_arms >= 2 for e in test)   # identical headlines merged
    ranker = ContentRanker().fit(train)   # the default: MiniLM + SmolLM2 hidden states + char n-grams
    summary = evaluate_ranker(ranker, test).summary()
    # docs/ranker.md: Spearman about 0.30, top-1 about 0.42 against 0.26 for a uniform guess.
    assert summary["spearman_ci"][0] > 0.2
    assert summary["top1"] > summary["random_top1"] + 0.1
    loaded = ContentRanker.load(ranker.save(tmp_path / "ranker.npz"))
    texts = list(test[0].headlines)
    np.testing.assert_allclose(loaded.predict(texts), ranker.predict(texts))
