"""The content-aware CTR ranker (the paper's Algorithm 1) and the within-experiment objectives that go beyond it.

Every model here is linear in the text embedding: score(t) = (phi(t) - mu)^T P beta, with mu the reference mean
(eq. 2), P the PCA projection to q dimensions and beta the coefficients. Only differences of scores between arms of
one experiment mean anything (the experiment's fixed effect absorbs the level), so ``predict`` returns relative CTR
and ``rank`` the arms best first. Keeping every objective in this one form is what lets the attribute impact model
(impact.py), the charts and the prior use any of them.

Objectives
- ``pointwise`` (Algorithm 1): ridge regression of CTR on the projections, with experiment fixed effects by
  impression-weighted within-experiment demeaning.
- ``pointwise_relative``: the same on CTR relative to the experiment's mean CTR (ctr / mean - 1), so that
  experiments with a high base rate do not dominate the fit.
- ``pairwise``: logistic regression on within-experiment differences z_i - z_j, with the soft label
  P(ctr_i > ctr_j) from a normal approximation of the two binomial estimates: noisy pairs count little.
"""
from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from abgym.paths import atomic_write

FORMAT = "abgym.ContentRanker"
FORMAT_VERSION = 1
OBJECTIVES = ("pointwise", "pointwise_relative", "pairwise")
TEXT_FIELDS = ("headline", "excerpt", "lede")


class RankerFileError(ValueError):
    """A saved ranker that cannot be read: wrong format, version or content."""


@dataclass
class RankerConfig:
    """The defaults are the project's default ranker (docs/ranker.md): the pairwise objective on MiniLM, SmolLM2's
    layer-18 mean-pooled hidden states and character n-grams side by side, dense dimensions standardised, ridge 10;
    every choice made by grouped cross-validation inside the training split (experiments/ranker_representations.py).
    ``ALGORITHM_1`` is the paper's; ``MINILM_PAIRWISE`` the MiniLM-only pairwise ranker (no language model);
    ``GEMMA_ROUND_TWO`` adds Gemma 3 270M's layer 10, whose CV gain was within noise (so not the default)."""
    fields: tuple[str, ...] = ("headline",)
    n_components: int | None = None  # q; None or >= embedding dim keeps every direction (no PCA truncation)
    ridge: float = 10.0              # L2 penalty (pointwise: on impression weights normalised to mean 1)
    objective: str = "pairwise"
    weighting: str = "impressions"   # pointwise sample weights: "impressions" or "none"
    # Text representation: blocks joined by "+" (see representation_blocks); "minilm" is the sentence embedder.
    representation: str = "minilm+smollm2-L18-mean+char"
    standardize: bool = True         # scale every dense dimension by its sd on the training arms

    def __post_init__(self):
        self.fields = tuple(self.fields)
        unknown = [f for f in self.fields if f not in TEXT_FIELDS]
        if unknown or not self.fields:
            raise ValueError(f"unknown text field(s) {unknown}; choose from {TEXT_FIELDS}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {self.objective!r}; choose from {OBJECTIVES}")
        if self.weighting not in ("impressions", "none"):
            raise ValueError(f"unknown weighting {self.weighting!r}; choose 'impressions' or 'none'")
        if self.ridge < 0:
            raise ValueError(f"ridge must be >= 0, got {self.ridge}")
        if self.n_components is not None and self.n_components < 1:
            raise ValueError(f"n_components must be >= 1 or None, got {self.n_components}")
        dense, sparse = representation_blocks(self.representation)
        if sparse and self.objective != "pairwise":
            raise ValueError(f"n-gram blocks {sparse} need the pairwise objective, not {self.objective!r}; use "
                             f"objective='pairwise' or a representation without them, e.g. 'minilm'")


def representation_blocks(representation: str) -> tuple[list[str], list[str]]:
    """Split a representation like "minilm+smollm2-L18-mean+char" into (dense blocks, n-gram blocks).

    Dense: "minilm" (all-MiniLM-L6-v2, 384); hidden states "<model>-L<layers>-<mean|last>" of "smollm2"
    (SmolLM2-135M, 576) or "gemma3" (Gemma 3 270M, 640), one layer or several averaged ("smollm2-L15,18,21-mean";
    abgym.ranker.hidden_states). N-gram: "char", "word" (hashed TF-IDF, abgym.ranker.ngrams). At least one dense
    block: the attribute layer (eqs. 3-17) lives in the dense space."""
    from abgym.ranker.hidden_states import MODELS

    dense, sparse = [], []
    for block in str(representation).split("+"):
        if block in ("char", "word"):
            sparse.append(block)
        elif block == "minilm":
            dense.append(block)
        elif _hidden_block(block, representation):
            dense.append(block)
        else:
            layers = "; ".join(f"{m}: {spec.cached_layers}" for m, spec in MODELS.items())
            raise ValueError(f"unknown representation block {block!r} in {representation!r}; use 'minilm', "
                             f"'<model>-L<layer>[,<layer>...]-<mean|last>' (layers {layers}), 'char' or 'word', "
                             "joined by '+'")
    if not dense:
        raise ValueError(f"representation {representation!r} has no dense block; add 'minilm' (the attribute layer "
                         "needs a dense embedding)")
    if len(set(dense + sparse)) != len(dense + sparse):
        raise ValueError(f"representation {representation!r} repeats a block")
    return dense, sparse


def _hidden_block(block: str, representation: str) -> bool:
    from abgym.ranker.hidden_states import parse_block

    try:
        return parse_block(block) is not None
    except ValueError as error:
        raise ValueError(f"unknown representation block {block!r} in {representation!r}: {error}") from None


class ConcatEmbedder:
    """Dense embedders side by side: ``encode(texts)`` concatenates their vectors (each block L2-normalised)."""

    def __init__(self, parts):
        self.parts = list(parts)
        self.dim = sum(int(p.dim) for p in self.parts)
        self.model_id = "+".join(str(getattr(p, "model_id", type(p).__name__)) for p in self.parts)
        self.block_dims = [int(p.dim) for p in self.parts]

    def encode(self, texts, show_progress=None):
        return np.hstack([np.asarray(p.encode(list(texts), show_progress=show_progress), np.float32)
                          for p in self.parts])


def dense_embedder(representation: str):
    """The embedder of a representation's dense blocks (the sentence embedder alone for "minilm")."""
    from abgym.llm import Embedder
    from abgym.ranker.hidden_states import HiddenStateEmbedder, parse_block

    parts = []
    for block in representation_blocks(representation)[0]:
        if block == "minilm":
            parts.append(Embedder())
        else:
            model, layers, pooling = parse_block(block)
            parts.append(HiddenStateEmbedder(layers, pooling, model=model))
    return parts[0] if len(parts) == 1 else ConcatEmbedder(parts)


# The paper's Algorithm 1 as cross-validated on the training split (docs/ranker.md: q none, ridge 100).
ALGORITHM_1 = RankerConfig(objective="pointwise", n_components=None, ridge=100.0, representation="minilm",
                           standardize=False)
# The MiniLM-only pairwise ranker (the default until the representation study): no language model needed.
MINILM_PAIRWISE = RankerConfig(representation="minilm", standardize=False, ridge=10.0)
# Round two's CV winner (docs/ranker.md): Gemma 3 270M's layer 10 beside the default's blocks. Its CV gain over the
# default, paired per training test, did not exclude zero (+0.021 [-0.000, +0.042] at p < 0.01), it costs Gemma's
# hidden states on a cold cache, and it is not the default.
GEMMA_ROUND_TWO = RankerConfig(representation="minilm+smollm2-L18-mean+gemma3-L10-mean+char", standardize=True,
                               ridge=30.0)


@dataclass
class ArmTable:
    """The training data flattened to one row per arm: what every objective consumes."""
    embeddings: np.ndarray   # (n, d)
    clicks: np.ndarray       # (n,)
    impressions: np.ndarray  # (n,)
    groups: np.ndarray       # (n,) int experiment index
    texts: list[str] = field(default_factory=list)

    @property
    def ctr(self) -> np.ndarray:
        return self.clicks / np.maximum(self.impressions, 1)


def experiment_texts(experiment, fields: Sequence[str]) -> list[str]:
    return [_clean(text) for text in experiment.texts(tuple(fields))]


def _clean(text: str) -> str:
    """Ledes are HTML: strip tags and collapse whitespace, so the embedder sees prose."""
    import html
    import re
    text = re.sub(r"<[^>]+>", " ", text or "")
    return re.sub(r"\s+", " ", html.unescape(text)).strip()


def arm_table(experiments, embed, fields: Sequence[str]) -> ArmTable:
    """Flatten experiments to arms; ``embed(texts) -> (n, d)`` embeds every arm's text once."""
    texts, clicks, impressions, groups = [], [], [], []
    for index, experiment in enumerate(experiments):
        arm_texts = experiment_texts(experiment, fields)
        if len(arm_texts) != len(experiment.impressions):
            raise ValueError(f"experiment {experiment.test_id}: {len(arm_texts)} texts for "
                             f"{len(experiment.impressions)} arms")
        texts += arm_texts
        clicks.append(np.asarray(experiment.clicks, dtype=np.float64))
        impressions.append(np.asarray(experiment.impressions, dtype=np.float64))
        groups.append(np.full(len(arm_texts), index))
    if not texts:
        raise ValueError("no experiments to fit on; load some with abgym.data.upworthy.load_experiments()")
    embeddings = np.asarray(embed(texts), dtype=np.float64)
    return ArmTable(embeddings, np.concatenate(clicks), np.concatenate(impressions), np.concatenate(groups), texts)


# ----------------------------------------------------------------------------------------------------------------
# The maths, on arrays


def pca_projection(centred: np.ndarray, n_components: int | None) -> np.ndarray:
    """P (d, q): the top-q right singular vectors of the centred embeddings (q = d keeps the identity basis)."""
    d = centred.shape[1]
    if n_components is None or n_components >= d:
        return np.eye(d)
    # Eigenvectors of the d x d scatter matrix: the same subspace as the SVD of the n x d data, far cheaper for n >> d.
    values, vectors = np.linalg.eigh(centred.T @ centred)
    top = vectors[:, np.argsort(values)[::-1][:n_components]]
    return top * np.where(top[np.abs(top).argmax(axis=0), np.arange(top.shape[1])] < 0, -1.0, 1.0)


def group_demean(values: np.ndarray, groups: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Subtract each experiment's weighted mean: the within transformation that removes fixed effects."""
    values = np.asarray(values, dtype=np.float64)
    flat = values.reshape(len(values), -1)
    n_groups = int(groups.max()) + 1
    total_w = np.bincount(groups, weights=weights, minlength=n_groups)
    sums = np.stack([np.bincount(groups, weights=weights * flat[:, k], minlength=n_groups)
                     for k in range(flat.shape[1])], axis=1)
    means = sums / np.maximum(total_w, 1e-300)[:, None]
    return (flat - means[groups]).reshape(values.shape)


def fixed_effects_ridge(z: np.ndarray, y: np.ndarray, groups: np.ndarray, weights: np.ndarray,
                        ridge: float) -> np.ndarray:
    """beta = argmin sum_i w_i (y_i - alpha_g(i) - z_i beta)^2 + ridge |beta|^2, alpha profiled out by demeaning."""
    zt = group_demean(z, groups, weights)
    yt = group_demean(y, groups, weights)
    gram = zt.T @ (weights[:, None] * zt) + ridge * np.eye(z.shape[1])
    return np.linalg.solve(gram, zt.T @ (weights * yt))


def pairwise_differences(z: np.ndarray, table: ArmTable, max_pairs_per_experiment: int = 45):
    """Within-experiment pairs (i, j), i < j: feature differences and the soft label P(ctr_i > ctr_j)."""
    from scipy.special import ndtr

    ctr, n = table.ctr, np.maximum(table.impressions, 1)
    # Beta(1,1)-smoothed rates keep the variance positive for arms with zero clicks.
    p = (table.clicks + 1) / (n + 2)
    variance = p * (1 - p) / n
    left, right = [], []
    order = np.argsort(table.groups, kind="stable")
    boundaries = np.flatnonzero(np.diff(table.groups[order])) + 1
    for members in np.split(order, boundaries):
        i, j = np.triu_indices(len(members), k=1)
        left.append(members[i][:max_pairs_per_experiment])
        right.append(members[j][:max_pairs_per_experiment])
    left, right = np.concatenate(left), np.concatenate(right)
    zscore = (ctr[left] - ctr[right]) / np.sqrt(variance[left] + variance[right])
    return z[left] - z[right], ndtr(zscore)


def soft_logistic(x: np.ndarray, p: np.ndarray, ridge: float, max_iter: int = 200) -> np.ndarray:
    """Logistic regression without intercept on soft labels p in [0, 1], L2 penalty ``ridge`` (L-BFGS).

    Soft labels are the honest target here: a pair whose CTRs differ by noise has p near 0.5 and pulls the
    coefficients little, a decisive pair pulls hard. Symmetric by construction (x -> -x, p -> 1 - p).
    """
    from scipy.optimize import minimize

    def loss(beta):
        margin = x @ beta
        # -[p log s(m) + (1-p) log s(-m)] = log(1 + e^m) - p m
        value = np.logaddexp(0.0, margin) - p * margin
        grad_margin = 1.0 / (1.0 + np.exp(-margin)) - p
        return (value.sum() + 0.5 * ridge * beta @ beta,
                x.T @ grad_margin + ridge * beta)

    result = minimize(loss, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B", options={"maxiter": max_iter})
    return result.x


def dense_scale(centred: np.ndarray, standardize: bool, block_dims: Sequence[int] | None,
                n_blocks: int) -> np.ndarray:
    """Per-dimension multipliers of the centred dense embedding: 1/sd with ``standardize``, and, when the
    representation has several blocks (or is standardised), each dense block scaled to a mean squared row norm of 1
    so that no block takes the ridge budget by its units alone. A single plain block is left as it is."""
    d = centred.shape[1]
    scale = np.ones(d)
    if standardize:
        scale = 1.0 / (centred.std(axis=0) + 1e-8)
    if n_blocks > 1 or standardize:
        bounds = np.cumsum([0, *(block_dims or [d])])
        for a, b in zip(bounds[:-1], bounds[1:]):
            norm = np.sqrt(np.mean(np.sum((centred[:, a:b] * scale[a:b]) ** 2, axis=1)))
            scale[a:b] /= max(norm, 1e-12)
    return scale


def sparse_scale(features) -> float:
    """1 / root mean squared row norm of an n-gram block (rows are L2-normalised: about 1)."""
    return 1.0 / max(float(np.sqrt(features.multiply(features).sum(axis=1).mean())), 1e-12)


def fit_linear(table: ArmTable, config: RankerConfig, reference: np.ndarray | None = None,
               projection_texts: np.ndarray | None = None, sparse=None, block_dims: Sequence[int] | None = None):
    """Fit (mu, P, beta, sparse_beta) on an arm table. ``reference`` embeddings define mu (eq. 2; default: the
    training arms); ``projection_texts`` embeddings are added to the PCA fit (the paper's fit-on-train-and-test
    option); ``sparse`` is the arms' n-gram matrix (pairwise objective only), whose coefficients come back as
    ``sparse_beta`` (None without it). The dense scaling (:func:`dense_scale`) is folded into P."""
    from threadpoolctl import threadpool_limits

    # The matrices are small (d = 384): one BLAS thread is fastest, and on a busy machine many threads are far slower.
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit_linear(table, config, reference, projection_texts, sparse, block_dims)


def _fit_linear(table, config, reference, projection_texts, sparse, block_dims):
    import scipy.sparse as sp

    x = table.embeddings
    mu = (reference if reference is not None else x).mean(axis=0)
    dense_blocks, sparse_blocks = representation_blocks(config.representation)
    scale = dense_scale(x - mu, config.standardize, block_dims, len(dense_blocks) + len(sparse_blocks))
    basis = x if projection_texts is None else np.vstack([x, projection_texts])
    projection = scale[:, None] * pca_projection((basis - mu) * scale, config.n_components)
    z = (x - mu) @ projection
    if sparse is not None:
        if config.objective != "pairwise":
            raise ValueError("n-gram blocks need the pairwise objective")
        factor = sparse_scale(sparse)
        design = sp.hstack([sp.csr_matrix(z), sparse * factor]).tocsr()
        diffs, soft = pairwise_differences(design, table)
        both = soft_logistic(diffs, soft, config.ridge)
        return mu, projection, both[:z.shape[1]], both[z.shape[1]:] * factor
    if config.objective == "pairwise":
        diffs, soft = pairwise_differences(z, table)
        beta = soft_logistic(diffs, soft, config.ridge)
    else:
        y = table.ctr
        if config.objective == "pointwise_relative":
            base = group_demean(y, table.groups, table.impressions)  # y - mean
            mean = y - base
            y = np.where(mean > 0, y / np.maximum(mean, 1e-12) - 1.0, 0.0)
        weights = table.impressions if config.weighting == "impressions" else np.ones_like(y)
        weights = weights / weights.mean()
        beta = fixed_effects_ridge(z, y, table.groups, weights, config.ridge)
    return mu, projection, beta, None


def _embedder_name(embedder) -> str:
    if embedder is None:
        return "all-MiniLM-L6-v2"
    return str(getattr(embedder, "model_id", None) or getattr(embedder, "name", None) or type(embedder).__name__)


# ----------------------------------------------------------------------------------------------------------------
# The user-facing model


class ContentRanker:
    """Predicts which arms of a new experiment will get the higher click-through rate, from their text alone.

    >>> ranker = ContentRanker().fit(load_experiments(split="train", merge_identical=("headline",)))
    >>> ranker.rank(["Headline A", "Headline B", "Headline C"])   # arm indices, best first
    """

    def __init__(self, config: RankerConfig | None = None, embedder=None, **overrides):
        self.config = config or RankerConfig(**overrides)
        if config is not None and overrides:
            raise TypeError("pass either a RankerConfig or keyword overrides, not both")
        self._embedder = embedder
        self.mu: np.ndarray | None = None
        self.projection: np.ndarray | None = None
        self.beta: np.ndarray | None = None
        self.ngrams: dict = {}               # n-gram block -> fitted HashedTfidf
        self.ngram_beta: dict = {}           # n-gram block -> coefficients (2^18,)
        self.metadata: dict = {}

    # -- embedding ------------------------------------------------------------------------------------------------
    @property
    def embedder(self):
        """The dense embedder of the representation (the sentence embedder for "minilm"), built on first use."""
        if self._embedder is None:
            self._embedder = dense_embedder(self.config.representation)
        return self._embedder

    def _sparse_features(self, texts: Sequence[str]):
        """The n-gram blocks of ``texts`` side by side (CSR), or None for a dense-only representation."""
        import scipy.sparse as sp

        if not self.ngrams:
            return None
        return sp.hstack([self.ngrams[b].transform(texts) for b in self.ngrams]).tocsr()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        # None lets the Embedder show a progress bar when many texts are not cached yet (the cold first fit).
        return np.asarray(self.embedder.encode(list(texts), show_progress=None if len(texts) > 2000 else False),
                          dtype=np.float64)

    # -- fitting ----------------------------------------------------------------------------------------------------
    def fit(self, experiments, *, reference_texts: Sequence[str] | None = None,
            projection_texts: Sequence[str] | None = None) -> "ContentRanker":
        experiments = list(experiments)
        table = arm_table(experiments, self.embed, self.config.fields)
        reference = self.embed([_clean(t) for t in reference_texts]) if reference_texts else None
        extra = self.embed([_clean(t) for t in projection_texts]) if projection_texts else None
        return self.fit_table(table, reference=reference, projection_embeddings=extra,
                              n_experiments=len(experiments))

    def fit_table(self, table: ArmTable, *, reference=None, projection_embeddings=None,
                  n_experiments: int | None = None) -> "ContentRanker":
        from abgym.ranker.ngrams import N_FEATURES, HashedTfidf

        sparse_blocks = representation_blocks(self.config.representation)[1]
        # The n-gram idf is fitted on the training arms' distinct texts only.
        self.ngrams = {b: HashedTfidf(b).fit(sorted(set(table.texts))) for b in sparse_blocks}
        sparse = self._sparse_features(table.texts) if sparse_blocks else None
        block_dims = getattr(self._embedder, "block_dims", None)
        self.mu, self.projection, self.beta, both = fit_linear(table, self.config, reference, projection_embeddings,
                                                               sparse=sparse, block_dims=block_dims)
        self.ngram_beta = ({b: both[i * N_FEATURES:(i + 1) * N_FEATURES] for i, b in enumerate(sparse_blocks)}
                           if both is not None else {})
        self.metadata = {"n_experiments": int(n_experiments or table.groups.max() + 1),
                         "n_arms": int(len(table.ctr)),
                         "embedding_dim": int(table.embeddings.shape[1]),
                         "embedder": _embedder_name(self._embedder),
                         "block_dims": [int(d) for d in block_dims] if block_dims else None,
                         "residual_scale": self._residual_scale(table)}
        return self

    def _residual_scale(self, table: ArmTable) -> float:
        """Standard deviation of predicted within-experiment score differences: the ranker's own unit."""
        scores = self.score_embeddings(table.embeddings) + self._ngram_scores(table.texts)
        spread = group_demean(scores, table.groups, np.ones_like(scores))
        return float(np.sqrt(np.mean(spread ** 2)) or 1.0)

    # -- prediction -----------------------------------------------------------------------------------------------
    def _require_fitted(self):
        if self.beta is None:
            raise RuntimeError("this ContentRanker is not fitted; call fit(experiments) or ContentRanker.load(path)")

    @property
    def direction(self) -> np.ndarray:
        """w = P beta (d,): score(t) = (phi(t) - mu) . w."""
        self._require_fitted()
        return self.projection @ self.beta

    def project(self, embeddings: np.ndarray) -> np.ndarray:
        """z = P^T (phi - mu): the q-dimensional coordinates the coefficients act on."""
        self._require_fitted()
        return (np.atleast_2d(embeddings) - self.mu) @ self.projection

    def _ngram_scores(self, texts: Sequence[str]) -> np.ndarray | float:
        if not self.ngram_beta:
            return 0.0
        return np.asarray(self._sparse_features(list(texts)) @ np.concatenate(list(self.ngram_beta.values())))

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Uncentred scores of ``texts``: the dense part (score_embeddings) plus the n-gram blocks' part, if any."""
        self._require_fitted()
        if isinstance(texts, str):
            raise TypeError("scores() takes a list of texts (one per arm), not a single string")
        if len(texts) == 0:
            return np.zeros(0)
        cleaned = [_clean(t) for t in texts]
        return self.score_embeddings(self.embed(cleaned)) + self._ngram_scores(cleaned)

    def score_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        """The dense part of the score, (phi - mu) P beta: all of it for a dense representation; with n-gram
        blocks, the part the attribute layer (which lives in the dense space) can explain."""
        embeddings = np.atleast_2d(embeddings)
        if embeddings.shape[1] != self.mu.shape[0]:
            raise ValueError(f"embeddings have dimension {embeddings.shape[1]} but the ranker was fitted on "
                             f"{self.mu.shape[0]}; load it with the embedder it was fitted with "
                             f"({self.metadata.get('embedder', '?')})")
        return self.project(embeddings) @ self.beta

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Relative predicted CTR of each text, centred on the texts' mean (only differences are meaningful)."""
        self._require_fitted()
        if isinstance(texts, str):
            raise TypeError("predict() takes a list of texts (one per arm), not a single string")
        scores = self.scores(texts)
        return scores - scores.mean() if len(scores) else scores

    def rank(self, texts: Sequence[str]) -> list[int]:
        """Arm indices, best predicted first (ties keep input order)."""
        return [int(i) for i in np.argsort(-self.predict(texts), kind="stable")]

    # -- persistence ----------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write a versioned .npz (arrays + a JSON metadata string; no pickled objects)."""
        self._require_fitted()
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        header = {"format": FORMAT, "version": FORMAT_VERSION, "config": asdict(self.config),
                  "metadata": self.metadata}
        buffer = io.BytesIO()
        ngram_arrays = {f"{kind}_{b}": values for b in self.ngrams
                        for kind, values in (("idf", self.ngrams[b].idf), ("ngram_beta", self.ngram_beta[b]))}
        np.savez_compressed(buffer, mu=self.mu, projection=self.projection, beta=self.beta,
                            header=np.array(json.dumps(header)), **ngram_arrays)
        with atomic_write(path) as handle:
            handle.write(buffer.getvalue())
        return path

    @classmethod
    def load(cls, path: str | Path, embedder=None) -> "ContentRanker":
        path = Path(path)
        if not path.is_file():
            raise RankerFileError(f"no ranker file at {path}; fit one with `abgym ranker fit --out {path}`")
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(str(data["header"]))
                arrays = {key: np.array(data[key]) for key in data.files if key != "header"}
        except (ValueError, KeyError, OSError, json.JSONDecodeError) as error:
            raise RankerFileError(f"{path} is not a ContentRanker file ({error}); refit and save it") from error
        if header.get("format") != FORMAT:
            raise RankerFileError(f"{path} holds {header.get('format')!r}, not a {FORMAT}")
        if header.get("version") != FORMAT_VERSION:
            raise RankerFileError(f"{path} is format version {header.get('version')}, this abgym reads version "
                                  f"{FORMAT_VERSION}; refit the ranker with this version")
        config = dict(header["config"])
        config["fields"] = tuple(config["fields"])
        # Files written before representations existed hold a MiniLM-only ranker, whatever today's default is.
        config.setdefault("representation", "minilm")
        config.setdefault("standardize", False)
        try:
            ranker = cls(RankerConfig(**config), embedder=embedder)
            ranker.mu, ranker.projection, ranker.beta = arrays["mu"], arrays["projection"], arrays["beta"]
            from abgym.ranker.ngrams import HashedTfidf
            for block in representation_blocks(ranker.config.representation)[1]:
                ranker.ngrams[block] = HashedTfidf(block, idf=arrays[f"idf_{block}"])
                ranker.ngram_beta[block] = arrays[f"ngram_beta_{block}"]
        except (KeyError, TypeError, ValueError) as error:
            raise RankerFileError(f"{path}: incomplete or inconsistent ranker ({error}); refit and save it") from error
        if ranker.projection.shape != (ranker.mu.shape[0], ranker.beta.shape[0]):
            raise RankerFileError(f"{path}: inconsistent array shapes {ranker.mu.shape}, "
                                  f"{ranker.projection.shape}, {ranker.beta.shape}")
        ranker.metadata = header.get("metadata", {})
        return ranker
