"""Candidate protocols (uniform / popularity-band / popularity-weighted negatives), calibrated scoring, domains from
a RecBole dataset's fields, and the protocol recorded in every result."""
import json

import numpy as np
import pandas as pd
import pytest

from abgym.data.recbole import load_recbole
from abgym.data.recommendation import DEFAULT_BAND_SIZE, RatingsDataset, build_cases, prepare, user_generator
from abgym.envs import prompt_actions as pa
from abgym.envs.llm_recommender import LLMRecommender, PopularityRecommender, RankingContext
from abgym.envs.prompt_personalization import make_config, parallel_env
from abgym.metrics import ranking_metrics


def skewed_dataset(n_users=120, n_items=300, seed=0) -> RatingsDataset:
    """Item popularity falls off as a power law, users pick items by popularity: uniform negatives are mostly
    obscure, so the popularity ranking finds the target."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_items + 1) ** 1.1
    rows = []
    for user in range(n_users):
        items = rng.choice(n_items, size=15, replace=False, p=weights / weights.sum())
        rows += [(f"u{user}", f"i{item}", 5.0, float(t)) for t, item in enumerate(items)]
    frame = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    return RatingsDataset("skewed", "movies", frame, {f"i{i}": f"Title {i}" for i in range(n_items)})


def popularity_ndcg(data) -> float:
    ranker, scores = PopularityRecommender(), []
    for case in data.split("all"):
        context = RankingContext(popularity=tuple(float(data.popularity.get(i, 0)) for i in case.candidates))
        scores.append(ranking_metrics(ranker.rank("", [""] * len(case.candidates), context).order,
                                      case.target_index)["ndcg@10"])
    return float(np.mean(scores))


def test_popularity_band_takes_away_what_popularity_alone_can_find():
    dataset = skewed_dataset()
    uniform = prepare(dataset, negatives="uniform")
    band = prepare(dataset, negatives="popularity")
    weighted = prepare(dataset, negatives="popularity-weighted")
    assert uniform.negatives == "uniform" and band.negatives == "popularity"
    random_ndcg = np.mean([1 / np.log2(r + 2) for r in range(10)])  # the target at a uniformly random rank
    assert popularity_ndcg(uniform) > random_ndcg + 0.25
    # Matched negatives: popularity is much nearer chance (it keeps a little edge here at the top of a 300-item
    # catalogue, where no negative can be more popular than the most popular targets).
    assert popularity_ndcg(band) < random_ndcg + 0.15 and popularity_ndcg(band) < popularity_ndcg(uniform) - 0.15
    assert popularity_ndcg(weighted) < popularity_ndcg(uniform) - 0.15
    counts = band.popularity  # what the popularity baseline ranks by (targets held out)
    for case in band.split("all"):
        seen = set(dataset.interactions.loc[dataset.interactions["user"] == case.user_id, "item"])
        negatives = [i for i in case.candidates if i != case.target]
        assert not seen & set(negatives) and len(set(negatives)) == 9

        def gap(item):
            return abs(np.log1p(counts.get(item, 0)) - np.log1p(counts.get(case.target, 0)))

        unseen = sorted(gap(i) for i in dataset.titles if i not in seen)
        assert max(gap(i) for i in negatives) <= unseen[DEFAULT_BAND_SIZE - 1] + 1e-9  # from the target's band


def test_uniform_protocol_draws_exactly_what_it_always_did():
    """Uniform stays the same draw as before the protocols existed, so earlier results and caches still hold."""
    dataset = skewed_dataset(n_users=20)
    for case in build_cases(dataset, negatives="uniform", seed=3):
        rng = user_generator(3, case.user_id)
        seen = set(dataset.interactions.loc[dataset.interactions["user"] == case.user_id, "item"])
        items = np.array(sorted(dataset.titles))
        expected = rng.choice(items[~np.isin(items, list(seen))], size=9, replace=False).tolist()
        assert sorted(expected) == sorted(i for i in case.candidates if i != case.target)


def test_protocol_is_seeded_per_user_and_validated():
    dataset = skewed_dataset(n_users=30)
    first = {c.user_id: c.candidates for c in build_cases(dataset, negatives="popularity")}
    again = {c.user_id: c.candidates for c in build_cases(dataset, negatives="popularity")}
    assert first == again
    with pytest.raises(ValueError, match="unknown negatives protocol 'hard'"):
        build_cases(dataset, negatives="hard")
    with pytest.raises(ValueError, match="band_size must be"):
        build_cases(dataset, negatives="popularity", band_size=3)
    with pytest.raises(ValueError, match="unknown negatives protocol"):
        make_config({"negatives": "popular"})
    assert make_config()["negatives"] == "popularity"  # the default (docs/rpp.md says why)
    assert make_config()["language_model"] == "gemma3-270m"


class PriorModel:
    """Scores titles as a real model would if every prompt added the same prior: a title's log-likelihood is its
    prior (long titles unlikely) plus a bonus when the prompt mentions a word of it (what the prompt says)."""

    name = "prior-model"

    def __init__(self):
        self.score_calls = 0

    def score(self, prompt, continuations, chat=True):
        from abgym.llm.language_model import ScoreResult

        self.score_calls += 1
        tokens = np.array([len(c.split()) for c in continuations])
        prior = -3.0 * tokens  # per token: -3
        bonus = np.array([4.0 if c.split()[0].lower() in prompt.lower() else 0.0 for c in continuations])
        sums = prior + bonus
        return ScoreResult(sums, sums / tokens, tokens, [np.full(n, s / n) for n, s in zip(tokens, sums)])

    def rank(self, prompt, candidates, by="mean", chat=True):
        result = self.score(prompt, candidates, chat=chat)
        return list(np.argsort(-(result.mean_logprob if by == "mean" else result.sum_logprob), kind="stable"))


def test_calibrated_scoring_removes_the_titles_prior():
    titles = ["Up", "Heat", "The Long Goodbye Of Summer"]
    prompt = "The user loves goodbye stories.\nAnswer:"
    plain = LLMRecommender(PriorModel(), mode="score", by="sum").rank(prompt, titles)
    assert plain.order[-1] == 2  # the long title loses on its prior although the prompt asks for it
    model = PriorModel()
    calibrated = LLMRecommender(model, mode="calibrated", by="sum")
    assert calibrated.rank(prompt, titles).order[0] == 2  # minus the prior, only what the prompt adds is left
    calls = model.score_calls
    calibrated.rank("Another prompt about heat.\nAnswer:", titles)
    assert model.score_calls == calls + 1  # the priors were kept: one pass for the prompt only
    with pytest.raises(ValueError, match="unknown LLM ranking mode"):
        LLMRecommender(PriorModel(), mode="pmi")


def test_calibrated_scores_are_the_two_likelihoods_apart_on_a_real_model():
    from abgym.llm import LanguageModel

    lm = LanguageModel.tiny(seed=1)
    titles = ["Heat (1995)", "Toy Story (1995)", "Fargo (1996)"]
    recommender = LLMRecommender(lm, mode="calibrated", neutral_prompt="Recommend a movie.\nAnswer:")
    prompt = "You recommend movies.\nThe viewer liked Alien (1979).\nAnswer:"
    expected = (lm.score(prompt, titles).sum_logprob - lm.score("Recommend a movie.\nAnswer:", titles).sum_logprob) \
        / lm.score(prompt, titles).n_tokens
    np.testing.assert_allclose(recommender.calibrated_scores(prompt, titles), expected, rtol=1e-6)
    assert recommender.rank(prompt, titles).order == tuple(np.argsort(-expected, kind="stable"))


GAMES_INTER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "".join(
    f"p{u}\tg{(u * 7 + k) % 40}\t{4 + (k % 2)}\t{k}\n" for u in range(30) for k in range(12)
)
GAMES_ITEM = "item_id:token\tapp_name:token_seq\tpublisher:token\tprice:float\n" + "".join(
    f"g{i}\tQuest of Realm {i}\tStudio {i % 3}\t9.99\n" for i in range(40)
)


def test_second_recbole_dataset_gets_its_domain_from_its_fields(tmp_path):
    folder = tmp_path / "steam-mini"  # a name that says nothing: the publisher field says games
    folder.mkdir()
    (folder / "steam-mini.inter").write_text(GAMES_INTER)
    (folder / "steam-mini.item").write_text(GAMES_ITEM)
    assert load_recbole(folder).domain == "games"
    assert load_recbole(folder, domain="products").domain == "products"  # the flag wins
    env = parallel_env({"dataset": str(folder), "recommender": "popularity", "embedder": "hashing",
                        "negatives": "popularity", "rounds": 1})
    assert env.task.domain == "games" and env.task.data.negatives == "popularity"
    env.reset(seed=0)
    prompt = env.task.prompt(env.case, pa.HAND_WRITTEN)
    assert "video games to a player" in prompt and "Quest of Realm" in prompt
    flagged = parallel_env({"dataset": str(folder), "recommender": "popularity", "embedder": "hashing",
                            "domain": "products", "rounds": 1})
    flagged.reset(seed=0)
    assert "products to a shopper" in flagged.task.prompt(flagged.case, pa.HAND_WRITTEN)
    assert pa.neutral_prompt("games") == "Recommend a video game.\nAnswer:"


def test_evaluation_records_the_protocol_in_every_result(tmp_path):
    from abgym.studies.rpp_evaluation import EvaluationSettings, run_evaluation

    settings = EvaluationSettings(
        dataset="synthetic", recommender="synthetic", embedder="hashing", seeds=(0,), n_train=8, n_validation=3,
        n_test=4, rounds=1, episodes=4, n_search_users=2, n_enumeration_users=0, ablation=False,
        negatives="popularity-weighted",
    )
    run_evaluation(settings, tmp_path, quiet=True)
    assert set(pd.read_csv(tmp_path / "per_user.csv")["negatives"]) == {"popularity-weighted"}
    assert set(pd.read_csv(tmp_path / "summary.csv")["negatives"]) == {"popularity-weighted"}
    assert json.loads((tmp_path / "run.json").read_text())["protocol"]["negatives"] == "popularity-weighted"
    assert (tmp_path / "summary.md").read_text().startswith("Candidates: popularity-weighted negatives")


def test_command_line_takes_the_protocol(tmp_path, capsys):
    from abgym.cli import main

    code = main(["rpp", "evaluate", "--dataset", "synthetic", "--recommender", "synthetic", "--embedder", "hashing",
                 "--negatives", "uniform", "--seeds", "0", "--train-users", "6", "--validation-users", "2",
                 "--test-users", "3", "--rounds", "1", "--episodes", "2", "--search-users", "2",
                 "--enumeration-users", "0", "--no-ablation", "--no-rpp-plus", "--out", str(tmp_path)])
    assert code == 0 and "Candidates: uniform negatives" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["rpp", "evaluate", "--negatives", "hard", "--out", str(tmp_path)])


def test_summary_pairs_with_the_best_fixed_prompt_too():
    from abgym.studies.rpp_evaluation import markdown_table, summarize

    rows = [{"method": m, "seed": 0, "user_id": u, "ndcg@10": v, "hr@1": 0, "hr@3": 0}
            for m, values in (("hand-written", (0.2, 0.4, 0.6)), ("best-fixed", (0.3, 0.4, 0.8)),
                              ("rpp", (0.5, 0.5, 0.8)))
            for u, v in zip("abc", values)]
    summary = {e["method"]: e for e in summarize(rows, [])}
    assert summary["rpp"]["ndcg@10_vs_best_fixed"] == pytest.approx(0.1)  # 0.2, 0.1, 0.0
    assert summary["rpp"]["ndcg@10_vs_hand_written"] == pytest.approx(0.2)
    assert summary["best-fixed"]["ndcg@10_vs_best_fixed"] == 0.0
    table = markdown_table(list(summary.values()))
    assert "| rpp | 3 | 0.600 [" in table and "| +0.200 [" in table and "| +0.100 [" in table
    assert table.count("(reference)") == 2
