"""Marketing attributes: a lexicon users can extend, and the attribute space that scores copy against it.

An attribute (urgency, social proof, curiosity gap...) is known only through a handful of representative phrases.
Its direction in embedding space is the centred, normalised mean of those phrases' embeddings (eq. 3-4), and the
score of a text on it is the projection of the text's centred embedding on that direction (eq. 5-6). Scores are
therefore comparable across attributes and across texts, which is what the impact model (impact.py) and the
personalized-marketing environment's variant features need.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

DEFAULT_LEXICON = Path(__file__).with_name("lexicon.json")
REQUIRED_FIELDS = ("name", "description", "example", "phrases")


class LexiconError(ValueError):
    """A lexicon file that cannot be used; the message names the file, the entry and the fix."""


class TextEmbedder(Protocol):
    """What the attribute space needs from :class:`abgym.llm.Embedder`."""

    dim: int

    def encode(self, texts: Sequence[str], show_progress: bool | None = None) -> np.ndarray: ...


@dataclass(frozen=True)
class Attribute:
    name: str
    description: str
    example: str
    phrases: tuple[str, ...]

    def texts(self) -> list[str]:
        """The texts whose embeddings define the attribute: its phrases, its example copy and its description."""
        return [*self.phrases, self.example, self.description]


def load_lexicon(path: str | Path | None = None, *, min_phrases: int = 1) -> list[Attribute]:
    """Read a lexicon JSON file (the shipped one by default): ``{"attributes": [{name, description, example,
    phrases}, ...]}`` or a bare list of such entries. Raises :class:`LexiconError` on anything malformed."""
    path = Path(path) if path is not None else DEFAULT_LEXICON
    if not path.is_file():
        raise LexiconError(f"lexicon file {path} does not exist; pass an existing JSON file or None for the default")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise LexiconError(f"lexicon file {path} is not valid UTF-8 JSON: {error}") from error
    entries = document.get("attributes") if isinstance(document, dict) else document
    if not isinstance(entries, list) or not entries:
        raise LexiconError(f"lexicon file {path} must hold a non-empty list under the key 'attributes'")
    attributes: list[Attribute] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"lexicon file {path}, attribute #{index + 1}"
        if not isinstance(entry, dict):
            raise LexiconError(f"{where}: expected an object with fields {REQUIRED_FIELDS}, got {type(entry).__name__}")
        missing = [field for field in REQUIRED_FIELDS if field not in entry]
        if missing:
            raise LexiconError(f"{where} ({entry.get('name', '?')}): missing field(s) {missing}")
        for field in ("name", "description", "example"):
            if not isinstance(entry[field], str) or not entry[field].strip():
                raise LexiconError(f"{where}: field '{field}' must be a non-empty string")
        phrases = entry["phrases"]
        if not isinstance(phrases, list) or not all(isinstance(p, str) and p.strip() for p in phrases):
            raise LexiconError(f"{where} ({entry['name']}): 'phrases' must be a list of non-empty strings")
        if len(phrases) < min_phrases:
            raise LexiconError(
                f"{where} ({entry['name']}): {len(phrases)} phrases, at least {min_phrases} needed; add phrases")
        if entry["name"] in seen:
            raise LexiconError(f"{where}: duplicate attribute name '{entry['name']}'; names must be unique")
        seen.add(entry["name"])
        attributes.append(Attribute(entry["name"].strip(), entry["description"].strip(), entry["example"].strip(),
                                    tuple(p.strip() for p in phrases)))
    return attributes


def attribute_vectors(phrase_embeddings: Sequence[np.ndarray], reference_mean: np.ndarray) -> np.ndarray:
    """Eq. 3-4: e_j = mean of the attribute's text embeddings; v_j = (e_j - mu) / ||e_j - mu||. Rows of V."""
    means = np.stack([np.asarray(block, dtype=np.float64).mean(axis=0) for block in phrase_embeddings])
    centred = means - np.asarray(reference_mean, dtype=np.float64)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    if np.any(norms < 1e-12):
        raise ValueError("an attribute's mean embedding equals the reference mean; its direction is undefined")
    return centred / norms


def attribute_scores(embeddings: np.ndarray, vectors: np.ndarray, reference_mean: np.ndarray) -> np.ndarray:
    """Eq. 5-6: s(t) = V (phi(t) - mu), one row per text, one column per attribute."""
    centred = np.asarray(embeddings, dtype=np.float64) - np.asarray(reference_mean, dtype=np.float64)
    return centred @ vectors.T


class AttributeSpace:
    """Scores texts on the lexicon's attributes.

    ``reference_mean`` is the centre mu of eq. 2 (the mean embedding of a reference corpus of marketing copy). By
    default it is the mean embedding of all the lexicon's texts, so that scores are relative to generic marketing
    copy rather than to the origin of the embedding space; the ranker passes its own training-corpus mean.
    """

    def __init__(self, embedder: TextEmbedder, lexicon: Sequence[Attribute] | str | Path | None = None,
                 reference_mean: np.ndarray | None = None):
        if lexicon is None or isinstance(lexicon, (str, Path)):
            lexicon = load_lexicon(lexicon)
        self.lexicon = list(lexicon)
        if not self.lexicon:
            raise LexiconError("the attribute space needs at least one attribute")
        self.embedder = embedder
        texts = [attribute.texts() for attribute in self.lexicon]
        flat = embedder.encode([text for block in texts for text in block], show_progress=False)
        flat = np.asarray(flat, dtype=np.float64)
        blocks, start = [], 0
        for block in texts:
            blocks.append(flat[start:start + len(block)])
            start += len(block)
        self.reference_mean = (np.asarray(reference_mean, dtype=np.float64) if reference_mean is not None
                               else flat.mean(axis=0))
        self.vectors = attribute_vectors(blocks, self.reference_mean)

    @property
    def names(self) -> list[str]:
        return [attribute.name for attribute in self.lexicon]

    @property
    def n_attributes(self) -> int:
        return len(self.lexicon)

    def scores_from_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        embeddings = np.atleast_2d(np.asarray(embeddings))
        if embeddings.shape[1] != self.vectors.shape[1]:
            raise ValueError(f"embeddings have dimension {embeddings.shape[1]}, the attribute space "
                             f"{self.vectors.shape[1]}; use the same embedder for both")
        return attribute_scores(embeddings, self.vectors, self.reference_mean)

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """(n_texts, n_attributes) attribute scores of ``texts`` (eq. 5-6)."""
        if isinstance(texts, str):
            raise TypeError("scores() takes a list of texts, not a single string; wrap it: scores([text])")
        if len(texts) == 0:
            return np.zeros((0, self.n_attributes))
        return self.scores_from_embeddings(self.embedder.encode(list(texts), show_progress=False))
