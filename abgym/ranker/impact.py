"""The ranker re-expressed in attribute space: which marketing attributes drive its scores, and in which direction.

Two estimates, as in the paper's Section 4:

- the naive impact beta' = Pi^T beta, with Pi = P^T V^T (q x m) the attribute directions seen through the ranker's
  PCA projection: beta'_j is how much the ranker's score moves when a text moves one unit along attribute j. It is
  cheap but every attribute correlated with the ranker's direction gets credit, so it is dense and redundant.
- the sign-consistent sparse fit (eq. 11-12): regress the ranker's scores f(t) on the attribute scores s(t) of a
  corpus of texts with an L1 penalty, under the constraint sign(gamma_j) = sign(beta'_j) (or gamma_j = 0), so that an
  attribute never explains the ranker against the direction the ranker itself gives it. Lambda is chosen by K-fold
  cross-validation. As lambda -> 0 the fit tends to the pseudo-inverse (least-squares) solution S^+ f whenever that
  solution is itself sign-consistent (Lemma 4.1); tests/test_ranker_impact.py checks it.

The constrained problem is solved as a non-negative Lasso on sign-flipped columns: gamma_j = sign_j * theta_j with
theta >= 0, which scikit-learn's coordinate descent handles exactly (``positive=True``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def attribute_projection(projection: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Pi = P^T V^T (q, m): each attribute direction's coordinates in the ranker's PCA space."""
    return projection.T @ vectors.T


def naive_impact(projection: np.ndarray, vectors: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """beta' = Pi^T beta (m,): the ranker's directional derivative along each attribute."""
    return attribute_projection(projection, vectors).T @ beta


def pseudo_inverse_solution(scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, float]:
    """Least squares with an intercept via the pseudo-inverse: gamma = S_c^+ f_c (Lemma 4.1's limit)."""
    s_mean, f_mean = scores.mean(axis=0), targets.mean()
    gamma = np.linalg.pinv(scores - s_mean) @ (targets - f_mean)
    return gamma, float(f_mean - s_mean @ gamma)


@dataclass
class ImpactModel:
    """gamma per attribute (in score units per unit of attribute score), with what it was chosen from."""
    names: list[str]
    coefficients: np.ndarray      # gamma (m,), sign-consistent with naive
    intercept: float
    naive: np.ndarray             # beta' (m,)
    scale: np.ndarray             # standard deviation of each attribute score over the corpus
    alpha: float                  # the chosen lambda (scikit-learn's alpha, on standardised columns)
    fidelity: float               # R^2 of the attribute model for the ranker's scores on the corpus

    def predict(self, scores: np.ndarray) -> np.ndarray:
        return np.atleast_2d(scores) @ self.coefficients + self.intercept

    def contributions(self, scores_a: np.ndarray, scores_b: np.ndarray) -> np.ndarray:
        """Signed contribution of each attribute to the predicted gap score(a) - score(b): gamma_j (s_aj - s_bj)."""
        return self.coefficients * (np.asarray(scores_a) - np.asarray(scores_b))

    @property
    def effect_per_sd(self) -> np.ndarray:
        """gamma_j times the attribute's spread: the score change of a typical (one-sd) move along attribute j."""
        return self.coefficients * self.scale

    @property
    def active(self) -> np.ndarray:
        return np.flatnonzero(self.coefficients)


def sign_constrained_lasso(scores: np.ndarray, targets: np.ndarray, signs: np.ndarray, *, alpha: float | None = None,
                           n_folds: int = 5, seed: int = 0, standardize: bool = True,
                           n_alphas: int = 50) -> tuple[np.ndarray, float, float]:
    """Eq. 11-12: min_gamma 1/(2n) |f - c - S gamma|^2 + alpha |D gamma|_1 subject to sign_j gamma_j >= 0.

    D is the diagonal of column standard deviations when ``standardize`` (so the penalty does not favour attributes
    with wide scores), the identity otherwise. ``alpha=None`` picks it by ``n_folds``-fold cross-validation
    (shuffled with ``seed``). Returns (gamma, intercept, alpha). Attributes with sign 0 are excluded.
    """
    from sklearn.linear_model import Lasso, LassoCV
    from sklearn.model_selection import KFold

    scores, targets = np.asarray(scores, float), np.asarray(targets, float)
    signs = np.sign(np.asarray(signs, float))
    if scores.ndim != 2 or scores.shape[0] != targets.shape[0] or scores.shape[1] != signs.shape[0]:
        raise ValueError(f"shapes do not match: scores {scores.shape}, targets {targets.shape}, signs {signs.shape}")
    if scores.shape[0] < max(3, n_folds):
        raise ValueError(f"need at least {max(3, n_folds)} texts to fit the impact model, got {scores.shape[0]}")
    scale = scores.std(axis=0) if standardize else np.ones(scores.shape[1])
    scale = np.where(scale > 0, scale, 1.0)
    usable = signs != 0
    flipped = scores[:, usable] * (signs[usable] / scale[usable])
    if alpha is None:
        search = LassoCV(positive=True, cv=KFold(n_folds, shuffle=True, random_state=seed), alphas=n_alphas,
                         max_iter=20_000, random_state=seed)
        model = search.fit(flipped, targets)
        alpha = float(model.alpha_)
    else:
        model = Lasso(alpha=alpha, positive=True, max_iter=100_000, tol=1e-10).fit(flipped, targets)
    gamma = np.zeros(scores.shape[1])
    gamma[usable] = model.coef_ * signs[usable] / scale[usable]
    return gamma, float(model.intercept_), float(alpha)


def fit_impact(ranker, space, embeddings: np.ndarray, *, alpha: float | None = None, n_folds: int = 5,
               seed: int = 0) -> ImpactModel:
    """Explain a fitted ContentRanker with the attributes of an AttributeSpace over a corpus of text embeddings."""
    if embeddings.shape[0] < 10:
        raise ValueError(f"the impact model needs a corpus of at least 10 texts, got {embeddings.shape[0]}")
    scores = space.scores_from_embeddings(embeddings)
    targets = ranker.score_embeddings(embeddings)
    naive = naive_impact(ranker.projection, space.vectors, ranker.beta)
    gamma, intercept, chosen = sign_constrained_lasso(scores, targets, naive, alpha=alpha, n_folds=n_folds, seed=seed)
    fitted = scores @ gamma + intercept
    total = np.sum((targets - targets.mean()) ** 2)
    fidelity = float(1 - np.sum((targets - fitted) ** 2) / total) if total > 0 else 0.0
    return ImpactModel(space.names, gamma, intercept, naive, scores.std(axis=0), chosen, fidelity)
