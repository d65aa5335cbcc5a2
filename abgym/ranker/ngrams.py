"""TF-IDF n-gram features whose whole fitted state is one array, so that a ranker using them saves without pickle.

scikit-learn's ``HashingVectorizer`` maps n-grams to 2^18 columns with no vocabulary to store; the fitted part is
only the inverse document frequency of each column, computed on the training texts (columns seen in fewer than
``min_df`` training texts get weight 0, as ``TfidfVectorizer(min_df=...)`` drops them). Rows are sublinear tf x idf,
L2-normalised: the same recipe as the char n-gram baseline (abgym.ranker.baselines), up to hash collisions.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

N_FEATURES = 2 ** 18
_MEMO_LIMIT = 200_000  # texts whose hashed counts are remembered per kind (CV and cross-fitting refit many times)
_MEMO: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
ANALYZERS = {"char": dict(analyzer="char_wb", ngram_range=(2, 5)), "word": dict(analyzer="word", ngram_range=(1, 2))}


class HashedTfidf:
    """``fit(texts)`` learns the idf; ``transform(texts)`` gives a CSR matrix (n, 2^18)."""

    def __init__(self, kind: str = "char", min_df: int = 2, idf: np.ndarray | None = None):
        if kind not in ANALYZERS:
            raise ValueError(f"unknown n-gram kind {kind!r}; choose from {sorted(ANALYZERS)}")
        if idf is not None and np.shape(idf) != (N_FEATURES,):
            raise ValueError(f"idf must have {N_FEATURES} entries, got shape {np.shape(idf)}")
        self.kind, self.min_df = kind, int(min_df)
        self.idf = None if idf is None else np.asarray(idf, np.float32)
        self._vectorizer = None

    def _counts(self, texts: Sequence[str]):
        """Hashed n-gram counts (CSR). Counts depend on the text alone, so they are remembered per text: the
        analyser is pure Python and dominates the cost of refitting a ranker on the same texts."""
        import scipy.sparse as sp

        texts = list(texts)
        memo = _MEMO.setdefault(self.kind, {})
        missing = sorted({t for t in texts if t not in memo})
        if missing:
            if self._vectorizer is None:
                from sklearn.feature_extraction.text import HashingVectorizer
                self._vectorizer = HashingVectorizer(n_features=N_FEATURES, alternate_sign=False, norm=None,
                                                     lowercase=True, **ANALYZERS[self.kind])
            counts = self._vectorizer.transform(missing).tocsr()
            if len(memo) + len(missing) > _MEMO_LIMIT:
                memo.clear()
            for i, text in enumerate(missing):
                row = slice(counts.indptr[i], counts.indptr[i + 1])
                memo[text] = (counts.indices[row].copy(), counts.data[row].copy())
        rows = [memo[t] for t in texts]
        indptr = np.cumsum([0] + [len(r[0]) for r in rows])
        indices = np.concatenate([r[0] for r in rows]) if rows else np.zeros(0, np.int32)
        data = np.concatenate([r[1] for r in rows]) if rows else np.zeros(0)
        return sp.csr_matrix((data, indices, indptr), shape=(len(texts), N_FEATURES))

    def fit(self, texts: Sequence[str]) -> "HashedTfidf":
        counts = self._counts(texts)
        df = np.bincount(counts.indices, minlength=N_FEATURES)
        idf = np.log((1 + counts.shape[0]) / (1 + df)) + 1.0   # scikit-learn's smooth idf
        self.idf = np.where(df >= self.min_df, idf, 0.0).astype(np.float32)
        return self

    def transform(self, texts: Sequence[str]):
        import scipy.sparse as sp
        from sklearn.preprocessing import normalize

        if self.idf is None:
            raise RuntimeError("this HashedTfidf is not fitted; call fit(training_texts)")
        counts = self._counts(texts).astype(np.float64)
        counts.data = 1.0 + np.log(counts.data)                 # sublinear tf
        weighted = counts @ sp.diags(self.idf.astype(np.float64))
        weighted.eliminate_zeros()
        return normalize(weighted.tocsr(), norm="l2")
