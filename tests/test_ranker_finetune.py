"""Fine-tuning MiniLM on pairwise outcomes: the pairs and their labels, and a real (short) training run."""
import numpy as np
import pytest

from abgym.data.upworthy import Experiment
from abgym.ranker.finetune import training_pairs


def _experiment(test_id, headlines, clicks, impressions):
    n = len(headlines)
    return Experiment(test_id, 0, tuple(headlines), ("",) * n, ("",) * n, ("",) * n,
                      np.asarray(impressions), np.asarray(clicks), np.zeros(n, bool))


def test_pairs_are_every_within_test_pair_with_the_significance_label():
    strong = _experiment("a", ["win", "lose", "tie"], [300, 100, 101], [10_000, 10_000, 10_000])
    other = _experiment("b", ["x", "y"], [5, 5], [1000, 1000])
    pairs = training_pairs([strong, other])
    assert list(zip(pairs["anchor"], pairs["other"])) == [("win", "lose"), ("win", "tie"), ("lose", "tie"), ("x", "y")]
    label = np.array(pairs["label"])
    assert label[0] > 0.999 and label[1] > 0.999   # 3% vs 1% on 10,000 impressions each: decisive
    assert 0.4 < label[2] < 0.5                    # 100 vs 101 clicks: noise, a label near 1/2 (weight ~0)
    assert label[3] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="at least two arms"):
        training_pairs([_experiment("c", ["only"], [1], [10])])


@pytest.mark.slow
def test_a_short_finetuning_run_moves_the_embedder(tmp_path):
    """Three real optimisation steps of sentence-transformers' trainer on archive pairs (about 20 s)."""
    from abgym.data.upworthy import load_experiments
    from abgym.llm import Embedder
    from abgym.ranker.finetune import encode_with, finetune_minilm

    experiments = load_experiments(split="train", merge_identical=("headline",))[:12]
    info = finetune_minilm(experiments, tmp_path, max_steps=3, batch_size=8, learning_rate=0.0, seed=0)
    assert info["steps"] == 3 and info["pairs"] >= 12 and info["seconds_per_step"] > 0
    texts = list(experiments[0].headlines)
    tuned = encode_with(info["path"], texts)
    np.testing.assert_allclose(np.linalg.norm(tuned, axis=1), 1.0, atol=1e-5)
    frozen = Embedder(cache=False).encode(texts)
    # the body's learning rate 0 (only the head trains): the vectors stay MiniLM's
    np.testing.assert_allclose(tuned, frozen, atol=1e-5)
    moved = finetune_minilm(experiments, tmp_path / "moved", max_steps=3, batch_size=8, seed=0,
                            head_init=np.ones(384) * 5.0, learning_rate=1e-3)
    assert np.abs(encode_with(moved["path"], texts) - frozen).max() > 1e-3
