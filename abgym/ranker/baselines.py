"""The character n-gram baseline every ranker evaluation must beat: TF-IDF char n-grams, ridge on demeaned CTR.

No embedding model at all: scikit-learn's ``TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5),
sublinear_tf=True, min_df=2)`` fitted on the training headlines, and ``Ridge`` on each arm's CTR minus its
experiment's impression-weighted mean CTR (the within transformation of Algorithm 1, applied to the target only).
On the Upworthy archive it ties the embedding rankers (docs/ranker.md), which is why it is a required row: a
representation is worth its model only if it beats this.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from abgym.ranker.ranker import _clean, experiment_texts, group_demean


class NgramRidge:
    """``fit(experiments)`` then ``predict(texts)`` (relative scores, centred) and ``rank(texts)``."""

    def __init__(self, alpha: float = 1.0, analyzer: str = "char_wb", ngram_range: tuple[int, int] = (2, 5),
                 min_df: int = 2, fields: Sequence[str] = ("headline",)):
        if alpha <= 0:
            raise ValueError(f"alpha must be positive, got {alpha}")
        if analyzer not in ("char_wb", "char", "word"):
            raise ValueError(f"unknown analyzer {analyzer!r}; choose 'char_wb', 'char' or 'word'")
        self.alpha, self.analyzer, self.ngram_range, self.min_df = float(alpha), analyzer, tuple(ngram_range), min_df
        self.fields = tuple(fields)
        self.vectorizer = None
        self.model = None

    def fit(self, experiments) -> "NgramRidge":
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import Ridge

        texts, ctr, impressions, groups = [], [], [], []
        for index, experiment in enumerate(experiments):
            texts += experiment_texts(experiment, self.fields)
            impressions.append(np.asarray(experiment.impressions, float))
            ctr.append(np.asarray(experiment.clicks, float) / np.maximum(impressions[-1], 1))
            groups.append(np.full(experiment.n_arms, index))
        if not texts:
            raise ValueError("no experiments to fit on; load some with abgym.data.upworthy.load_experiments()")
        ctr, impressions, groups = np.concatenate(ctr), np.concatenate(impressions), np.concatenate(groups)
        target = group_demean(ctr, groups, impressions)
        self.vectorizer = TfidfVectorizer(analyzer=self.analyzer, ngram_range=self.ngram_range,
                                          sublinear_tf=True, min_df=self.min_df, lowercase=True)
        features = self.vectorizer.fit_transform(texts)
        self.model = Ridge(alpha=self.alpha).fit(features, target)
        return self

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        if self.model is None:
            raise RuntimeError("this NgramRidge is not fitted; call fit(experiments)")
        if isinstance(texts, str):
            raise TypeError("predict() takes a list of texts (one per arm), not a single string")
        if len(texts) == 0:
            return np.zeros(0)
        scores = self.model.predict(self.vectorizer.transform([_clean(t) for t in texts]))
        return scores - scores.mean()

    def rank(self, texts: Sequence[str]) -> list[int]:
        return [int(i) for i in np.argsort(-self.predict(texts), kind="stable")]


def cross_validated_alpha(train, alphas: Sequence[float] = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0), n_folds: int = 5,
                          seed: int = 0) -> tuple[float, dict]:
    """The n-gram baseline's alpha by grouped K-fold inside ``train`` (folds by a hash of the test id; criterion:
    mean Spearman over the folds' experiments), as every ranker variant is tuned. Returns (alpha, scores)."""
    from abgym.ranker.evaluation import evaluate_predictions, hash_group

    train = list(train)
    folds = np.array([hash_group(e.test_id + "/cv", n_folds) for e in train])
    scores = {}
    for alpha in alphas:
        rho = []
        for k in range(n_folds):
            inner_train = [e for e, f in zip(train, folds) if f != k]
            inner_test = [e for e, f in zip(train, folds) if f == k]
            model = NgramRidge(alpha=alpha).fit(inner_train)
            rho.append(evaluate_predictions([model.predict(e.texts(model.fields)) for e in inner_test], inner_test,
                                            seed).spearman)
        scores[float(alpha)] = float(np.concatenate(rho).mean())
    return max(scores, key=scores.get), scores
