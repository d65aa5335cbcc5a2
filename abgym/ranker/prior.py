"""The ranker as a prior reward model: per-arm Beta priors on CTR for Thompson sampling and the other agents.

The ranker only knows relative CTR inside an experiment, in its own score units. Calibration turns that into CTR:
on experiments the ranker was *not* fitted on (cross-fitting), regress each arm's observed relative lift
r = ctr / ctr_experiment - 1 on its centred score, through the origin: r ~ slope * s. The residual variance, minus
the binomial noise of the observed lifts, is the ranker's own uncertainty tau^2 about an arm's true lift. The
level of an experiment is unknown before traffic, so the prior mean of arm i is base_ctr (1 + slope s_i) and its
variance adds the spread of experiment-level CTRs across experiments to (base_ctr tau)^2. Matched to a Beta by
moments, that is a prior of modest strength (a few hundred pseudo-impressions on Upworthy), capped by
``max_strength``: an honest prior, not a confident one.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from abgym.ranker.ranker import ContentRanker, RankerConfig, experiment_texts

DEFAULT_FILE = "ranker_prior_default.npz"
# The configuration of RankerPrior.default(): the project's default ranker, RankerConfig() (docs/ranker.md).
DEFAULT_CONFIG = RankerConfig()


@dataclass
class Calibration:
    slope: float          # relative lift per unit of centred ranker score
    residual_sd: float    # sd of true relative lift the ranker does not explain (binomial noise removed)
    base_ctr: float       # typical experiment-level CTR
    base_ctr_sd: float    # spread of experiment-level CTR across experiments
    n_experiments: int = 0


def calibrate(ranker: ContentRanker, experiments) -> Calibration:
    """Fit the score -> relative-lift map on ``experiments`` (which the ranker must not have been fitted on)."""
    scores, lifts, noise, levels = [], [], [], []
    for experiment in experiments:
        impressions = np.asarray(experiment.impressions, float)
        clicks = np.asarray(experiment.clicks, float)
        level = clicks.sum() / max(impressions.sum(), 1)
        if level <= 0 or np.any(impressions <= 0):
            continue
        s = ranker.scores(experiment_texts(experiment, ranker.config.fields))
        ctr = clicks / impressions
        scores.append(s - s.mean())
        lifts.append(ctr / level - 1)
        noise.append(np.maximum(ctr, 0.5 / impressions) * (1 - ctr) / impressions / level ** 2)
        levels.append(level)
    if len(levels) < 5:
        raise ValueError(f"calibration needs at least 5 experiments with clicks, got {len(levels)}")
    s, r, v = (np.concatenate(x) for x in (scores, lifts, noise))
    slope = float(s @ r / max(s @ s, 1e-300))
    residual = float(np.mean((r - slope * s) ** 2) - np.mean(v))
    levels = np.asarray(levels)
    return Calibration(slope=max(slope, 0.0), residual_sd=float(np.sqrt(max(residual, 1e-6))),
                       base_ctr=float(np.median(levels)), base_ctr_sd=float(np.std(levels)),
                       n_experiments=len(levels))


def cross_fitted_calibration(experiments, config: RankerConfig, embedder=None, n_folds: int = 5) -> Calibration:
    """Calibrate on each fold with a ranker fitted on the others, and pool the folds' estimates.

    Every calibration experiment is held out from the ranker that scores it, so slope and residual sd measure the
    ranker's accuracy on tests it has never seen; five folds (each ranker fitted on 80 % of the experiments, not
    half) keep that accuracy close to the final ranker's, fitted on all of them."""
    from abgym.ranker.evaluation import hash_group

    experiments = list(experiments)
    folds = [hash_group(e.test_id, n_folds) for e in experiments]
    parts = []
    for k in range(n_folds):
        train = [e for e, f in zip(experiments, folds) if f != k]
        held = [e for e, f in zip(experiments, folds) if f == k]
        ranker = ContentRanker(config, embedder=embedder).fit(train)
        parts.append(calibrate(ranker, held))
    weights = np.array([p.n_experiments for p in parts], float)
    mean = lambda name: float(np.average([getattr(p, name) for p in parts], weights=weights))  # noqa: E731
    return Calibration(mean("slope"), mean("residual_sd"), mean("base_ctr"), mean("base_ctr_sd"),
                       int(weights.sum()))


def calibration_check(prior: "RankerPrior", experiments) -> dict:
    """How well the prior's spread matches the ranker's accuracy on held-out ``experiments`` (never fitted on).

    Returns the calibration refitted there (slope and residual sd: equal to the prior's when it is calibrated),
    the slope of observed relative lift on the prior's predicted lift (1 when calibrated, < 1 overconfident), the
    sd of the predicted lifts, and the sd of the true lifts (observed, binomial noise removed)."""
    held = calibrate(prior.ranker, experiments)
    predicted, observed, noise = [], [], []
    for experiment in experiments:
        impressions = np.asarray(experiment.impressions, float)
        clicks = np.asarray(experiment.clicks, float)
        level = clicks.sum() / max(impressions.sum(), 1)
        if level <= 0 or np.any(impressions <= 0):
            continue
        mean, _ = prior.ctr_prior(experiment_texts(experiment, prior.ranker.config.fields))
        ctr = clicks / impressions
        predicted.append(mean / prior.calibration.base_ctr - 1)
        observed.append(ctr / level - 1)
        noise.append(np.maximum(ctr, 0.5 / impressions) * (1 - ctr) / impressions / level ** 2)
    p, o, v = (np.concatenate(x) for x in (predicted, observed, noise))
    return {"n_experiments": held.n_experiments, "held_out_slope": held.slope, "held_out_residual_sd": held.residual_sd,
            "prior_slope": prior.calibration.slope, "prior_residual_sd": prior.calibration.residual_sd,
            "lift_on_predicted_slope": float(p @ o / max(p @ p, 1e-300)),
            "predicted_lift_sd": float(p.std()),
            "true_lift_sd": float(np.sqrt(max(np.mean(o ** 2) - np.mean(v), 0.0)))}


class RankerPrior:
    """Per-arm prior mean and standard deviation of CTR from a fitted ContentRanker, and the matching Beta."""

    def __init__(self, ranker: ContentRanker, base_ctr: float | None = None, calibration: Calibration | None = None,
                 max_strength: float = 2000.0, strength_scale: float = 1.0):
        calibration = calibration or _stored_calibration(ranker)
        if calibration is None:
            raise ValueError("RankerPrior needs a calibration: pass calibration=calibrate(ranker, held_out) or "
                             "use RankerPrior.fit(experiments) / RankerPrior.default()")
        if base_ctr is not None:
            if not 0 < base_ctr < 1:
                raise ValueError(f"base_ctr must be a rate in (0, 1), got {base_ctr}")
            calibration = Calibration(**{**asdict(calibration), "base_ctr": float(base_ctr)})
        if max_strength < 2:
            raise ValueError(f"max_strength must be at least 2 pseudo-observations, got {max_strength}")
        if strength_scale <= 0:
            raise ValueError(f"strength_scale must be positive, got {strength_scale}")
        self.ranker, self.calibration, self.max_strength = ranker, calibration, float(max_strength)
        self.strength_scale = float(strength_scale)  # > 1: deliberately overconfident (for sensitivity studies)

    @classmethod
    def fit(cls, experiments, config: RankerConfig | None = None, embedder=None, **kwargs) -> "RankerPrior":
        """Cross-fitted calibration, then the ranker refitted on all ``experiments``."""
        config = config or DEFAULT_CONFIG
        experiments = list(experiments)
        calibration = cross_fitted_calibration(experiments, config, embedder)
        ranker = ContentRanker(config, embedder=embedder).fit(experiments)
        return cls(ranker, calibration=calibration, **kwargs)

    def ctr_prior(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        c = self.calibration
        relative = c.slope * self.ranker.predict(list(texts))
        mean = np.clip(c.base_ctr * (1 + relative), 1e-4, 0.5)
        sd = np.sqrt((c.base_ctr_sd * (1 + relative)) ** 2 + (c.base_ctr * c.residual_sd) ** 2)
        return mean, sd

    def beta_prior(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Moment-matched Beta(alpha, beta): alpha + beta = m (1 - m) / sd^2 - 1, within [2, max_strength]
        (times ``strength_scale``)."""
        mean, sd = self.ctr_prior(texts)
        strength = np.clip(mean * (1 - mean) / np.maximum(sd, 1e-9) ** 2 - 1, 2.0, self.max_strength)
        strength = strength * self.strength_scale
        return mean * strength, (1 - mean) * strength

    def save(self, path: str | Path) -> Path:
        self.ranker.metadata["prior_calibration"] = asdict(self.calibration)
        self.ranker.metadata["prior_max_strength"] = self.max_strength
        return self.ranker.save(path)

    @classmethod
    def load(cls, path: str | Path, embedder=None) -> "RankerPrior":
        ranker = ContentRanker.load(path, embedder=embedder)
        if _stored_calibration(ranker) is None:
            raise ValueError(f"{path} holds a ContentRanker without a prior calibration; save it with "
                             "RankerPrior.save, or wrap it: RankerPrior(ranker, calibration=calibrate(...))")
        return cls(ranker, max_strength=ranker.metadata.get("prior_max_strength", 2000.0))

    @classmethod
    def default(cls, refresh: bool = False) -> "RankerPrior":
        """Fitted on the shipped Upworthy train split (hash split, identical headlines merged), cached on disk."""
        from abgym.data.upworthy import load_experiments
        from abgym.paths import cache_dir

        path = cache_dir("ranker") / DEFAULT_FILE
        if path.is_file() and not refresh:
            try:
                prior = cls.load(path)
            except ValueError:  # unreadable or from another format version: refit below
                prior = None
            # A cache written with another default configuration is stale: refit rather than serve it.
            if prior is not None and prior.ranker.config == DEFAULT_CONFIG:
                return prior
        prior = cls.fit(load_experiments(split="train", merge_identical=("headline",)), DEFAULT_CONFIG)
        prior.save(path)
        return prior

    def __repr__(self) -> str:
        c = self.calibration
        return (f"RankerPrior(base_ctr={c.base_ctr:.4f}, slope={c.slope:.3g}, residual_sd={c.residual_sd:.3f}, "
                f"objective={self.ranker.config.objective!r})")


def _stored_calibration(ranker: ContentRanker) -> Calibration | None:
    stored = ranker.metadata.get("prior_calibration")
    return Calibration(**stored) if stored else None
