"""RankerPrior: calibration on planted data, Beta pseudo-counts, persistence, and Thompson sampling plug-in."""
import numpy as np
import pytest

from abgym.ranker.prior import Calibration, RankerPrior, calibrate
from abgym.ranker.ranker import ContentRanker, RankerConfig

from test_ranker_model import MINILM, planted_experiments


@pytest.fixture(scope="module")
def planted():
    return planted_experiments(n_experiments=300, impressions=50_000)


def test_calibration_recovers_the_planted_relative_lift(planted):
    experiments, embedder, w = planted
    ranker = ContentRanker(embedder=embedder, **MINILM, objective="pairwise", n_components=None, ridge=1.0)
    ranker.fit(experiments[:200])
    calibration = calibrate(ranker, experiments[200:])
    # True relative lift is 0.5 x.w; the calibrated prediction slope * s must match it on held-out arms.
    x = np.stack([embedder.table[t] for e in experiments[200:] for t in e.headlines])
    s = ranker.score_embeddings(x)
    predicted = calibration.slope * (s - s.mean())
    truth = 0.5 * x @ w
    assert np.corrcoef(predicted, truth)[0, 1] > 0.9
    assert 0.6 < np.std(predicted) / np.std(truth) < 1.3
    assert 0.005 < calibration.base_ctr < 0.04 and calibration.residual_sd < 0.2


def test_beta_prior_orders_arms_like_the_ranker_with_modest_strength(planted, tmp_path):
    experiments, embedder, _ = planted
    prior = RankerPrior.fit(experiments[:200], RankerConfig(**MINILM, n_components=8, ridge=1.0), embedder=embedder)
    texts = list(experiments[250].headlines)
    mean, sd = prior.ctr_prior(texts)
    alpha, beta = prior.beta_prior(texts)
    assert np.all(alpha > 0) and np.all(beta > 0) and np.all(sd > 0)
    np.testing.assert_allclose(alpha / (alpha + beta), mean)
    assert list(np.argsort(-mean)) == prior.ranker.rank(texts)
    assert np.all(alpha + beta <= prior.max_strength)
    loaded = RankerPrior.load(prior.save(tmp_path / "prior.npz"), embedder=embedder)
    np.testing.assert_allclose(loaded.beta_prior(texts), (alpha, beta))
    shifted = RankerPrior(prior.ranker, base_ctr=0.1, calibration=prior.calibration)
    assert shifted.ctr_prior(texts)[0].mean() == pytest.approx(0.1, rel=0.05)


def test_thompson_sampling_takes_the_ranker_prior(planted):
    from abgym.agents.bandits import ThompsonSampling

    experiments, embedder, _ = planted
    prior = RankerPrior.fit(experiments[:100], RankerConfig(**MINILM, n_components=8), embedder=embedder)
    agent = ThompsonSampling(prior=prior)
    agent.reset(4, {"arm_texts": list(experiments[150].headlines)}, seed=0)
    assert agent.alpha0.shape == (4,) and np.all(agent.alpha0 > 0)
    assert 0 <= agent.act(None, {}) < 4


def test_prior_bad_input(planted, tmp_path):
    experiments, embedder, _ = planted
    ranker = ContentRanker(embedder=embedder, **MINILM, n_components=4).fit(experiments[:50])
    with pytest.raises(ValueError, match="needs a calibration"):
        RankerPrior(ranker)
    with pytest.raises(ValueError, match="base_ctr"):
        RankerPrior(ranker, base_ctr=2.0, calibration=Calibration(1.0, 0.1, 0.02, 0.01))
    with pytest.raises(ValueError, match="without a prior calibration"):
        RankerPrior.load(ranker.save(tmp_path / "plain.npz"), embedder=embedder)
    with pytest.raises(ValueError, match="at least 5"):
        calibrate(ranker, experiments[:3])


def test_default_prior_refits_a_stale_cache(planted, tmp_path, monkeypatch):
    import abgym.ranker.prior as prior_module

    experiments, embedder, _ = planted
    monkeypatch.setenv("ABGYM_CACHE_DIR", str(tmp_path))
    stale = RankerPrior.fit(experiments[:60], RankerConfig(**MINILM, n_components=3), embedder=embedder)
    stale.save(tmp_path / "ranker" / prior_module.DEFAULT_FILE)
    calls = []
    monkeypatch.setattr(RankerPrior, "fit", classmethod(lambda cls, exps, config=None, **kw: calls.append(config)
                                                         or stale))
    monkeypatch.setattr("abgym.data.upworthy.load_experiments", lambda **kw: experiments[:60])
    monkeypatch.setattr(ContentRanker, "embedder", property(lambda self: embedder))
    RankerPrior.default()
    assert calls == [prior_module.DEFAULT_CONFIG]   # stale configuration: refitted with the default one


def test_calibration_check_on_held_out_experiments(planted):
    from abgym.ranker.prior import calibration_check
    experiments, embedder, _ = planted
    prior = RankerPrior.fit(experiments[:200], RankerConfig(**MINILM, n_components=None, ridge=1.0), embedder=embedder)
    check = calibration_check(prior, experiments[200:])
    assert check["n_experiments"] == 100
    # A calibrated prior: observed lift on predicted lift has slope ~1, and the held-out refit agrees with it.
    assert 0.8 < check["lift_on_predicted_slope"] < 1.25
    assert abs(check["held_out_slope"] - check["prior_slope"]) < 0.25 * check["prior_slope"]
    assert 0 < check["predicted_lift_sd"] <= 1.3 * check["true_lift_sd"]
    # Deliberately miscalibrated (slope x3): the check sees it.
    loud = RankerPrior(prior.ranker, calibration=Calibration(**{**vars(prior.calibration),
                                                                 "slope": 3 * prior.calibration.slope}))
    assert calibration_check(loud, experiments[200:])["lift_on_predicted_slope"] < 0.5
