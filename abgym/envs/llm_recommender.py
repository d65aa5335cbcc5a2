"""Recommenders that rank a candidate list given a prompt: the frozen LLM of RPP, and the non-LLM baselines.

Every recommender answers ``rank(prompt, candidates, context) -> Ranking``. The LLM ranks from the prompt alone;
``context`` (the user case and the prompt's actions) is there for the baselines and for the synthetic recommender
of the tests, which needs to know the target to make a problem whose best prompt is known.

The LLM has three modes:
- ``"score"`` (default): the likelihood of each candidate title as the model's answer to the prompt
  (``LanguageModel.rank``, mean log-probability per token, chat template); always a full ranking. The prompt does not
  list the candidates in this mode (``lists_candidates``).
- ``"calibrated"``: the same likelihood minus the title's likelihood after a neutral prompt that says nothing about
  the user (``neutral_prompt``: "Recommend a movie." and the answer cue), i.e. log p(title | prompt) -
  log p(title | neutral), per token. A title's prior likelihood (short, famous, well-tokenized titles are likely
  after any prompt) is the same for every prompt and user, so it dominates plain scoring and drowns what the prompt
  says; calibration leaves only what the prompt adds (the pointwise mutual information, as in "Calibrate Before
  Use", Zhao et al. 2021). The priors are computed once per title and kept in memory.
- ``"generate"``: the model writes an answer, parsed as an ordered list of candidate numbers or titles. Candidates it
  does not mention are not ranked; an answer naming none is *unparsable*: it scores 0 and is counted in ``stats``.

Rankings are cached by (model, mode, prompt, candidates) in memory and, with ``cache_path``, on disk (an SQLite
store, :class:`abgym.llm.json_store.JsonStore`, written by :meth:`LLMRecommender.flush`; any number of processes
share it without losing an entry), so that revisiting a prompt costs nothing, across runs too.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from abgym.llm.json_store import JsonStore


@dataclass(frozen=True)
class Ranking:
    order: tuple[int, ...]  # candidate indices, best first; may be partial in generation mode
    parsed: bool = True  # False: the answer named no candidate
    answer: str | None = None  # the generated text (generation mode)


@dataclass(frozen=True)
class RankingContext:
    target_index: int | None = None
    actions: tuple[int, ...] | None = None
    user_id: str | None = None
    popularity: tuple[float, ...] | None = None  # per candidate, for the popularity baseline


class Recommender(Protocol):
    name: str

    def rank(self, prompt: str, candidates: Sequence[str], context: RankingContext | None = None) -> Ranking: ...


@dataclass
class RankerStats:
    calls: int = 0
    cache_hits: int = 0
    unparsable: int = 0  # generation answers naming no candidate
    partial: int = 0  # generation answers naming some but not all candidates


def ranking_key(model_id: str, mode: str, prompt: str, candidates: Sequence[str]) -> str:
    payload = json.dumps([model_id, mode, prompt, list(candidates)], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


MODES = ("score", "calibrated", "generate")

_NUMBER = re.compile(r"(?<![\d.])(\d{1,3})(?![\d])")


def parse_ranking(answer: str, candidates: Sequence[str]) -> tuple[int, ...]:
    """Candidate indices in the order the answer mentions them, by title (case-insensitive) or by list number.

    Titles win when the answer names any, since a title can hold numbers (years, sequels)."""
    text = answer.lower()
    found: dict[int, int] = {}
    for index, title in enumerate(candidates):
        key = title.lower().strip()
        short = re.sub(r"\s*\(\d{4}\)$", "", key)  # "Heat (1995)" is also found as "heat"
        positions = [p for p in (text.find(key), text.find(short) if len(short) >= 4 else -1) if p >= 0]
        if positions:
            found[index] = min(positions)
    if found:
        return tuple(sorted(found, key=found.get))
    order: list[int] = []
    for match in _NUMBER.finditer(answer):
        number = int(match.group(1))
        if 1 <= number <= len(candidates) and number - 1 not in order:
            order.append(number - 1)
    return tuple(order)


class LLMRecommender:
    """The frozen language model as a recommender (see the module docstring for the modes)."""

    def __init__(
        self,
        language_model,
        *,
        mode: str = "score",
        by: str = "mean",
        max_new_tokens: int = 48,
        cache_path: str | Path | None = None,
        model_id: str | None = None,
        flush_every: int = 200,
        chat: bool = True,
        neutral_prompt: str = "Recommend a movie.\nAnswer:",
    ):
        if mode not in MODES:
            raise ValueError(f"unknown LLM ranking mode {mode!r}; choose from {MODES}")
        if by not in ("mean", "sum"):
            raise ValueError(f"unknown likelihood aggregate {by!r}; choose 'mean' or 'sum'")
        self.lm = language_model
        self.mode, self.by, self.max_new_tokens, self.chat = mode, by, max_new_tokens, chat
        self.neutral_prompt = neutral_prompt
        self._priors: dict[str, tuple[float, int]] = {}  # title -> (sum log p(title | neutral), tokens)
        self.model_id = model_id or getattr(language_model, "name", None) or type(language_model).__name__
        self.name = f"llm-{mode}"
        # Scoring gives the candidates as the answers to score, so the prompt need not list them (see
        # prompt_actions.assemble_prompt); a generated answer can only name candidates the prompt lists.
        self.lists_candidates = mode == "generate"  # (calibrated scoring scores them as answers too)
        self.stats = RankerStats()
        self.store = JsonStore(cache_path) if cache_path else None
        self.cache_path = self.store.path if self.store is not None else None
        self.flush_every = flush_every
        self._cache: dict[str, list] = self.store.load_all() if self.store is not None else {}
        self._unsaved: dict[str, list] = {}

    def rank(self, prompt: str, candidates: Sequence[str], context: RankingContext | None = None) -> Ranking:
        self.stats.calls += 1
        mode_key = f"{self.mode}/{self.by}" + ("" if self.chat else "/raw")
        if self.mode == "calibrated":
            mode_key += "/" + self.neutral_prompt
        key = ranking_key(self.model_id, mode_key, prompt, candidates)
        if key not in self._cache and self.store is not None:
            stored = self.store.get(key)  # another process may have ranked it since this one started
            if stored is not None:
                self._cache[key] = stored
        if key in self._cache:
            self.stats.cache_hits += 1
            order, parsed, answer = self._cache[key]
        else:
            order, parsed, answer = self._rank_uncached(prompt, list(candidates))
            self._cache[key] = self._unsaved[key] = [list(order), parsed, answer]
            if self.store is not None and len(self._unsaved) >= self.flush_every:
                self.flush()
        if self.mode == "generate" and not parsed:
            self.stats.unparsable += 1
        elif self.mode == "generate" and len(order) < len(candidates):
            self.stats.partial += 1
        return Ranking(tuple(int(i) for i in order), bool(parsed), answer)

    def _continuations(self, candidates: Sequence[str]) -> list[str]:
        return list(candidates) if self.chat else [f" {c}" for c in candidates]  # raw text: after "Answer:" a space

    def prior(self, candidates: Sequence[str]) -> np.ndarray:
        """Sum log p(title | neutral prompt) per candidate (memoised per title) for calibrated scoring."""
        missing = [c for c in dict.fromkeys(candidates) if c not in self._priors]
        if missing:
            result = self.lm.score(self.neutral_prompt, self._continuations(missing), chat=self.chat)
            for title, total, count in zip(missing, result.sum_logprob, result.n_tokens):
                self._priors[title] = (float(total), int(count))
        return np.array([self._priors[c][0] for c in candidates])

    def calibrated_scores(self, prompt: str, candidates: Sequence[str]) -> np.ndarray:
        """log p(title | prompt) - log p(title | neutral prompt), per token (``by="mean"``) or in total."""
        result = self.lm.score(prompt, self._continuations(candidates), chat=self.chat)
        gain = result.sum_logprob - self.prior(candidates)
        return gain / result.n_tokens if self.by == "mean" else gain

    def _rank_uncached(self, prompt: str, candidates: list[str]):
        if self.mode == "calibrated":
            order = np.argsort(-self.calibrated_scores(prompt, candidates), kind="stable")
            return [int(i) for i in order], True, None
        if self.mode == "score":
            # The model's chat template makes the prompt the user's turn; each title is scored as the start of the
            # assistant's answer.
            if self.chat:
                order = self.lm.rank(prompt, list(candidates), by=self.by)
            else:  # raw text: the title continues "Answer:" after a space
                order = self.lm.rank(prompt, [f" {c}" for c in candidates], by=self.by, chat=False)
            return [int(i) for i in order], True, None
        answer = self.lm.generate([prompt], max_new_tokens=self.max_new_tokens, temperature=0.0, seed=0,
                                  **({} if self.chat else {"chat": False}))[0]
        order = parse_ranking(answer, candidates)
        return list(order), bool(order), answer

    def flush(self) -> None:
        """Write the new rankings to the store in one transaction; a no-op without ``cache_path`` or new entries.

        Writers queue on SQLite's lock and add rows, so runs sharing a cache never erase each other's rankings
        (values for one key are identical: rankings are deterministic)."""
        if self.store is None or not self._unsaved:
            return
        self.store.put_many(self._unsaved.items())
        self._unsaved = {}

    def __len__(self) -> int:
        return len(self._cache)


class PopularityRecommender:
    """Ranks by the number of interactions each candidate has in the data (targets excluded)."""

    name = "popularity"

    def rank(self, prompt, candidates, context: RankingContext | None = None) -> Ranking:
        if context is None or context.popularity is None:
            raise ValueError("the popularity recommender needs context.popularity (one count per candidate)")
        counts = np.asarray(context.popularity, dtype=float)
        return Ranking(tuple(int(i) for i in np.argsort(-counts, kind="stable")))


class RandomRecommender:
    """A uniformly random ranking, seeded by the seed and the prompt and candidates (same input, same ranking)."""

    name = "random-ranking"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def rank(self, prompt, candidates, context: RankingContext | None = None) -> Ranking:
        digest = int(ranking_key(str(self.seed), "random", prompt, candidates)[:16], 16)
        return Ranking(tuple(int(i) for i in np.random.default_rng(digest).permutation(len(candidates))))


class SyntheticPromptRecommender:
    """A made-up recommender whose quality depends on the prompt's actions, with a known best prompt (for tests).

    Each pattern whose action equals ``best_actions`` raises the quality q by 1/4, and the target's rank falls from
    about ``n - 1`` (q = 0) to 0 (q = 1): rank ``floor((1 - q) * (n - 1) + noise * u)``, u uniform in [0, 1), clipped.
    The other candidates are shuffled. Draws are seeded by the prompt and candidates. It reads the target from the
    context: it is an oracle-made benchmark with a known best prompt, not a recommender.
    """

    name = "synthetic"

    def __init__(self, best_actions: Sequence[int] = (3, 2, 7, 1), seed: int = 0, noise: float = 2.0):
        self.best_actions = tuple(best_actions)
        self.seed = seed
        self.noise = noise

    def quality(self, actions: Sequence[int]) -> float:
        return float(np.mean([a == b for a, b in zip(actions, self.best_actions)]))

    def rank(self, prompt, candidates, context: RankingContext | None = None) -> Ranking:
        if context is None or context.target_index is None or context.actions is None:
            raise ValueError("the synthetic recommender needs context.target_index and context.actions")
        n = len(candidates)
        rng = np.random.default_rng(int(ranking_key(str(self.seed), "synthetic", prompt, candidates)[:16], 16))
        quality = self.quality(context.actions)
        target_rank = int(np.clip(np.floor((1 - quality) * (n - 1) + self.noise * rng.random()), 0, n - 1))
        if quality == 1.0:
            target_rank = 0
        others = [i for i in rng.permutation(n).tolist() if i != context.target_index]
        others.insert(target_rank, context.target_index)
        return Ranking(tuple(others))


@dataclass
class SentenceRewriter:
    """RPP+'s refinement: the language model rewrites a chosen sentence; answers are cached per sentence.

    A rewrite that is empty, has no letters, or is over three times longer than the sentence is rejected (the
    original is kept) and counted in ``rejected``, so a small model's failures show in the results."""

    language_model: object
    max_new_tokens: int = 48
    cache: dict[str, str] = field(default_factory=dict)
    rejected: int = 0
    cache_path: Path | None = None
    chat: bool = True  # False for a base model (Gemma 3 270M): the instruction is continued as raw text

    def __post_init__(self):
        self._store = JsonStore(self.cache_path) if self.cache_path else None
        if self._store is not None:
            self.cache.update(self._store.load_all())

    def instruction(self, sentence: str) -> str:
        return (
            "Rewrite the following instruction for a recommendation assistant so that it is clearer and more "
            "specific. Keep its meaning. Answer with the rewritten instruction only.\n\n"
            f"Instruction: {sentence}\nRewritten instruction:"
        )

    def rewrite(self, sentence: str) -> str:
        """The rewritten sentence, or the sentence itself when the rewrite is rejected (counted per call)."""
        if sentence not in self.cache:
            answer = self.language_model.generate(
                [self.instruction(sentence)], max_new_tokens=self.max_new_tokens, temperature=0.0, seed=0,
                **({} if self.chat else {"chat": False}),
            )[0]
            self.cache[sentence] = answer
            if self._store is not None:
                self._store.put_many([(sentence, answer)])
        answer = self.cache[sentence].strip().split("\n")[0].strip().strip('"')
        if not answer or not re.search(r"[A-Za-z]", answer) or len(answer) > 3 * len(sentence) + 20:
            self.rejected += 1
            return sentence
        return answer
