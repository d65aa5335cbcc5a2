"""Lexicon loading, and the attribute maths of eq. 3-6 on hand-made embeddings where the answer is known."""
import json

import numpy as np
import pytest

from abgym.ranker.attributes import (Attribute, AttributeSpace, LexiconError, attribute_scores, attribute_vectors,
                                     load_lexicon)


class TableEmbedder:
    """Looks texts up in a fixed table: the attribute maths can be checked by hand."""

    def __init__(self, table):
        self.table = {key: np.asarray(value, dtype=np.float32) for key, value in table.items()}
        self.dim = len(next(iter(self.table.values())))

    def encode(self, texts, show_progress=None):
        return np.stack([self.table[text] for text in texts])


def test_shipped_lexicon_has_40_rich_attributes():
    lexicon = load_lexicon()
    assert len(lexicon) >= 40
    assert len({a.name for a in lexicon}) == len(lexicon)
    for attribute in lexicon:
        assert len(attribute.phrases) >= 8, attribute.name
        assert attribute.description and attribute.example


def test_attribute_vectors_eq3_4_mean_centre_normalise():
    blocks = [np.array([[2.0, 0.0], [4.0, 0.0]]), np.array([[1.0, 3.0], [1.0, 5.0]])]
    mu = np.array([1.0, 0.0])
    vectors = attribute_vectors(blocks, mu)
    np.testing.assert_allclose(vectors, [[1.0, 0.0], [0.0, 1.0]])


def test_attribute_scores_eq5_6_project_centred_embeddings():
    vectors = np.array([[1.0, 0.0], [0.0, 1.0]])
    scores = attribute_scores(np.array([[3.0, 1.0], [1.0, -2.0]]), vectors, np.array([1.0, 0.0]))
    np.testing.assert_allclose(scores, [[2.0, 1.0], [0.0, -2.0]])


def test_attribute_space_scores_texts_through_the_embedder():
    lexicon = [Attribute("urgent", "d1", "e1", ("now", "today")), Attribute("free", "d2", "e2", ("free", "gratis"))]
    table = {"now": [1, 0, 0], "today": [1, 0, 0], "e1": [1, 0, 0], "d1": [1, 0, 0],
             "free": [0, 1, 0], "gratis": [0, 1, 0], "e2": [0, 1, 0], "d2": [0, 1, 0],
             "buy now, it's free": [1, 1, 0], "unrelated": [0, 0, 1]}
    space = AttributeSpace(TableEmbedder(table), lexicon, reference_mean=np.zeros(3))
    assert space.names == ["urgent", "free"]
    scores = space.scores(["buy now, it's free", "unrelated"])
    np.testing.assert_allclose(scores, [[1.0, 1.0], [0.0, 0.0]], atol=1e-6)
    assert space.scores([]).shape == (0, 2)
    with pytest.raises(TypeError, match="list of texts"):
        space.scores("now")
    # Default centre: the mean of the lexicon's own texts.
    default = AttributeSpace(TableEmbedder(table), lexicon)
    np.testing.assert_allclose(default.reference_mean, [0.5, 0.5, 0.0])


@pytest.mark.parametrize("content, match", [
    ("not json", "not valid UTF-8 JSON"),
    (json.dumps({"attributes": []}), "non-empty list"),
    (json.dumps({"attributes": [{"name": "x", "description": "d", "example": "e"}]}), "missing field"),
    (json.dumps({"attributes": [{"name": "x", "description": "d", "example": "e", "phrases": [1]}]}), "phrases"),
    (json.dumps({"attributes": [{"name": "x", "description": "", "example": "e", "phrases": ["p"]}]}), "description"),
    (json.dumps([{"name": "x", "description": "d", "example": "e", "phrases": ["p"]}] * 2), "duplicate"),
])
def test_malformed_lexicon_is_rejected_with_a_clear_message(tmp_path, content, match):
    path = tmp_path / "lexicon.json"
    path.write_text(content)
    with pytest.raises(LexiconError, match=match):
        load_lexicon(path)


def test_user_lexicon_extends_and_missing_file_is_named(tmp_path):
    entries = json.loads(open(load_lexicon.__globals__["DEFAULT_LEXICON"]).read())["attributes"]
    entries.append({"name": "my_brand", "description": "d", "example": "e", "phrases": ["acme"]})
    path = tmp_path / "mine.json"
    path.write_text(json.dumps({"attributes": entries}))
    assert load_lexicon(path)[-1].name == "my_brand"
    with pytest.raises(LexiconError, match="at least 8"):
        load_lexicon(path, min_phrases=8)
    with pytest.raises(LexiconError, match="does not exist"):
        load_lexicon(tmp_path / "nope.json")
