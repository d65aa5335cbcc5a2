"""The ranker's maths (Algorithm 1 and the pairwise objective) on hand-made and planted synthetic data, its
save/load round trip, and bad input."""
import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from abgym.data.upworthy import Experiment
from abgym.ranker.ranker import (ContentRanker, RankerConfig, RankerFileError, fixed_effects_ridge, group_demean,
                                 pca_projection, soft_logistic)


MINILM = dict(representation="minilm", standardize=False)  # the dense-only ranker, on the planted embeddings


class TableEmbedder:
    name = "table"

    def __init__(self, table):
        self.table = table
        self.dim = len(next(iter(table.values())))

    def encode(self, texts, show_progress=None):
        return np.stack([self.table[t] for t in texts]).astype(np.float32)


def planted_experiments(n_experiments=300, n_arms=4, dim=12, seed=0, impressions=20_000):
    """Experiments whose CTR is base * (1 + 0.5 x.w): a known direction w the ranker should find."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=dim)
    w /= np.linalg.norm(w)
    table, experiments = {}, []
    for e in range(n_experiments):
        base = rng.uniform(0.005, 0.04)
        x = rng.normal(size=(n_arms, dim))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        ctr = base * (1 + 0.5 * x @ w)
        shown = np.full(n_arms, impressions)
        clicks = rng.binomial(shown, ctr)
        heads = tuple(f"experiment {e} headline {a}" for a in range(n_arms))
        table.update(zip(heads, x))
        experiments.append(Experiment(f"t{e}", 201301 + e % 50, heads, ("",) * n_arms, ("",) * n_arms,
                                      ("",) * n_arms, shown, clicks, np.zeros(n_arms, bool)))
    return experiments, TableEmbedder(table), w


def test_group_demean_removes_weighted_group_means():
    values = np.array([1.0, 3.0, 10.0, 20.0, 30.0])
    groups = np.array([0, 0, 1, 1, 1])
    weights = np.array([1.0, 3.0, 1.0, 1.0, 2.0])
    out = group_demean(values, groups, weights)
    np.testing.assert_allclose(out, [1 - 2.5, 3 - 2.5, 10 - 22.5, 20 - 22.5, 30 - 22.5])


@given(st.integers(0, 10_000))
@settings(max_examples=25, deadline=None)
def test_fixed_effects_ridge_recovers_beta_whatever_the_experiment_levels(seed):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(40, 3))
    groups = np.repeat(np.arange(10), 4)
    beta = np.array([0.5, -2.0, 1.0])
    y = rng.normal(size=10)[groups] * 100 + z @ beta   # huge per-experiment fixed effects
    weights = rng.uniform(0.5, 2.0, size=40)
    np.testing.assert_allclose(fixed_effects_ridge(z, y, groups, weights, ridge=0.0), beta, atol=1e-8)
    shrunk = fixed_effects_ridge(z, y, groups, weights, ridge=1e3)
    assert np.linalg.norm(shrunk) < np.linalg.norm(beta)


def test_pca_projection_finds_the_principal_axis():
    rng = np.random.default_rng(1)
    data = np.outer(rng.normal(size=200), [3.0, 4.0, 0.0]) / 5 + 0.01 * rng.normal(size=(200, 3))
    projection = pca_projection(data - data.mean(0), 1)
    assert abs(abs(projection[:, 0] @ np.array([0.6, 0.8, 0.0])) - 1) < 1e-3
    np.testing.assert_array_equal(pca_projection(data, None), np.eye(3))


def test_soft_logistic_is_antisymmetric_and_points_the_right_way():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(500, 2))
    p = 1 / (1 + np.exp(-(x @ np.array([2.0, -1.0]))))
    beta = soft_logistic(x, p, ridge=1e-6)
    np.testing.assert_allclose(beta, [2.0, -1.0], atol=0.05)
    np.testing.assert_allclose(soft_logistic(-x, 1 - p, ridge=1e-6), beta, atol=1e-4)


@pytest.mark.parametrize("objective", ["pointwise", "pointwise_relative", "pairwise"])
def test_ranker_ranks_held_out_planted_experiments(objective):
    from abgym.ranker.evaluation import evaluate_ranker, random_report

    experiments, embedder, w = planted_experiments()
    ranker = ContentRanker(embedder=embedder, **MINILM, objective=objective, n_components=8, ridge=1.0)
    ranker.fit(experiments[:240])
    report = evaluate_ranker(ranker, experiments[240:]).summary()
    assert report["spearman"] > 0.5
    assert report["top1"] > random_report(experiments[240:]).summary()["top1"] + 0.2
    cosine = ranker.direction @ w / np.linalg.norm(ranker.direction)
    assert cosine > 0.8
    predicted = ranker.predict(list(experiments[250].headlines))
    assert abs(predicted.mean()) < 1e-12
    assert ranker.rank(list(experiments[250].headlines)) == list(np.argsort(-predicted, kind="stable"))


def test_save_load_round_trip_gives_identical_predictions(tmp_path):
    experiments, embedder, _ = planted_experiments(n_experiments=60)
    ranker = ContentRanker(embedder=embedder, **MINILM, n_components=5).fit(experiments)
    path = ranker.save(tmp_path / "ranker")
    assert path.suffix == ".npz"
    loaded = ContentRanker.load(path, embedder=embedder)
    texts = list(experiments[3].headlines)
    np.testing.assert_array_equal(loaded.predict(texts), ranker.predict(texts))
    assert loaded.config == ranker.config
    assert loaded.metadata["n_experiments"] == 60


def test_bad_ranker_files_and_options_are_named(tmp_path):
    with pytest.raises(RankerFileError, match="no ranker file"):
        ContentRanker.load(tmp_path / "missing.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip")
    with pytest.raises(RankerFileError, match="not a ContentRanker file"):
        ContentRanker.load(garbage)
    experiments, embedder, _ = planted_experiments(n_experiments=20)
    path = (ContentRanker(embedder=embedder, **MINILM, n_components=3)
            .fit(experiments).save(tmp_path / "r.npz"))
    with np.load(path) as data:
        arrays = dict(data)
    header = json.loads(str(arrays["header"]))
    header["version"] = 99
    arrays["header"] = np.array(json.dumps(header))
    np.savez(tmp_path / "future.npz", **arrays)
    with pytest.raises(RankerFileError, match="version 99"):
        ContentRanker.load(tmp_path / "future.npz")
    with pytest.raises(ValueError, match="unknown objective"):
        RankerConfig(objective="listwise-magic")
    with pytest.raises(ValueError, match="unknown text field"):
        RankerConfig(fields=("title",))
    with pytest.raises(RuntimeError, match="not fitted"):
        ContentRanker(embedder=embedder, **MINILM).predict(["a"])
    with pytest.raises(TypeError, match="list of texts"):
        (ContentRanker(embedder=embedder, **MINILM, n_components=3)
         .fit(experiments).predict("one string"))


def test_one_default_configuration():
    from abgym.ranker.prior import DEFAULT_CONFIG
    from abgym.ranker.ranker import ALGORITHM_1
    default = ContentRanker().config
    assert default == RankerConfig() == DEFAULT_CONFIG
    assert (default.objective, default.n_components, default.ridge) == ("pairwise", None, 10.0)
    assert (default.representation, default.standardize) == ("minilm+smollm2-L18-mean+char", True)
    assert ALGORITHM_1.objective == "pointwise" and ALGORITHM_1 != default


def test_representation_with_an_ngram_block_learns_wording_and_round_trips(tmp_path):
    """Planted: the dense direction w, plus +60% CTR for arms whose headline says "amazing" (no dense trace)."""
    experiments, embedder, w = planted_experiments(n_experiments=300, impressions=50_000)
    rng = np.random.default_rng(1)
    boosted, table = [], dict(embedder.table)
    for e in experiments:
        heads = tuple(("amazing " + h) if a % 2 == 0 else h for a, h in enumerate(e.headlines))
        table.update({h2: table[h] for h, h2 in zip(e.headlines, heads)})
        rate = np.asarray(e.clicks) / np.asarray(e.impressions) * np.where(np.arange(e.n_arms) % 2 == 0, 1.6, 1.0)
        boosted.append(Experiment(e.test_id, e.test_week, heads, e.excerpts, e.ledes, e.eyecatcher_ids,
                                  e.impressions, rng.binomial(e.impressions, np.minimum(rate, 1)), e.winner))
    embedder = TableEmbedder(table)
    config = RankerConfig(representation="minilm+word", standardize=False, ridge=1.0)
    ranker = ContentRanker(config, embedder=embedder).fit(boosted[:200])
    assert set(ranker.ngram_beta) == {"word"}
    plain = ContentRanker(RankerConfig(**MINILM, ridge=1.0), embedder=embedder).fit(boosted[:200])
    with_words = np.mean([ranker.rank(list(e.headlines))[0] % 2 == 0 for e in boosted[200:]])
    without = np.mean([plain.rank(list(e.headlines))[0] % 2 == 0 for e in boosted[200:]])
    assert with_words > without + 0.15                       # the n-gram block sees "amazing"
    loaded = ContentRanker.load(ranker.save(tmp_path / "r.npz"), embedder=embedder)
    texts = list(boosted[250].headlines)
    np.testing.assert_allclose(loaded.predict(texts), ranker.predict(texts))
    # the dense part alone is what the attribute layer explains
    np.testing.assert_allclose(ranker.scores(texts) - ranker.score_embeddings(embedder.encode(texts)),
                               ranker._ngram_scores(texts))


def test_representation_names_are_checked():
    from abgym.ranker.ranker import representation_blocks
    assert representation_blocks("minilm+smollm2-L18-mean+char") == (["minilm", "smollm2-L18-mean"], ["char"])
    for bad, match in (("bert", "unknown representation block"), ("char", "no dense block"),
                       ("minilm+minilm", "repeats"), ("smollm2-L17-mean", "unknown representation block")):
        with pytest.raises(ValueError, match=match):
            RankerConfig(representation=bad)
    with pytest.raises(ValueError, match="pairwise"):
        RankerConfig(representation="minilm+char", objective="pointwise")


def test_files_from_before_representations_load_as_minilm(tmp_path):
    experiments, embedder, _ = planted_experiments(n_experiments=20)
    ranker = ContentRanker(embedder=embedder, **MINILM).fit(experiments)
    path = ranker.save(tmp_path / "r.npz")
    with np.load(path) as data:
        arrays = dict(data)
    header = json.loads(str(arrays["header"]))
    for key in ("representation", "standardize"):
        del header["config"][key]                      # as written by the previous version
    arrays["header"] = np.array(json.dumps(header))
    np.savez(tmp_path / "old.npz", **arrays)
    old = ContentRanker.load(tmp_path / "old.npz", embedder=embedder)
    assert (old.config.representation, old.config.standardize) == ("minilm", False)
    texts = list(experiments[0].headlines)
    np.testing.assert_allclose(old.predict(texts), ranker.predict(texts))
