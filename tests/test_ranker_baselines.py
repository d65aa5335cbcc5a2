"""The character n-gram baseline learns a wording effect and rejects bad input."""
import numpy as np
import pytest

from abgym.data.upworthy import Experiment
from abgym.ranker.baselines import NgramRidge
from abgym.ranker.evaluation import evaluate_predictions

WORDS = ["river", "budget", "garden", "school", "music", "storm", "doctor", "planet"]


def synthetic(n, seed):
    """Arms whose headline says "amazing" get twice the CTR; everything else is noise."""
    rng = np.random.default_rng(seed)
    experiments = []
    for k in range(n):
        topic = rng.choice(WORDS, 2, replace=False)
        heads = (f"the {topic[0]} and the {topic[1]}", f"amazing: the {topic[0]} and the {topic[1]}",
                 f"why the {topic[1]} matters")
        rate = np.array([0.01, 0.02, 0.01]) * rng.uniform(0.5, 2)
        impressions = np.full(3, 5000)
        clicks = rng.binomial(impressions, rate)
        experiments.append(Experiment(f"{seed}-{k}", 201401, heads, ("",) * 3, ("",) * 3, ("",) * 3,
                                      impressions, clicks, np.zeros(3, bool)))
    return experiments


def test_ngram_ridge_learns_a_wording_effect():
    model = NgramRidge(alpha=1.0).fit(synthetic(80, 0))
    test = synthetic(40, 1)
    report = evaluate_predictions([model.predict(e.texts()) for e in test], test)
    assert report.top1.mean() > 0.8                  # the "amazing" arm is predicted best
    assert model.rank(["the storm", "amazing: the storm"])[0] == 1
    assert abs(model.predict(["a", "b", "c"]).sum()) < 1e-12   # centred scores


def test_ngram_ridge_errors_are_clear():
    with pytest.raises(ValueError, match="alpha"):
        NgramRidge(alpha=0)
    with pytest.raises(ValueError, match="analyzer"):
        NgramRidge(analyzer="bytes")
    with pytest.raises(RuntimeError, match="not fitted"):
        NgramRidge().predict(["x"])
    with pytest.raises(ValueError, match="no experiments"):
        NgramRidge().fit([])
    with pytest.raises(TypeError, match="list of texts"):
        NgramRidge().fit(synthetic(5, 0)).predict("one string")
