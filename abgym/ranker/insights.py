"""Why the winner won, what the experiment left untried, and how promising a new variant is (Sections 4-5).

All indices work on attribute scores s (eq. 5-6) and the sign-consistent impact coefficients gamma (impact.py):

- insight index (eq. 17): I_j = c_j / sum_k |c_k| with c_j = gamma_j (s_best,j - s_worst,j), the share of the
  best-vs-worst gap the model attributes to attribute j. Top-k drivers are the attributes with the largest
  positive I_j (positivity filter: an attribute that worked against the winner is no reason it won).
- opportunity index (eq. 18-20): importance a_j = max(gamma_j, 0) sd_j (what a one-sd increase would add),
  under-expression u_j = max(0, t_j - max_arms s_j) / sd_j with t_j the ``target_quantile`` of attribute j over the
  reference corpus, and O_j = a_j u_j. If no attribute is both helpful and under-expressed, the fallback returns
  the strongest positive attributes, flagged as such.
- novelty index (eq. 21-22): sim(t) = max over tested arms of cos(phi(t), phi(arm)); N(t) = 1 - sim(t).
- impact bins: strong, medium, weak by tertiles of |gamma_j sd_j| over the active attributes ("none" if gamma_j=0).
- conversion potential: P(candidate beats the best tested arm) = Phi(delta / sigma), delta the ranker's predicted
  score gap and sigma its within-experiment score spread; learning potential: N(t) * (1 - |2p - 1|), high when the
  candidate is new content whose outcome the ranker cannot call.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.special import ndtr

BINS = ("strong", "medium", "weak")


def insight_index(coefficients: np.ndarray, scores_best: np.ndarray, scores_worst: np.ndarray) -> np.ndarray:
    """Eq. 17: each attribute's signed share of the best-vs-worst gap (sums to +-1 in absolute value, or 0)."""
    contributions = np.asarray(coefficients) * (np.asarray(scores_best) - np.asarray(scores_worst))
    total = np.abs(contributions).sum()
    return contributions / total if total > 0 else np.zeros_like(contributions)


def top_drivers(index: np.ndarray, k: int = 3, positive_only: bool = True) -> list[int]:
    """Attribute indices with the largest insight index, best first; only positive ones by default."""
    order = [int(j) for j in np.argsort(-index, kind="stable")]
    if positive_only:
        order = [j for j in order if index[j] > 0]
    return order[:k]


def impact_bins(effects: np.ndarray) -> list[str]:
    """Strong / medium / weak by tertiles of |effect| among the non-zero effects; "none" where the effect is 0."""
    magnitude = np.abs(np.asarray(effects, float))
    active = magnitude[magnitude > 0]
    if len(active) == 0:
        return ["none"] * len(magnitude)
    low, high = np.quantile(active, [1 / 3, 2 / 3])
    return ["none" if m == 0 else "strong" if m >= high else "medium" if m >= low else "weak" for m in magnitude]


def opportunity_index(coefficients: np.ndarray, scale: np.ndarray, arm_scores: np.ndarray, targets: np.ndarray):
    """Eq. 18-20: (O, importance a, under-expression u), each (m,)."""
    scale = np.where(np.asarray(scale) > 0, scale, 1.0)
    importance = np.maximum(np.asarray(coefficients), 0.0) * scale                             # eq. 18
    under = np.maximum(0.0, np.asarray(targets) - np.atleast_2d(arm_scores).max(axis=0)) / scale  # eq. 19
    return importance * under, importance, under                                                 # eq. 20


def rank_opportunities(opportunity: np.ndarray, importance: np.ndarray, k: int = 3) -> tuple[list[int], bool]:
    """Top-k attributes by opportunity index; if none is positive, the fallback: the top-k by importance."""
    positive = [int(j) for j in np.argsort(-opportunity, kind="stable") if opportunity[j] > 0]
    if positive:
        return positive[:k], False
    return [int(j) for j in np.argsort(-importance, kind="stable") if importance[j] > 0][:k], True


def novelty(candidates: np.ndarray, arms: np.ndarray) -> np.ndarray:
    """Eq. 21-22: 1 - the highest cosine similarity of each candidate to any tested arm."""
    a = np.atleast_2d(candidates).astype(float)
    b = np.atleast_2d(arms).astype(float)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return 1.0 - (a @ b.T).max(axis=1)


def conversion_potential(score_gap: np.ndarray, spread: float) -> np.ndarray:
    """P(the candidate beats the best tested arm) from the ranker's score gap, in units of its score spread."""
    return ndtr(np.asarray(score_gap, float) / max(float(spread), 1e-12))


def learning_potential(novelty_index: np.ndarray, conversion: np.ndarray) -> np.ndarray:
    """High for new content with an uncertain outcome: N * (1 - |2p - 1|)."""
    return np.asarray(novelty_index) * (1 - np.abs(2 * np.asarray(conversion) - 1))


# ----------------------------------------------------------------------------------------------------------------
# One experiment, explained


@dataclass
class AttributeFinding:
    name: str
    value: float      # insight index (drivers) or opportunity index (opportunities)
    effect: float     # gamma_j * sd_j
    bin: str


@dataclass
class ExperimentInsights:
    test_id: str
    texts: list[str]
    observed_ctr: list[float]
    predicted: list[float]                 # ranker scores, centred
    best_arm: int
    worst_arm: int
    contrast: str                          # "observed" (post-hoc) or "predicted" (before traffic)
    contributions: list[float]             # gamma_j (s_best - s_worst), per attribute
    attribute_names: list[str]
    drivers: list[AttributeFinding] = field(default_factory=list)
    opportunities: list[AttributeFinding] = field(default_factory=list)
    opportunities_fallback: bool = False
    fidelity: float = float("nan")

    def to_dict(self) -> dict:
        return asdict(self)


def explain_experiment(experiment, ranker, space, impact, targets: np.ndarray, *, k: int = 3,
                       use_observed: bool = True) -> ExperimentInsights:
    """Drivers of the best arm over the worst, and the experiment's untried opportunities.

    ``targets`` are the per-attribute target levels of eq. 19 (e.g. a high quantile over the training corpus).
    With ``use_observed`` the best and worst arms are the observed ones (explaining a finished test), otherwise the
    ranker's predictions (advising before traffic is spent).
    """
    texts = experiment.texts(ranker.config.fields)
    embeddings = ranker.embed(texts)
    predicted = ranker.scores(texts)  # the whole score, n-gram blocks included (the chart's "not explained" has them)
    observed = np.asarray(experiment.clicks, float) / np.maximum(np.asarray(experiment.impressions, float), 1)
    basis = observed if use_observed else predicted
    best, worst = int(np.argmax(basis)), int(np.argmin(basis))
    scores = space.scores_from_embeddings(embeddings)
    index = insight_index(impact.coefficients, scores[best], scores[worst])
    bins = impact_bins(impact.effect_per_sd)
    effect = impact.effect_per_sd
    drivers = [AttributeFinding(impact.names[j], float(index[j]), float(effect[j]), bins[j])
               for j in top_drivers(index, k)]
    opportunity, importance, _ = opportunity_index(impact.coefficients, impact.scale, scores, targets)
    chosen, fallback = rank_opportunities(opportunity, importance, k)
    opportunities = [AttributeFinding(impact.names[j], float(opportunity[j] if not fallback else importance[j]),
                                      float(effect[j]), bins[j]) for j in chosen]
    return ExperimentInsights(
        test_id=str(experiment.test_id), texts=list(texts), observed_ctr=[float(x) for x in observed],
        predicted=[float(x) for x in predicted - predicted.mean()], best_arm=best, worst_arm=worst,
        contrast="observed" if use_observed else "predicted",
        contributions=[float(x) for x in impact.contributions(scores[best], scores[worst])],
        attribute_names=list(impact.names), drivers=drivers, opportunities=opportunities,
        opportunities_fallback=fallback, fidelity=float(impact.fidelity))
