"""How well a ranker orders the arms of experiments it has never seen, as the paper measures it.

Per held-out experiment: the Spearman rank correlation between predicted and observed CTR, and top-1 accuracy
(is the predicted best arm the observed best?). Beside them, the random baseline: a uniform guess has expected
top-1 |best arms| / n_arms and expected Spearman 0.

The paper's protocol evaluates only experiments whose arms differ significantly. Every report therefore carries,
per experiment, the p-value of Pearson's chi-square test of independence on the arms' (clicks, non-clicks) table
(no continuity correction), and :meth:`RankingReport.protocol` gives the metrics on all experiments and on those
with p < 0.05 and p < 0.01. It also counts *pairwise accuracy on significant pairs*: over the pairs of arms whose
CTRs differ by a two-sided two-proportion z-test at p < 0.05, the share the ranker orders like the observed CTRs
(a tie in prediction counts one half; random scores 0.5). Intervals over pairs resample experiments (a cluster
bootstrap), because pairs of one experiment share arms. Means over experiments come with bootstrap confidence
intervals (experiments resampled with replacement, seeded). Splits by experiment id and by time, and
leave-one-group-out over groups of experiments, so that a figure is never the luck of one split (the train/test
splits by id and by week are the loader's: ``load_experiments(split=..., split_by="hash"|"week")``).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from scipy.stats import chi2_contingency, norm, spearmanr

SIGNIFICANCE_LEVELS = (0.05, 0.01)


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


def chi_square_p(clicks, impressions) -> float:
    """p-value of Pearson's chi-square test that every arm has the same CTR (arms x {clicks, non-clicks}, no
    continuity correction); 1.0 where the test is undefined (no clicks at all, or clicks everywhere)."""
    clicks, impressions = np.asarray(clicks, float), np.asarray(impressions, float)
    table = np.stack([clicks, impressions - clicks], axis=1)
    if len(clicks) < 2 or np.any(table.sum(axis=0) <= 0) or np.any(table.sum(axis=1) <= 0):
        return 1.0
    return float(chi2_contingency(table, correction=False).pvalue)


def significant_pairs(clicks, impressions, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j), i < j, whose CTRs differ by a two-sided pooled two-proportion z-test at level ``alpha``."""
    clicks, impressions = np.asarray(clicks, float), np.maximum(np.asarray(impressions, float), 1)
    i, j = np.triu_indices(len(clicks), k=1)
    pooled = (clicks[i] + clicks[j]) / (impressions[i] + impressions[j])
    se = np.sqrt(pooled * (1 - pooled) * (1 / impressions[i] + 1 / impressions[j]))
    diff = clicks[i] / impressions[i] - clicks[j] / impressions[j]
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(se > 0, 2 * norm.sf(np.abs(diff) / se), 1.0)
    keep = p < alpha
    return i[keep], j[keep]


def pair_agreement(predicted, observed, left, right) -> float:
    """Summed agreement of predicted and observed order over the given pairs (a predicted tie counts 1/2)."""
    predicted, observed = np.asarray(predicted, float), np.asarray(observed, float)
    if len(left) == 0:
        return 0.0
    sign = np.sign(predicted[left] - predicted[right]) * np.sign(observed[left] - observed[right])
    return float(np.sum((sign + 1) / 2))


def ratio_bootstrap_ci(numerator: np.ndarray, denominator: np.ndarray, n_boot: int = 2000, level: float = 0.95,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile interval of sum(numerator) / sum(denominator), experiments resampled with replacement."""
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    if denominator.sum() <= 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(numerator), size=(n_boot, len(numerator)))
    totals = denominator[draws].sum(axis=1)
    ratios = numerator[draws].sum(axis=1) / np.where(totals > 0, totals, np.nan)
    tail = (1 - level) / 2
    return float(np.nanquantile(ratios, tail)), float(np.nanquantile(ratios, 1 - tail))


@dataclass
class RankingReport:
    """Per-experiment metrics and their means with 95% bootstrap intervals.

    ``p_value`` is each experiment's chi-square p-value; ``pairs_correct`` / ``pairs_significant`` count its
    significant pairs (p < 0.05) and the predicted agreement with them.
    """
    spearman: np.ndarray
    top1: np.ndarray
    random_top1: np.ndarray
    test_ids: list[str] = field(default_factory=list)
    seed: int = 0
    p_value: np.ndarray | None = None
    pairs_correct: np.ndarray | None = None
    pairs_significant: np.ndarray | None = None

    def subset(self, mask: np.ndarray) -> "RankingReport":
        mask = np.asarray(mask, bool)
        pick = lambda a: None if a is None else np.asarray(a)[mask]  # noqa: E731
        return RankingReport(self.spearman[mask], self.top1[mask], self.random_top1[mask],
                             [t for t, m in zip(self.test_ids, mask) if m], self.seed, pick(self.p_value),
                             pick(self.pairs_correct), pick(self.pairs_significant))

    def significant(self, alpha: float) -> "RankingReport":
        """The experiments whose chi-square test across arms gives p < ``alpha``."""
        if self.p_value is None:
            raise ValueError("this report has no p-values; build it with evaluate_predictions()")
        return self.subset(self.p_value < alpha)

    def pairwise_accuracy(self) -> tuple[float, tuple[float, float], int]:
        """Accuracy on significant pairs, its cluster-bootstrap 95% interval, and the number of pairs."""
        if self.pairs_significant is None or self.pairs_significant.sum() == 0:
            return float("nan"), (float("nan"), float("nan")), 0
        total = float(self.pairs_significant.sum())
        return (float(self.pairs_correct.sum() / total),
                ratio_bootstrap_ci(self.pairs_correct, self.pairs_significant, seed=self.seed), int(total))

    def protocol(self) -> dict:
        """The summary on all experiments and on the significant subsets: {"all": ..., "p<0.05": ..., ...}."""
        out = {"all": self.summary()}
        for alpha in SIGNIFICANCE_LEVELS:
            out[f"p<{alpha:g}"] = self.significant(alpha).summary()
        return out

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
        if self.pairs_significant is not None:
            accuracy, interval, n_pairs = self.pairwise_accuracy()
            out.update(pair_accuracy=accuracy, pair_accuracy_ci=interval, n_significant_pairs=n_pairs)
        return out

    def line(self, name: str) -> str:
        s = self.summary()
        return (f"{name:<34} n={s['n_experiments']:<5} spearman {s['spearman']:+.3f} "
                f"[{s['spearman_ci'][0]:+.3f}, {s['spearman_ci'][1]:+.3f}]  top-1 {s['top1']:.3f} "
                f"[{s['top1_ci'][0]:.3f}, {s['top1_ci'][1]:.3f}]  random {s['random_top1']:.3f}")


def evaluate_predictions(predictions: Sequence[np.ndarray], experiments, seed: int = 0) -> RankingReport:
    """Score per-experiment predictions (one array per experiment, one value per arm) against observed CTR."""
    rho, hit, chance, ids, p_values, correct, n_pairs = [], [], [], [], [], [], []
    for predicted, experiment in zip(predictions, experiments, strict=True):
        clicks, impressions = np.asarray(experiment.clicks, float), np.asarray(experiment.impressions, float)
        observed = clicks / np.maximum(impressions, 1)
        if len(predicted) != len(observed):
            raise ValueError(f"experiment {experiment.test_id}: {len(predicted)} predictions for {len(observed)} arms")
        rho.append(spearman(predicted, observed))
        hit.append(top1(predicted, observed))
        chance.append(random_top1(observed))
        ids.append(str(experiment.test_id))
        p_values.append(chi_square_p(clicks, impressions))
        left, right = significant_pairs(clicks, impressions)
        correct.append(pair_agreement(predicted, observed, left, right))
        n_pairs.append(len(left))
    return RankingReport(np.array(rho), np.array(hit), np.array(chance), ids, seed, np.array(p_values),
                         np.array(correct), np.array(n_pairs, float))


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
    return concatenate_reports(reports, seed), reports


def concatenate_reports(reports: Sequence[RankingReport], seed: int = 0) -> RankingReport:
    """One report over the experiments of several (e.g. the folds of leave-one-group-out)."""
    join = lambda name: np.concatenate([getattr(r, name) for r in reports])  # noqa: E731
    optional = {name: join(name) if all(getattr(r, name) is not None for r in reports) else None
                for name in ("p_value", "pairs_correct", "pairs_significant")}
    return RankingReport(join("spearman"), join("top1"), join("random_top1"),
                         [i for r in reports for i in r.test_ids], seed, **optional)


def paired_difference(report: RankingReport, baseline: RankingReport, metric: str, seed: int = 0) -> dict:
    """Mean per-experiment difference ``report - baseline`` in ``metric`` ("spearman", "top1" or "pair_accuracy")
    on the same experiments, with its paired bootstrap 95% interval (experiments resampled together)."""
    if report.test_ids != baseline.test_ids:
        raise ValueError("paired differences need two reports on the same experiments in the same order")
    if metric == "pair_accuracy":
        # The difference of two ratios with one denominator: sum(correct_a - correct_b) / sum(pairs).
        diff = report.pairs_correct - baseline.pairs_correct
        total = report.pairs_significant.sum()
        value = float(diff.sum() / total) if total > 0 else float("nan")
        return {"mean": value, "ci": ratio_bootstrap_ci(diff, report.pairs_significant, seed=seed)}
    diff = getattr(report, metric) - getattr(baseline, metric)
    return {"mean": float(diff.mean()) if len(diff) else float("nan"), "ci": bootstrap_ci(diff, seed=seed)}


def protocol_table(reports: dict, baselines: Sequence[str] = (), seed: int = 0) -> tuple[str, dict]:
    """A markdown table of methods x {all, p<0.05, p<0.01}: Spearman, top-1 and pairwise accuracy with 95%
    intervals; with ``baselines``, the paired differences of every other method from each of them. Returns the
    table and the same figures as a dict."""
    subsets = {"all": lambda r: r, **{f"p<{a:g}": (lambda r, a=a: r.significant(a)) for a in SIGNIFICANCE_LEVELS}}
    lines = ["| method | subset | n | Spearman [95% CI] | top-1 [95% CI] | random top-1 | pair acc. [95% CI] (pairs) |"
             + "".join(f" Δ Spearman vs {b} | Δ top-1 vs {b} |" for b in baselines),
             "|---|---|---|---|---|---|---|" + "---|---|" * len(baselines)]
    figures: dict = {}
    fmt = lambda v, ci, sign="+": f"{v:{sign}.3f} [{ci[0]:{sign}.3f}, {ci[1]:{sign}.3f}]"  # noqa: E731
    for name, report in reports.items():
        for label, pick in subsets.items():
            part = pick(report)
            s = part.summary()
            row = {"summary": s}
            cells = [name, label, str(s["n_experiments"]), fmt(s["spearman"], s["spearman_ci"]),
                     fmt(s["top1"], s["top1_ci"], ""), f"{s['random_top1']:.3f}",
                     f"{fmt(s['pair_accuracy'], s['pair_accuracy_ci'], '')} ({s['n_significant_pairs']})"]
            for b in baselines:
                if b == name:
                    cells += ["", ""]
                    continue
                base = pick(reports[b])
                for metric in ("spearman", "top1"):
                    d = paired_difference(part, base, metric, seed)
                    row[f"{metric}_vs_{b}"] = d
                    cells.append(fmt(d["mean"], d["ci"]))
                row[f"pair_accuracy_vs_{b}"] = paired_difference(part, base, "pair_accuracy", seed)
            figures.setdefault(name, {})[label] = row
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines), figures
