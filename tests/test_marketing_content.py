"""Content sources of PersonalizedMarketing-v0: user texts, the LLM generator, plug-in feature models, caches."""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import abgym  # noqa: F401
from abgym.envs import content
from abgym.envs.personalized_marketing import PersonalizedMarketingEnv
from abgym.envs.users import population_average_ctr

TEXTS = ["Save 20% today only on running shoes", "Why do runners love these shoes? Find out",
         "Our lightest shoe yet, built for your daily run"]


class HashingEmbed:
    """A cheap deterministic embedder (character trigrams hashed into 64 dimensions): a plug-in for tests."""

    cache_key = "test-hashing-64-v1"

    def __call__(self, texts):
        from sklearn.feature_extraction.text import HashingVectorizer

        vectors = HashingVectorizer(n_features=64, analyzer="char_wb", ngram_range=(3, 3),
                                    alternate_sign=False).transform(texts).toarray()
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


class KeywordScorer:
    """Scores texts by keyword counts: an AttributeScorer plug-in with named columns."""

    names = ["urgency", "curiosity", "incentive"]
    cache_key = "test-keywords-v1"
    KEYWORDS = {"urgency": ("today", "now", "only"), "curiosity": ("why", "?", "find out"),
                "incentive": ("save", "%", "free")}

    def scores(self, texts):
        return np.array([[sum(text.lower().count(word) for word in self.KEYWORDS[name]) for name in self.names]
                         for text in texts], dtype=float)


PLUG_INS = dict(embed=HashingEmbed(), attribute_scorer=KeywordScorer())


def test_user_texts_with_plug_in_feature_models():
    env = PersonalizedMarketingEnv(config=dict(content_source="texts", texts=TEXTS, attributes=None), **PLUG_INS)
    obs, info = env.reset(seed=0)
    assert info["variant_texts"] == TEXTS and info["attribute_names"] == KeywordScorer.names
    assert obs["variants"].shape == (3, 8 + 3)
    assert env.observation_space.contains(obs)
    # Without recorded CTRs every variant starts from base_ctr; content and preferences make them differ.
    quality = env.unwrapped.worlds.population.quality
    np.testing.assert_allclose(quality, np.log(0.03 / 0.97))


def test_given_variant_ctr_is_calibrated_exactly():
    target = [0.01, 0.05, 0.02]
    env = PersonalizedMarketingEnv(config=dict(content_source="texts", texts=TEXTS, attributes=None,
                                               variant_ctr=target), **PLUG_INS)
    worlds = env.worlds
    achieved = population_average_ctr(worlds.population, worlds.population.quality, 0.7, 200)
    np.testing.assert_allclose(achieved, target, rtol=1e-6)


def test_features_are_cached_and_the_cache_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("ABGYM_CACHE_DIR", str(tmp_path))
    calls = []

    class CountingEmbed(HashingEmbed):
        def __call__(self, texts):
            calls.append(len(texts))
            return super().__call__(texts)

    models = content.FeatureModels(CountingEmbed(), KeywordScorer(), None)
    first = content.content_features(TEXTS, source="texts", models=models)
    assert calls  # the reference corpus and the texts were embedded
    calls.clear()
    second = content.content_features(TEXTS, source="texts", models=models)
    assert not calls
    np.testing.assert_array_equal(first.embeddings, second.embeddings)
    # A corrupt cache file is recomputed, not trusted.
    for path in (tmp_path / "marketing" / "features").glob("*.npz"):
        path.write_bytes(b"not a zip file")
    third = content.content_features(TEXTS, source="texts", models=models)
    assert calls
    np.testing.assert_array_equal(first.attributes, third.attributes)


def test_bad_content_inputs_name_the_problem():
    with pytest.raises(ValueError, match="needs config 'texts'"):
        PersonalizedMarketingEnv(config=dict(content_source="texts"), **PLUG_INS)
    with pytest.raises(ValueError, match="at least 2"):
        PersonalizedMarketingEnv(config=dict(content_source="texts", texts=["only one"]), **PLUG_INS)
    with pytest.raises(ValueError, match=r"entries \[1\] are empty"):
        PersonalizedMarketingEnv(config=dict(content_source="texts", texts=["a", "  "]), **PLUG_INS)
    with pytest.raises(ValueError, match="content_source 'rss' is unknown"):
        gym.make("abgym/PersonalizedMarketing-v0", config=dict(content_source="rss"))
    with pytest.raises(ValueError, match="experiment 'nope' is not in"):
        gym.make("abgym/PersonalizedMarketing-v0", config=dict(experiment="nope"))
    with pytest.raises(ValueError, match=r"attributes \['tone'\] are not scored"):
        PersonalizedMarketingEnv(config=dict(content_source="texts", texts=TEXTS, attributes=["tone"]), **PLUG_INS)
    with pytest.raises(ValueError, match="variant_ctr must be 3 click-through rates"):
        PersonalizedMarketingEnv(config=dict(content_source="texts", texts=TEXTS, attributes=None,
                                             variant_ctr=[0.1, 0.2]), **PLUG_INS)


def test_another_upworthy_experiment_by_index():
    env = gym.make("abgym/PersonalizedMarketing-v0", config=dict(experiment=5, attributes=None), **PLUG_INS)
    _, info = env.reset(seed=0)
    meta = env.unwrapped.content.meta
    np.testing.assert_allclose(info["target_ctr"], np.array(meta["clicks"]) / np.array(meta["impressions"]))
    assert env.action_space.n == len(info["variant_texts"]) >= 2


@given(st.text(max_size=80), st.sampled_from(["Headline: ", "headline 2 - ", '"', "* ", ""]))
def test_clean_generation_keeps_one_line_without_prefixes(text, prefix):
    cleaned = content.clean_generation(prefix + text)
    assert "\n" not in cleaned and "\r" not in cleaned
    assert not cleaned.lower().startswith("headline:")
    assert cleaned == cleaned.strip()


def test_default_targets_are_distinct_and_seeded():
    targets = content.default_targets(6, seed=3)
    assert len({tuple(t.values()) for t in targets}) == 6
    assert targets == content.default_targets(6, seed=3)
    with pytest.raises(ValueError, match="default target grid"):
        content.default_targets(100)


class RecordingModel:
    """Wraps a LanguageModel and counts generate calls."""

    def __init__(self, model):
        self.model, self.calls = model, 0

    def generate(self, prompts, **kwargs):
        self.calls += 1
        return self.model.generate(prompts, **kwargs)


def test_generated_variants_with_the_tiny_model_are_cached(tmp_path, monkeypatch):
    from abgym.llm import LanguageModel

    monkeypatch.setenv("ABGYM_CACHE_DIR", str(tmp_path))
    model = RecordingModel(LanguageModel.tiny(seed=0))
    config = dict(content_source="generated", generator_model="tiny", n_variants=3, generator_max_new_tokens=8,
                  brief="Noise-cancelling headphones for open-plan offices", attributes=None)
    env = PersonalizedMarketingEnv(config=config, language_model=model, **PLUG_INS)
    _, info = env.reset(seed=0)
    assert model.calls == 1 and len(info["variant_texts"]) == 3
    assert all(text and "\n" not in text for text in info["variant_texts"])
    prompts = env.content.meta["prompts"]
    assert all("Noise-cancelling headphones" in p and "tone:" in p for p in prompts)
    again = PersonalizedMarketingEnv(config=config, language_model=model, **PLUG_INS)
    assert model.calls == 1  # the campaign was generated once
    assert again.content.texts == env.content.texts


@pytest.mark.slow
def test_generated_variants_with_smollm2_follow_the_brief(tmp_path, monkeypatch):
    monkeypatch.setenv("ABGYM_CACHE_DIR", str(tmp_path))
    config = dict(content_source="generated", n_variants=4, attributes=None,
                  brief="A reusable water bottle that keeps drinks cold for 24 hours")
    env = PersonalizedMarketingEnv(config=config, **PLUG_INS)
    texts = env.content.texts
    assert len(texts) == 4 and all(5 <= len(text) <= 200 for text in texts)
    assert len(set(texts)) >= 3, texts
    words = " ".join(texts).lower()
    assert any(word in words for word in ("bottle", "cold", "drink", "water", "hydrat")), texts


# ------------------------------------------------------------------------------------- the marketing-copy filter
TARGET = dict(tone="warm", urgency="high urgency", incentive="a discount")


@pytest.mark.parametrize("text, reason", [
    ("", "empty"),
    ("!!! 24/7 ...", "no_letters"),
    ("Here's a rewritten version of your headline:", "meta_text"),
    ("Sure! Cold drinks for every ride", "meta_text"),
    ("A catchy headline for bike commuters", "meta_text"),
    ("Campaign: A reusable water bottle that keeps drinks cold", "prompt_echo"),
    ("tone: warm, incentive: a discount", "prompt_echo"),
    ("High urgency: grab yours before Friday", "prompt_echo"),
    ("Ride far, stay cold, pay less:", "trailing_colon"),
    ("Stay cool", "too_short"),
    ("Cold " * 30, "too_long"),
    ("Ice-cold for 24 hours. " * 8, "too_long"),
])
def test_copy_filter_names_why_a_text_is_not_marketing_copy(text, reason):
    assert content.copy_rejection(text, target=TARGET, brief=content.DEFAULT_BRIEF) == reason


@pytest.mark.parametrize("text", [
    "Packed, Convenient & Biodeserts - Bring Your Cooler to Your Commute!",
    "Keep your drinks ice-cold for the whole 24-hour ride",
    "Why do bike commuters love this bottle? 20% off today",
])
def test_copy_filter_passes_headlines(text):
    assert content.copy_rejection(text, target=TARGET, brief=content.DEFAULT_BRIEF) is None


def test_copy_filter_rejects_the_brief_itself_and_duplicates():
    assert content.copy_rejection(content.DEFAULT_BRIEF, brief=content.DEFAULT_BRIEF) == "prompt_echo"
    others = ["Keep your drinks ice-cold for the whole 24-hour ride"]
    assert content.copy_rejection("KEEP your drinks ice cold for the whole 24 hour ride!", others=others) \
        == "duplicate"
    assert content.copy_rejection("Keep your coffee hot for the whole ride", others=others) is None
    assert content.copy_rejection("Keep your coffee hot for the whole ride", cut_off=True) == "cut_off"


class ScriptedModel:
    """A language model that replies from a script, one reply per prompt and call: the filter's inputs, chosen."""

    def __init__(self, script):
        self.script, self.seeds, self.batch_sizes = list(script), [], []

    def generate(self, prompts, *, max_new_tokens, temperature, seed):
        self.seeds.append(seed)
        self.batch_sizes.append(len(prompts))
        return [self.script.pop(0) for _ in prompts]


BRIEF = "Noise-cancelling headphones for open-plan offices"
GOOD = ["Finally, quiet at your desk: 20% off this week", "Hear your own thoughts again in the open office",
        "The headphones your coworkers will envy"]


def test_rejected_generations_are_regenerated_with_new_seeds_and_counted_in_the_env(tmp_path, monkeypatch):
    monkeypatch.setenv("ABGYM_CACHE_DIR", str(tmp_path))
    script = ["Here's a rewritten version of your headline:", GOOD[1], "Campaign: " + BRIEF,  # attempt 0
              "Sure! Quiet is here", GOOD[1].upper() + "!",  # attempt 1: variants 0 and 2 again
              GOOD[0], GOOD[2]]  # attempt 2
    model = ScriptedModel(script)
    env = gym.make("abgym/CustomerJourney-v0", content_source="generated", brief=BRIEF, n_variants=3,
                   generator_model="tiny", attributes=None, language_model=model, **PLUG_INS)
    meta = env.unwrapped.content.meta
    assert env.unwrapped.content.texts == tuple(GOOD)
    assert model.batch_sizes == [3, 2, 2] and len(set(model.seeds)) == 3 and model.seeds[0] == 0
    assert meta["attempts"] == [3, 1, 3]
    assert {k: v for k, v in meta["rejections"].items() if v} == {"meta_text": 2, "prompt_echo": 1, "duplicate": 1}
    assert set(meta["rejections"]) == set(content.REJECTION_REASONS)
    assert [(r["variant"], r["attempt"], r["reason"]) for r in meta["rejected"]] == [
        (0, 0, "meta_text"), (2, 0, "prompt_echo"), (0, 1, "meta_text"), (2, 1, "duplicate")]
    assert meta["rejected"][0]["text"] == script[0] and meta["rejected"][0]["seed"] == model.seeds[0]
    # The campaign, rejections included, is cached: a second build asks no model.
    again = gym.make("abgym/CustomerJourney-v0", content_source="generated", brief=BRIEF, n_variants=3,
                     generator_model="tiny", attributes=None, language_model=ScriptedModel([]), **PLUG_INS)
    assert again.unwrapped.content.meta["rejections"] == meta["rejections"]


def test_a_variant_that_never_passes_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ABGYM_CACHE_DIR", str(tmp_path))
    model = ScriptedModel([GOOD[0], "Sure, here it is:"] + ["Headline ideas:"] * 3)
    with pytest.raises(ValueError, match=r"no usable marketing copy for variant\(s\) \[1\] in 4 attempt\(s\).*"
                                         r"meta_text.*generator_seed"):
        content.generate_variants(BRIEF, 2, language_model=model, model="tiny", max_attempts=4)
    # Greedy decoding would repeat the same text: one attempt, and the error says to sample.
    with pytest.raises(ValueError, match="raise 'generator_temperature' above 0"):
        content.generate_variants(BRIEF, 2, language_model=ScriptedModel([GOOD[0], "Sure:"]), model="tiny",
                                  temperature=0.0)
    with pytest.raises(ValueError, match="max_attempts must be a whole number >= 1"):
        content.generate_variants(BRIEF, 2, language_model=model, model="tiny", max_attempts=0)


def test_a_cache_from_before_the_filter_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setenv("ABGYM_CACHE_DIR", str(tmp_path))
    targets = content.default_targets(2, 0)
    prompts = [content.variant_prompt(BRIEF, target) for target in targets]
    old_key = content._digest("generated", "tiny", prompts, 0, 32, 0.7)  # the key of GENERATION_VERSION 1
    old = dict(texts=["Here's a rewritten version of your headline:", GOOD[0]], prompts=prompts, targets=targets)
    content._save_json(content.cache_dir("marketing", "generated") / f"{old_key}.json", old)
    doc = content.generate_variants(BRIEF, 2, language_model=ScriptedModel(GOOD[:2]), model="tiny")
    assert doc["texts"] == GOOD[:2] and doc["version"] == content.GENERATION_VERSION


def test_generated_variants_take_the_rankers_ctr_at_a_first_visit():
    """variant_ctr="ranker": the users' first-visit CTR of each generated variant is the ranker's calibrated prior.

    Uses the default feature models, ranker and caches (~/.cache/abgym, as the comparison does) with the tiny model."""
    from abgym.envs.customer_journey import build_journeys
    from abgym.ranker.prior import RankerPrior

    settings = dict(content_source="generated", variant_ctr="ranker", generator_model="tiny", n_variants=4,
                    generator_max_new_tokens=12)
    env = gym.make("abgym/CustomerJourney-v0", **settings)
    texts = env.unwrapped.content.texts
    assert len(texts) == 4 and all(content.copy_rejection(t) is None for t in texts)
    expected = RankerPrior.default().ctr_prior(list(texts))[0]
    np.testing.assert_allclose(env.unwrapped.content.target_ctr, expected, rtol=1e-9)
    _, info = env.reset(seed=0)
    np.testing.assert_allclose(info["target_ctr"], expected, rtol=1e-9)
    _, _, many = build_journeys({**settings, "population_size": 4000}, {}, 20000)
    many.seed(0)
    first_visit_ctr = many.response(many.state, None)[0].mean(axis=0)
    np.testing.assert_allclose(first_visit_ctr, expected, rtol=0.06)


def test_a_headline_cut_at_the_token_limit_is_regenerated(tmp_path, monkeypatch):
    from abgym.llm import LanguageModel

    monkeypatch.setenv("ABGYM_CACHE_DIR", str(tmp_path))
    tokenizer = LanguageModel.tiny().tokenizer
    cut = "A CLEANER: A REALISABLE WATER BOTTLE! #Upcycle_Bike #Cab"
    budget = len(tokenizer.encode(cut, add_special_tokens=False))
    finished_first_line = GOOD[1] + "\nPINNACELA (incl"  # the headline ended; the limit cut the line after it
    model = ScriptedModel([cut, finished_first_line, GOOD[0]])
    model.tokenizer = tokenizer
    doc = content.generate_variants(BRIEF, 2, language_model=model, model="smollm2", max_new_tokens=budget)
    assert doc["texts"] == [GOOD[0], GOOD[1]]
    assert [(r["variant"], r["reason"], r["text"]) for r in doc["rejected"]] == [(0, "cut_off", cut)]
    # With room to spare the same line is a finished headline.
    again = ScriptedModel([cut, GOOD[1]])
    again.tokenizer = tokenizer
    assert content.generate_variants(BRIEF, 2, language_model=again, model="smollm2",
                                     max_new_tokens=budget + 10)["texts"] == [cut, GOOD[1]]
