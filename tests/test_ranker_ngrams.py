"""Hashed TF-IDF n-grams: the same rows as scikit-learn's TfidfVectorizer, state in one array."""
import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from abgym.ranker.ngrams import HashedTfidf

TEXTS = ["The cat sat on the mat", "A dog and a cat", "The mat is red", "why the dog matters", "cats and dogs"]


@pytest.mark.parametrize("kind, options", [("char", dict(analyzer="char_wb", ngram_range=(2, 5))),
                                           ("word", dict(analyzer="word", ngram_range=(1, 2)))])
def test_hashed_tfidf_matches_tfidf_vectorizer_similarities(kind, options):
    hashed = HashedTfidf(kind).fit(TEXTS)
    reference = TfidfVectorizer(min_df=2, sublinear_tf=True, **options).fit(TEXTS)
    queries = TEXTS + ["an unseen zzz text", "the cat and the dog"]
    ours, theirs = hashed.transform(queries), reference.transform(queries)
    np.testing.assert_allclose((ours @ ours.T).toarray(), (theirs @ theirs.T).toarray(), atol=1e-6)
    again = HashedTfidf(kind, idf=hashed.idf).transform(queries)        # rebuilt from its one array
    np.testing.assert_allclose(again.toarray(), ours.toarray())


def test_hashed_tfidf_errors():
    with pytest.raises(ValueError, match="n-gram kind"):
        HashedTfidf("bytes")
    with pytest.raises(ValueError, match="idf must have"):
        HashedTfidf("char", idf=np.ones(3))
    with pytest.raises(RuntimeError, match="not fitted"):
        HashedTfidf("char").transform(["x"])
