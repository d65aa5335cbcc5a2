"""How well a ranker orders the arms of experiments it has never seen, as the paper measures it.

Per held-out experiment: the Spearman rank correlation between predicted and observed CTR, and top-1 accuracy
(is the predicted best arm the observed best?). Beside them, the random baseline: a uniform guess has expected
top-1 |best arms| / n_arms and expected Spearman 0. Means over experiments come with bootstrap confidence
intervals (experiments resampled with replacement, seeded). Splits by experiment id and by time, and
leave-one-group-out over groups of experiments, so that a figure is never the luck of one split (the train/test
splits by id and by week are the loader's: ``load_experiments(split=..., split_by="hash"|"week")``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from scipy.stats import spearmanr


def spearman(predicted: np.ndarray, observed: np.ndarray) -> float:
    """Rank correlation with average ranks for ties; 0 where either side is constant (no ordering predicted)."""
    predicted, observed = np.asarray(predicted, float), np.asarray(observed, float)
    if len(predicted) < 2 or np.ptp(predicted) == 0 or np.ptp(observed) == 0:
        return 0.0
    return float(spearmanr(predicted, observed).statistic)


def top1(predicted: np.ndarray, observed: np.ndarray) -> float:
    """Expected top-1 accuracy: ties among the predicted best are broken uniformly at random."""
    predicted, observed = np.asarray(predicted, float), np.asarray(observed, float)
    chosen = np.isclose(predicted, predicted.max(), rtol=0, atol=1e-12)
    best = observed == observed.max()
    return float(np.mean(best[chosen]))


def random_top1(observed: np.ndarray) -> float:
    """Expected top-1 accuracy of a uniform guess: the share of arms that tie for the best observed CTR."""
    observed = np.asarray(observed, float)
    return float(np.mean(observed == observed.max()))


def bootstrap_ci(values: np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values``."""
    values = np.asarray(values, float)
    if len(values) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


@dataclass
class RankingReport:
    """Per-experiment metrics and their means with 95% bootstrap intervals."""
    spearman: np.ndarray
    top1: np.ndarray
    random_top1: np.ndarray
    test_ids: list[str] = field(default_factory=list)
    seed: int = 0

    @property
    def n_experiments(self) -> int:
        return len(self.spearman)

    def summary(self) -> dict:
        out = {"n_experiments": self.n_experiments}
        for name in ("spearman", "top1", "random_top1"):
            values = getattr(self, name)
            low, high = bootstrap_ci(values, seed=self.seed)
            out[name] = float(values.mean()) if len(values) else float("nan")
            out[f"{name}_ci"] = (low, high)
        lift = self.top1 - self.random_top1
        out["top1_lift"] = float(lift.mean()) if len(lift) else float("nan")
        out["top1_lift_ci"] = bootstrap_ci(lift, seed=self.seed)
        return out

    def line(self, name: str) -> str:
        s = self.summary()
        return (f"{name:<34} n={s['n_experiments']:<5} spearman {s['spearman']:+.3f} "
                f"[{s['spearman_ci'][0]:+.3f}, {s['spearman_ci'][1]:+.3f}]  top-1 {s['top1']:.3f} "
                f"[{s['top1_ci'][0]:.3f}, {s['top1_ci'][1]:.3f}]  random {s['random_top1']:.3f}")


def evaluate_predictions(predictions: Sequence[np.ndarray], experiments, seed: int = 0) -> RankingReport:
    """Score per-experiment predictions (one array per experiment, one value per arm) against observed CTR."""
    rho, hit, chance, ids = [], [], [], []
    for predicted, experiment in zip(predictions, experiments, strict=True):
        observed = np.asarray(experiment.clicks, float) / np.maximum(np.asarray(experiment.impressions, float), 1)
        if len(predicted) != len(observed):
            raise ValueError(f"experiment {experiment.test_id}: {len(predicted)} predictions for {len(observed)} arms")
        rho.append(spearman(predicted, observed))
        hit.append(top1(predicted, observed))
        chance.append(random_top1(observed))
        ids.append(str(experiment.test_id))
    return RankingReport(np.array(rho), np.array(hit), np.array(chance), ids, seed)


def evaluate_ranker(ranker, experiments, seed: int = 0) -> RankingReport:
    experiments = list(experiments)
    return evaluate_predictions([ranker.predict(e.texts(ranker.config.fields)) for e in experiments],
                                experiments, seed)


def random_report(experiments, seed: int = 0) -> RankingReport:
    """The random baseline measured like a ranker: a seeded uniform score per arm."""
    rng = np.random.default_rng(seed)
    experiments = list(experiments)
    return evaluate_predictions([rng.random(len(e.impressions)) for e in experiments], experiments, seed)


# ----------------------------------------------------------------------------------------------------------------
# Splits


def hash_group(test_id: str, n_groups: int) -> int:
    """Stable group of an experiment id (md5, not Python's salted hash)."""
    return int(hashlib.md5(str(test_id).encode()).hexdigest(), 16) % n_groups


def leave_one_group_out(experiments, fit_predict: Callable, n_groups: int = 5, by: str = "hash",
                        seed: int = 0) -> tuple[RankingReport, list[RankingReport]]:
    """Fit on all groups but one, evaluate on that one, for every group. ``fit_predict(train, test)`` returns one
    prediction array per test experiment. Groups are hash buckets of the test id, or contiguous blocks of weeks."""
    experiments = list(experiments)
    if by == "hash":
        groups = np.array([hash_group(e.test_id, n_groups) for e in experiments])
    elif by == "week":
        weeks = np.array([e.test_week for e in experiments])
        edges = np.quantile(weeks, np.linspace(0, 1, n_groups + 1)[1:-1])
        groups = np.searchsorted(edges, weeks, side="right")
    else:
        raise ValueError(f"unknown grouping {by!r}; choose 'hash' or 'week'")
    reports = []
    for g in range(n_groups):
        test = [e for e, k in zip(experiments, groups) if k == g]
        train = [e for e, k in zip(experiments, groups) if k != g]
        if test and train:
            reports.append(evaluate_predictions(fit_predict(train, test), test, seed))
    pooled = RankingReport(np.concatenate([r.spearman for r in reports]), np.concatenate([r.top1 for r in reports]),
                           np.concatenate([r.random_top1 for r in reports]),
                           [i for r in reports for i in r.test_ids], seed)
    return pooled, reports
