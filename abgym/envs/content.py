"""The campaign's content variants and the fixed-size features the environment shows for them.

Three content sources give the K variant texts: one real Upworthy experiment (default; its recorded click-through
rates calibrate the simulated users), variants written by the language model for a campaign brief (the
Prompt-Conditioned Generator, :func:`generate_variants`), or a list of texts the user supplies.

Generated text passes a marketing-copy filter (:func:`copy_rejection`): preambles such as "Here's a rewritten version
of your headline:", echoes of the prompt, fragments, lines cut off at the token limit, overlong or duplicate lines are rejected with a named reason and
generated again with a new seed; the counts by reason and the rejected texts are kept in the content's ``meta``.
With ``variant_ctr="ranker"`` the variants' population CTRs are the ranker's calibrated prior
(:func:`ranker_ctr`), so that generated copy is tied to what similar real headlines earned.

Each variant becomes two feature blocks, both on a fixed scale so that the user model's preference weights mean the
same thing whatever the source:

- ``embeddings``: the sentence embedding projected on the first ``embedding_dim`` principal components of a reference
  corpus (2,000 Upworthy headlines), whitened, so each coordinate has unit variance over real headlines;
- ``attributes``: the scores of an :class:`AttributeScorer` (the ranker's attribute space by default: marketing
  attributes such as urgency or curiosity gap), standardised over the same corpus.

Models are expensive and the features of a campaign never change, so everything is computed once and cached on disk
(atomically): the reference basis per embedder and scorer, the features per list of texts, the Upworthy experiment's
texts and counts, and the generated texts. Building an environment from a warm cache calls no model.
"""
from __future__ import annotations

import hashlib
import io
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np

from abgym.paths import atomic_write, cache_dir

DEFAULT_EXPERIMENT = "530e906bff24f84145000005"  # Matt Damon and the 13-year-old girl: 4 headlines, CTR 1.1%-8.4%
DEFAULT_ATTRIBUTES = ("curiosity_gap", "urgency", "social_proof", "heartwarming", "outrage", "humor",
                      "question_hook", "specific_numbers")
REFERENCE_SIZE = 2000  # headlines the PCA basis and the standardisation are fitted on
FEATURE_BOUND = 10.0  # standardised features are clipped to +-10, so that observation spaces are bounded
FEATURES_VERSION = 1  # bump when the feature computation changes, so that old caches are not read

EmbedFn = Callable[[Sequence[str]], np.ndarray]


class AttributeScorer(Protocol):
    """Anything that scores texts on named attributes, like :class:`abgym.ranker.attributes.AttributeSpace`.

    ``names`` (optional) labels the columns; ``cache_key`` (optional) is a string that changes whenever the scores
    would, so that features computed with this scorer can be cached on disk.
    """

    def scores(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True, eq=False)
class ContentFeatures:
    """The K variants of a campaign, with the features the environment observes and the user model reacts to."""

    texts: tuple[str, ...]
    source: str  # "upworthy" | "generated" | "texts"
    embeddings: np.ndarray  # (K, embedding_dim) float32, whitened principal components
    attributes: np.ndarray  # (K, n_attributes) float32, standardised attribute scores
    attribute_names: tuple[str, ...]
    target_ctr: np.ndarray | None = None  # (K,) population-average CTR the users are calibrated to, if known
    meta: dict = field(default_factory=dict)  # e.g. test_id, impressions, clicks, generation prompts

    @property
    def n_variants(self) -> int:
        return len(self.texts)

    @property
    def matrix(self) -> np.ndarray:
        """(K, n_attributes + embedding_dim): the content vector users' preference weights are dotted with."""
        return np.concatenate([self.attributes, self.embeddings], axis=1).astype(np.float64)


# ------------------------------------------------------------------------------------------------ cache helpers
def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _load_npz(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError):  # a corrupt cache file is recomputed, never trusted
        return None


def _save_npz(path: Path, **arrays) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with atomic_write(path) as handle:
        handle.write(buffer.getvalue())


def _load_json(path: Path):
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _save_json(path: Path, document) -> None:
    with atomic_write(path, "w") as handle:
        json.dump(document, handle, indent=1, ensure_ascii=False)


# --------------------------------------------------------------------------------------- source 1: Upworthy
def upworthy_variants(experiment: str | int = DEFAULT_EXPERIMENT, path=None) -> dict:
    """Headlines, impressions and clicks of one Upworthy experiment (arms with identical headlines merged).

    ``experiment`` is a ``clickability_test_id`` or an index into the loader's fixed order. The result is cached on
    disk per file (path, size, modification time), so that building an environment does not parse the archive.
    """
    from abgym.data import upworthy

    source = upworthy._resolve(path)
    stat = source.stat()
    key = _digest("upworthy", str(source), stat.st_size, stat.st_mtime_ns, experiment)
    cache_file = cache_dir("marketing", "upworthy") / f"{key}.json"
    cached = _load_json(cache_file)
    if cached is not None:
        return cached
    experiments = upworthy.load_experiments(source, merge_identical=("headline",))
    if isinstance(experiment, (int, np.integer)) and not isinstance(experiment, bool):
        if not 0 <= experiment < len(experiments):
            raise ValueError(f"experiment index {experiment} is out of range: {source} has {len(experiments)} "
                             f"experiments with at least 2 distinct headlines (0 to {len(experiments) - 1})")
        chosen = experiments[int(experiment)]
    else:
        matches = [e for e in experiments if e.test_id == str(experiment)]
        if not matches:
            raise ValueError(f"experiment {experiment!r} is not in {source} (or has fewer than 2 distinct "
                             f"headlines); pass a clickability_test_id from that file or an index, e.g. "
                             f"{experiments[0].test_id!r} or 0")
        chosen = matches[0]
    document = dict(test_id=chosen.test_id, test_week=int(chosen.test_week), texts=list(chosen.headlines),
                    impressions=[int(x) for x in chosen.impressions], clicks=[int(x) for x in chosen.clicks],
                    path=str(source))
    _save_json(cache_file, document)
    return document


def reference_headlines(size: int = REFERENCE_SIZE, path=None) -> list[str]:
    """A fixed sample of distinct headlines of the shipped Upworthy file: the corpus the feature scales come from."""
    from abgym.data import upworthy

    source = upworthy._resolve(path)
    stat = source.stat()
    cache_file = cache_dir("marketing", "upworthy") / f"reference-{_digest(str(source), stat.st_size, size)}.json"
    cached = _load_json(cache_file)
    if cached is not None:
        return cached
    packages, _ = upworthy.load_packages(source)
    headlines = sorted({upworthy._plain_text(h) for h in packages["headline"]} - {""})
    rng = np.random.default_rng(20140101)
    chosen = [headlines[i] for i in sorted(rng.choice(len(headlines), min(size, len(headlines)), replace=False))]
    _save_json(cache_file, chosen)
    return chosen


# ------------------------------------------------------------------------------- source 2: the LLM generator
TONES = ("warm", "playful", "serious", "bold")
URGENCY = ("no urgency", "high urgency")
INCENTIVES = ("no incentive", "a discount", "a free gift")
DEFAULT_BRIEF = "A reusable water bottle that keeps drinks cold for 24 hours, for people who commute by bike."


def default_targets(n_variants: int, seed: int = 0) -> list[dict]:
    """``n_variants`` distinct (tone, urgency, incentive) targets, drawn without repeats from the full grid."""
    grid = list(itertools.product(TONES, URGENCY, INCENTIVES))
    if n_variants > len(grid):
        raise ValueError(f"n_variants={n_variants}: the default target grid has {len(grid)} combinations; pass "
                         f"your own 'target_attributes' (a list of dicts) for more variants")
    order = np.random.default_rng(seed).permutation(len(grid))[:n_variants]
    return [dict(tone=grid[i][0], urgency=grid[i][1], incentive=grid[i][2]) for i in order]


def variant_prompt(brief: str, target: dict) -> str:
    """The prompt of one variant: the brief, then each target attribute as a constraint."""
    constraints = "\n".join(f"- {name}: {value}" for name, value in target.items())
    return (f"Write one short marketing headline for this campaign.\nCampaign: {brief}\n"
            f"The headline must have:\n{constraints}\nAnswer with the headline only.\nHeadline:")


_PREFIX = re.compile(r"^\s*(headline\s*\d*\s*[:\-]\s*)", re.IGNORECASE)


def clean_generation(text: str) -> str:
    """The first non-empty line, without a "Headline:" prefix, surrounding quotes or list markers."""
    for line in text.splitlines():
        line = _PREFIX.sub("", line).strip().strip("\"'“”*#-").strip()
        if line:
            return line[:200]
    return ""


# The marketing-copy filter. A small instruction model often answers around the headline instead of with it ("Here's a
# rewritten version of your headline:", "Sure! ...", "Campaign: ..."): such text is not a variant a campaign would
# show, and its features would put the users' reaction on a text no marketer wrote. The filter names why a text is
# rejected, so that the rejections can be counted and read (``meta["rejections"]``, ``meta["rejected"]``).
REJECTION_REASONS = ("empty", "no_letters", "prompt_echo", "meta_text", "cut_off", "trailing_colon", "too_short",
                     "too_long", "duplicate")
MIN_WORDS = 3  # "Stay cool, ride" is a headline; "Cold!" is not
MAX_CHARS = 150  # longer than nearly every Upworthy headline; clean_generation cuts at 200
MAX_WORDS = 25
GENERATION_VERSION = 3  # bump when the generation, the cleaning or the filter changes, so that old caches are not read
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
# Text about the headline rather than a headline: a preamble, a reply to the request, the word "headline" itself.
_META_START = re.compile(
    r"^(here'?s|here is|here are|sure\b|certainly|of course|absolutely|okay\b|ok\b|great\b|i'?d\b|i would|i can|"
    r"i'?ll\b|i will|i hope|as an ai|let me|below is|the following|this is (a|an|the|my|your) (new |revised )?"
    r"(headline|version|rewrite))", re.IGNORECASE)
_META_ANYWHERE = re.compile(
    r"\b(re-?written|rewrite|revised version|version of (your|the)|your (headline|campaign|request)|headlines?|"
    r"taglines?|slogan|as requested|hope this|let me know|marketing copy)\b", re.IGNORECASE)
# The prompt's own words (variant_prompt): instructions and "name: value" constraints.
_PROMPT_PHRASES = re.compile(r"campaign\s*:|the headline must|answer with|write one short|\b(no|high) urgency\b|"
                             r"\bno incentive\b", re.IGNORECASE)


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def copy_rejection(text: str, *, target: dict | None = None, brief: str = "", others: Sequence[str] = (),
                   cut_off: bool = False) -> str | None:
    """Why ``text`` is not usable marketing copy (one of :data:`REJECTION_REASONS`), or ``None`` if it is.

    ``target`` (the variant's constraints) and ``brief`` make an echo of the prompt recognisable; ``others`` are the
    variants accepted so far, which ``text`` must not repeat (compared on lower-cased words, punctuation ignored);
    ``cut_off`` says the generation stopped at its token limit inside this line (:func:`_cut_off`).
    """
    text = text.strip()
    if not text:
        return "empty"
    if not re.search(r"[^\W\d_]", text):
        return "no_letters"
    words = _words(text)
    keys = "|".join(re.escape(str(key)) for key in (target or {}))
    echoes_constraint = bool(keys) and re.search(rf"(^|\s|-)({keys})\s*:", text, re.IGNORECASE)
    brief_words = _words(brief)
    echoes_brief = len(brief_words) >= MIN_WORDS and " ".join(brief_words) in " ".join(words)
    if _PROMPT_PHRASES.search(text) or echoes_constraint or echoes_brief:
        return "prompt_echo"
    if _META_START.search(text) or _META_ANYWHERE.search(text):
        return "meta_text"
    if cut_off:
        return "cut_off"
    if text.endswith(":"):
        return "trailing_colon"
    if len(words) < MIN_WORDS:
        return "too_short"
    if len(text) > MAX_CHARS or len(words) > MAX_WORDS:
        return "too_long"
    if any(words == _words(other) for other in others):
        return "duplicate"
    return None


def _cut_off(reply: str, language_model, max_new_tokens: int) -> bool:
    """Whether the headline line of ``reply`` is where the generation hit ``max_new_tokens``: a headline cut mid-way
    ("... #Upcycle_Bike #Cab"). A reply that goes on to a second line finished its first one. Needs the model's
    ``tokenizer``; a model without one is never judged cut off. The count is the reply re-encoded, which can be a
    token or two shorter than what was generated, hence the margin."""
    tokenizer = getattr(language_model, "tokenizer", None)
    lines = [line for line in reply.splitlines() if line.strip()]
    if tokenizer is None or len(lines) != 1:
        return False
    return len(tokenizer.encode(reply, add_special_tokens=False)) >= max_new_tokens - 2


def _attempt_seed(seed: int, attempt: int) -> int:
    """The sampling seed of a retry: attempt 0 uses ``seed`` itself, later attempts fresh seeds derived from it."""
    if attempt == 0:
        return int(seed)
    return int(np.random.SeedSequence([int(seed), attempt]).generate_state(1)[0])


def generate_variants(brief: str, n_variants: int, *, language_model=None, model: str = "smollm2",
                      targets: Sequence[dict] | None = None, seed: int = 0, max_new_tokens: int = 32,
                      temperature: float = 0.7, max_attempts: int = 10) -> dict:
    """The Prompt-Conditioned Generator: K headlines for ``brief``, each conditioned on its target attributes.

    ``model`` is ``"smollm2"`` (SmolLM2-135M-Instruct, :meth:`LanguageModel.load`) or ``"tiny"`` (a tiny random
    model with the same code path, for tests). Every generation goes through :func:`copy_rejection`; a rejected
    variant is generated again with a new seed (:func:`_attempt_seed`), at most ``max_attempts`` times in all, and if
    one never passes a ``ValueError`` names the reasons and what to change. Generations are cached on disk by model,
    prompts, sampling settings and :data:`GENERATION_VERSION`, so a campaign is generated once.

    Returns ``{texts, prompts, targets, raw, model, seed, attempts, rejections, rejected}``: ``attempts`` per
    variant, ``rejections`` the count per reason (every reason, zeros included) and ``rejected`` each rejected text
    with its variant, attempt, seed, reason and the model's raw reply.
    """
    if not isinstance(brief, str) or not brief.strip():
        raise ValueError("content_source='generated' needs a non-empty 'brief' (the campaign description)")
    if int(n_variants) != n_variants or n_variants < 2:
        raise ValueError(f"n_variants must be a whole number >= 2, got {n_variants!r}")
    if model not in ("smollm2", "tiny"):
        raise ValueError(f"generator model {model!r} is unknown; use 'smollm2' (the real model) or 'tiny' (tests)")
    if isinstance(max_attempts, bool) or int(max_attempts) != max_attempts or max_attempts < 1:
        raise ValueError(f"max_attempts must be a whole number >= 1, got {max_attempts!r}")
    targets = list(targets) if targets is not None else default_targets(int(n_variants), seed)
    if len(targets) != n_variants or not all(isinstance(t, dict) and t for t in targets):
        raise ValueError(f"target_attributes must be a list of {n_variants} non-empty dicts (one per variant), "
                         f"e.g. [{{'tone': 'warm', 'urgency': 'high urgency'}}, ...]")
    brief = brief.strip()
    prompts = [variant_prompt(brief, target) for target in targets]
    # Greedy decoding (temperature 0) repeats itself whatever the seed: one attempt is all there is.
    attempts_allowed = int(max_attempts) if temperature > 0 else 1
    key = _digest("generated", GENERATION_VERSION, model, prompts, seed, max_new_tokens, temperature, attempts_allowed)
    cache_file = cache_dir("marketing", "generated") / f"{key}.json"
    cached = _load_json(cache_file)
    if cached is not None:
        return cached
    if language_model is None:
        from abgym.llm import LanguageModel

        language_model = LanguageModel.tiny(seed=seed) if model == "tiny" else LanguageModel.load()
    # The random-weight test model never ends a reply (it has learnt no end token): every reply would be "cut off".
    judge_cut_off = model != "tiny"
    texts, raw = [""] * len(prompts), [""] * len(prompts)
    attempts, rejected = [0] * len(prompts), []
    pending = list(range(len(prompts)))
    for attempt in range(attempts_allowed):
        attempt_seed = _attempt_seed(seed, attempt)
        replies = language_model.generate([prompts[i] for i in pending], max_new_tokens=max_new_tokens,
                                          temperature=temperature, seed=attempt_seed)
        still = []
        for index, reply in zip(pending, replies):
            attempts[index] += 1
            text = clean_generation(reply)
            reason = copy_rejection(text, target=targets[index], brief=brief, others=[t for t in texts if t],
                                    cut_off=judge_cut_off and _cut_off(reply, language_model, max_new_tokens))
            if reason is None:
                texts[index], raw[index] = text, reply
            else:
                rejected.append(dict(variant=index, attempt=attempt, seed=attempt_seed, reason=reason, text=text,
                                     raw=reply))
                still.append(index)
        pending = still
        if not pending:
            break
    rejections = {reason: sum(r["reason"] == reason for r in rejected) for reason in REJECTION_REASONS}
    if pending:
        failed = {i: sorted({r["reason"] for r in rejected if r["variant"] == i}) for i in pending}
        last = {i: [r["text"] for r in rejected if r["variant"] == i][-1] for i in pending}
        retry = ("raise 'generator_temperature' above 0 so that retries differ" if temperature <= 0
                 else "try another 'generator_seed'")
        raise ValueError(
            f"the generator ({model}) wrote no usable marketing copy for variant(s) {pending} in {attempts_allowed} "
            f"attempt(s) each: rejected as {failed} (last texts: {last}; all rejections: "
            f"{ {k: v for k, v in rejections.items() if v} }); {retry}, raise 'generator_max_new_tokens' if they "
            f"are 'cut_off', write a clearer 'brief', or give the variants yourself with "
            f"content_source='texts'")
    document = dict(texts=texts, prompts=prompts, targets=targets, raw=raw, model=model, seed=seed,
                    attempts=attempts, rejections=rejections, rejected=rejected, version=GENERATION_VERSION)
    _save_json(cache_file, document)
    return document


# ------------------------------------------------------------------------------------------------- features
def check_texts(texts) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
        raise ValueError("'texts' must be a list of at least 2 strings (one per variant), not "
                         f"{type(texts).__name__}")
    if len(texts) < 2:
        raise ValueError(f"'texts' must hold at least 2 variants, got {len(texts)}")
    bad = [i for i, text in enumerate(texts) if not isinstance(text, str) or not text.strip()]
    if bad:
        raise ValueError(f"'texts' entries {bad} are empty or not strings; every variant needs a text")
    return [text.strip() for text in texts]


class FeatureModels:
    """The embedder and attribute scorer, built only when a cache misses (the default embedder loads torch)."""

    def __init__(self, embed: EmbedFn | None = None, scorer: AttributeScorer | None = None,
                 attribute_names: Sequence[str] | None = DEFAULT_ATTRIBUTES):
        self._embed, self._scorer = embed, scorer
        self.custom = embed is not None or scorer is not None
        self.requested_names = tuple(attribute_names) if attribute_names is not None else None

    @property
    def cache_key(self) -> str | None:
        if not self.custom:
            from abgym.ranker.attributes import DEFAULT_LEXICON

            lexicon = hashlib.sha256(Path(DEFAULT_LEXICON).read_bytes()).hexdigest()[:16]
            return _digest("minilm+attribute-space", lexicon, self.requested_names)
        keys = [getattr(self._embed, "cache_key", None), getattr(self._scorer, "cache_key", None)]
        if self._embed is not None and keys[0] is None or self._scorer is not None and keys[1] is None:
            return None  # a custom model without a cache key: features are recomputed every time
        return _digest(keys, self.requested_names)

    def _default_embedder(self):
        if not hasattr(self, "_embedder"):
            from abgym.llm import Embedder

            self._embedder = Embedder()
        return self._embedder

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        fn = self._embed if self._embed is not None else self._default_embedder().encode
        vectors = np.asarray(fn(list(texts)), dtype=np.float64)
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise ValueError(f"the embedding function returned shape {vectors.shape} for {len(texts)} texts; it "
                             f"must return (n_texts, dim)")
        return vectors

    def scorer(self) -> AttributeScorer:
        if self._scorer is None:
            from abgym.ranker.attributes import AttributeSpace

            self._scorer = AttributeSpace(self._default_embedder())
        return self._scorer

    def attribute_scores(self, texts: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
        scorer = self.scorer()
        scores = np.asarray(scorer.scores(list(texts)), dtype=np.float64)
        if scores.ndim != 2 or len(scores) != len(texts):
            raise ValueError(f"the attribute scorer returned shape {scores.shape} for {len(texts)} texts; it must "
                             f"return (n_texts, n_attributes)")
        names = tuple(getattr(scorer, "names", None) or [f"attribute_{j}" for j in range(scores.shape[1])])
        if self.requested_names is None:
            return scores, names
        unknown = [name for name in self.requested_names if name not in names]
        if unknown:
            raise ValueError(f"attributes {unknown} are not scored by {type(scorer).__name__}; choose from "
                             f"{list(names)} or set 'attributes': None to use them all")
        columns = [names.index(name) for name in self.requested_names]
        return scores[:, columns], self.requested_names


def reference_space(models: FeatureModels, embedding_dim: int) -> dict:
    """PCA basis and standardisation of the reference corpus, cached per embedder, scorer and ``embedding_dim``."""
    key = models.cache_key
    cache_file = (cache_dir("marketing", "reference") / f"{_digest(key, embedding_dim, FEATURES_VERSION)}.npz"
                  if key is not None else None)
    cached = _load_npz(cache_file) if cache_file is not None else None
    if cached is not None:
        return cached
    corpus = reference_headlines()
    vectors = models.embed(corpus)
    if embedding_dim > min(vectors.shape):
        raise ValueError(f"embedding_dim={embedding_dim} exceeds the embedding width {vectors.shape[1]}")
    mean = vectors.mean(axis=0)
    _, singular, components = np.linalg.svd(vectors - mean, full_matrices=False)
    components = components[:embedding_dim]
    components *= np.sign(components[:, :1] + 1e-12)  # a fixed sign per component, so caches agree across runs
    coords = (vectors - mean) @ components.T
    scores, names = models.attribute_scores(corpus)
    space = dict(mean=mean, components=components, coord_std=coords.std(axis=0) + 1e-12,
                 attr_mean=scores.mean(axis=0), attr_std=scores.std(axis=0) + 1e-12,
                 names=np.array(names, dtype=str))
    if cache_file is not None:
        _save_npz(cache_file, **space)
    return space


def content_features(texts: Sequence[str], *, source: str, embedding_dim: int = 8, models: FeatureModels | None = None,
                     target_ctr=None, meta: dict | None = None) -> ContentFeatures:
    """Features of ``texts`` on the reference scale; cached on disk by texts, models and ``embedding_dim``."""
    models = models or FeatureModels()
    texts = check_texts(list(texts))
    key = models.cache_key
    cache_file = (cache_dir("marketing", "features") / f"{_digest(key, texts, embedding_dim, FEATURES_VERSION)}.npz"
                  if key is not None else None)
    cached = _load_npz(cache_file) if cache_file is not None else None
    if cached is None:
        space = reference_space(models, embedding_dim)
        vectors = models.embed(texts)
        embeddings = (vectors - space["mean"]) @ space["components"].T / space["coord_std"]
        scores, names = models.attribute_scores(texts)
        attributes = (scores - space["attr_mean"]) / space["attr_std"]
        cached = dict(embeddings=np.clip(embeddings, -FEATURE_BOUND, FEATURE_BOUND).astype(np.float32),
                      attributes=np.clip(attributes, -FEATURE_BOUND, FEATURE_BOUND).astype(np.float32),
                      names=np.array(names, dtype=str))
        if cache_file is not None:
            _save_npz(cache_file, **cached)
    target = None if target_ctr is None else np.asarray(target_ctr, dtype=np.float64)
    return ContentFeatures(texts=tuple(texts), source=source, embeddings=cached["embeddings"],
                           attributes=cached["attributes"], attribute_names=tuple(str(n) for n in cached["names"]),
                           target_ctr=target, meta=dict(meta or {}))


def _ranker_key(texts: list[str]) -> str:
    """The cache key of the ranker's CTRs: the texts, the default ranker's configuration and its fitted file, so that
    a refitted or reconfigured ranker is asked again instead of its predecessor's CTRs being served."""
    from abgym.ranker.prior import DEFAULT_CONFIG, DEFAULT_FILE

    fitted = cache_dir("ranker") / DEFAULT_FILE
    stamp = (fitted.stat().st_size, fitted.stat().st_mtime_ns) if fitted.is_file() else None
    return _digest(texts, repr(DEFAULT_CONFIG), stamp)


def ranker_ctr(texts: Sequence[str]) -> np.ndarray:
    """The ranker's prior mean CTR of each text (``variant_ctr="ranker"``): ``RankerPrior.default().ctr_prior``,
    a CTR calibrated on held-out Upworthy experiments; cached per list of texts and fitted ranker."""
    texts = list(texts)
    cached = _load_json(cache_dir("marketing", "ranker-ctr") / f"{_ranker_key(texts)}.json")
    if cached is None:
        from abgym.ranker.prior import RankerPrior

        cached = [float(x) for x in RankerPrior.default().ctr_prior(texts)[0]]
        _save_json(cache_dir("marketing", "ranker-ctr") / f"{_ranker_key(texts)}.json", cached)  # after any refit
    return np.asarray(cached)


def _target_ctr(variant_ctr, texts: Sequence[str], recorded: np.ndarray | None = None):
    if variant_ctr is None:
        return recorded
    if isinstance(variant_ctr, str):
        if variant_ctr == "ranker":
            return ranker_ctr(texts)
        if variant_ctr == "recorded" and recorded is not None:
            return recorded
        raise ValueError(f"variant_ctr {variant_ctr!r} is unknown; use None, 'ranker', 'recorded' (Upworthy only) "
                         f"or a list of one CTR per variant")
    return np.asarray(variant_ctr, dtype=np.float64)


def build_content(config: dict, *, embed: EmbedFn | None = None, scorer: AttributeScorer | None = None,
                  language_model=None) -> ContentFeatures:
    """The content of an environment from its config (keys: content_source, experiment, texts, brief, ...)."""
    source = config["content_source"]
    models = FeatureModels(embed, scorer, config["attributes"])
    dim = int(config["embedding_dim"])
    if source == "upworthy":
        doc = upworthy_variants(config["experiment"], config["upworthy_path"])
        clicks, impressions = np.asarray(doc["clicks"], float), np.asarray(doc["impressions"], float)
        recorded = clicks / impressions
        target = _target_ctr(config["variant_ctr"], doc["texts"], recorded)
        return content_features(doc["texts"], source=source, embedding_dim=dim, models=models, target_ctr=target,
                                meta=dict(test_id=doc["test_id"], impressions=doc["impressions"],
                                          clicks=doc["clicks"], recorded_ctr=recorded.tolist()))
    if source == "generated":
        doc = generate_variants(config["brief"], config["n_variants"], language_model=language_model,
                                model=config["generator_model"], targets=config["target_attributes"],
                                seed=config["generator_seed"], max_new_tokens=config["generator_max_new_tokens"],
                                temperature=config["generator_temperature"])
        return content_features(doc["texts"], source=source, embedding_dim=dim, models=models,
                                target_ctr=_target_ctr(config["variant_ctr"], doc["texts"]),
                                meta=dict(prompts=doc["prompts"], targets=doc["targets"], brief=config["brief"],
                                          generator_model=doc["model"], attempts=doc["attempts"],
                                          rejections=doc["rejections"], rejected=doc["rejected"]))
    if source == "texts":
        texts = check_texts(config["texts"])
        return content_features(texts, source=source, embedding_dim=dim, models=models,
                                target_ctr=_target_ctr(config["variant_ctr"], texts))
    raise ValueError(f"content_source {source!r} is unknown; use 'upworthy', 'generated' or 'texts'")
