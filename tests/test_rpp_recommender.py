"""The LLM recommender: answer parsing, the ranking cache, counted unparsable answers, baselines."""
import json

import numpy as np
import pytest

from abgym.envs.llm_recommender import (
    LLMRecommender,
    PopularityRecommender,
    RandomRecommender,
    RankingContext,
    SentenceRewriter,
    SyntheticPromptRecommender,
    parse_ranking,
)
from abgym.llm.json_store import JsonStore

TITLES = ["Heat (1995)", "Toy Story (1995)", "Se7en (1995)", "Fargo (1996)"]


@pytest.mark.parametrize(
    "answer, order",
    [
        ("1. Fargo (1996)\n2. Heat (1995)", (3, 0)),
        ("I would pick toy story, then fargo.", (1, 3)),
        ("3, 1, 4, 2", (2, 0, 3, 1)),
        ("[2] then [2] then [9] then [1]", (1, 0)),  # repeats and out-of-range numbers dropped
        ("No idea, sorry.", ()),
    ],
)
def test_parse_ranking(answer, order):
    assert parse_ranking(answer, TITLES) == order


class CountingModel:
    """Records calls; ranks by title length (a stand-in for the model in cache tests only)."""

    name = "counting"

    def __init__(self, answer="2, 1"):
        self.rank_calls, self.generate_calls, self.answer = 0, 0, answer

    def rank(self, prompt, candidates, by="mean"):
        self.rank_calls += 1
        return list(np.argsort([len(c) for c in candidates], kind="stable"))

    def generate(self, prompts, max_new_tokens=64, temperature=0.0, seed=0):
        self.generate_calls += 1
        return [self.answer] * len(prompts)


def test_cache_in_memory_and_on_disk(tmp_path):
    model, path = CountingModel(), tmp_path / "rankings.json"
    recommender = LLMRecommender(model, cache_path=path)
    first = recommender.rank("prompt", TITLES)
    assert recommender.rank("prompt", TITLES) == first and model.rank_calls == 1
    recommender.rank("other prompt", TITLES)
    assert model.rank_calls == 2 and recommender.stats.cache_hits == 1
    recommender.flush()
    assert recommender.cache_path == tmp_path / "rankings.sqlite" and len(JsonStore(path)) == 2
    reloaded = LLMRecommender(model, cache_path=path)
    assert reloaded.rank("prompt", TITLES) == first and model.rank_calls == 2
    assert not list(tmp_path.glob("*.tmp"))


def test_two_writers_merge_their_caches(tmp_path):
    path = tmp_path / "rankings.json"
    first, second = LLMRecommender(CountingModel(), cache_path=path), LLMRecommender(CountingModel(), cache_path=path)
    first.rank("a", TITLES)
    second.rank("b", TITLES)
    first.flush()
    second.flush()
    assert len(JsonStore(path)) == 2
    model = CountingModel()
    assert LLMRecommender(model, cache_path=path).rank("b", TITLES) and model.rank_calls == 0


def _write_rankings(path, start, count):
    recommender = LLMRecommender(CountingModel(), cache_path=path, flush_every=1)
    for i in range(start, start + count):
        recommender.rank(f"prompt {i}", TITLES)


def test_concurrent_writers_keep_every_entry(tmp_path):
    """Issue 18: two processes flushing after every ranking lost 2 of 600 entries with the JSON file."""
    import multiprocessing

    path = tmp_path / "rankings.json"
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_write_rankings, args=(path, start, 300)) for start in (0, 300)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)
        assert writer.exitcode == 0
    assert len(JsonStore(path)) == 600


def test_legacy_json_cache_is_imported_and_stale_temp_files_removed(tmp_path):
    import os
    import time

    path = tmp_path / "rankings.json"
    writer = LLMRecommender(CountingModel())
    writer.rank("old prompt", TITLES)
    path.write_text(json.dumps(writer._cache))
    stale, fresh = tmp_path / ".rankings.json.abc123.tmp", tmp_path / ".rankings.json.def456.tmp"
    stale.write_bytes(b"x" * 1000)
    fresh.write_bytes(b"x")
    hour_ago = time.time() - 3600
    os.utime(stale, (hour_ago, hour_ago))
    model = CountingModel()
    LLMRecommender(model, cache_path=path).rank("old prompt", TITLES)
    assert model.rank_calls == 0  # the JSON cache's entry was kept
    assert not stale.exists() and fresh.exists()  # a recent temp file may belong to a live writer


def test_corrupt_cache_is_named(tmp_path):
    path = tmp_path / "rankings.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="corrupt.*delete it"):
        LLMRecommender(CountingModel(), cache_path=path)
    (tmp_path / "other.sqlite").write_bytes(b"not a database at all, just bytes" * 100)
    with pytest.raises(ValueError, match="corrupt.*delete it"):
        LLMRecommender(CountingModel(), cache_path=tmp_path / "other.sqlite")


def test_generation_mode_counts_unparsable_and_partial_answers():
    recommender = LLMRecommender(CountingModel("2, 1"), mode="generate")
    ranking = recommender.rank("p", TITLES)
    assert ranking.order == (1, 0) and ranking.parsed and recommender.stats.partial == 1
    silent = LLMRecommender(CountingModel("I cannot help with that."), mode="generate")
    ranking = silent.rank("p", TITLES)
    assert ranking.order == () and not ranking.parsed and silent.stats.unparsable == 1
    silent.rank("p", TITLES)  # a cached unparsable answer still counts
    assert silent.stats.unparsable == 2


def test_unknown_mode():
    with pytest.raises(ValueError, match="unknown LLM ranking mode"):
        LLMRecommender(CountingModel(), mode="beam")


def test_baselines():
    popular = PopularityRecommender().rank("p", TITLES, RankingContext(popularity=(5, 50, 1, 20)))
    assert popular.order == (1, 3, 0, 2)
    with pytest.raises(ValueError, match="popularity"):
        PopularityRecommender().rank("p", TITLES)
    random = RandomRecommender(seed=3)
    assert random.rank("p", TITLES) == random.rank("p", TITLES)
    assert sorted(random.rank("p", TITLES).order) == [0, 1, 2, 3]


def test_synthetic_recommender_rewards_the_known_best_prompt():
    synthetic = SyntheticPromptRecommender(best_actions=(1, 1, 1, 1))
    titles = [f"T{i}" for i in range(10)]
    best = synthetic.rank("a", titles, RankingContext(target_index=4, actions=(1, 1, 1, 1)))
    assert best.order[0] == 4 and sorted(best.order) == list(range(10))
    worst = synthetic.rank("b", titles, RankingContext(target_index=4, actions=(0, 0, 0, 0))).order
    assert worst.index(4) == 9  # matches no pattern: last
    half = [synthetic.rank(f"p{i}", titles, RankingContext(target_index=4, actions=(1, 1, 0, 0))).order.index(4)
            for i in range(100)]
    assert 4 <= min(half) and max(half) <= 6  # two patterns of four: the middle


def test_rewriter_rejects_bad_rewrites_and_caches(tmp_path):
    model = CountingModel("")
    rewriter = SentenceRewriter(model, cache_path=tmp_path / "rewrites.json")
    assert rewriter.rewrite("Rank the movies.") == "Rank the movies." and rewriter.rejected == 1
    model.answer = "Order the films from best to worst."
    assert rewriter.rewrite("Rank the movies.") == "Rank the movies."  # cached answer, model not asked again
    assert model.generate_calls == 1
    assert SentenceRewriter(model).rewrite("Pick one.") == "Order the films from best to worst."


def test_tiny_language_model_ranks_every_candidate():
    from abgym.llm import LanguageModel

    model = LanguageModel.tiny(seed=0)
    recommender = LLMRecommender(model)
    ranking = recommender.rank("You recommend movies.\nAnswer:", TITLES)
    assert sorted(ranking.order) == [0, 1, 2, 3]
    generated = LLMRecommender(model, mode="generate", max_new_tokens=8).rank("Rank:", TITLES)
    assert generated.parsed == bool(generated.order)
