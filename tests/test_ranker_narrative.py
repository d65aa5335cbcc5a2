"""LLM insights: prompt, rule-based parsing that drops malformed items, self-reflection, honest failure."""
import pytest

from abgym.ranker.insights import AttributeFinding, ExperimentInsights
from abgym.ranker.narrative import build_prompt, narrate, parse_items


def sample_insights():
    return ExperimentInsights(
        test_id="t1", texts=["You Won't Believe What This Dad Did", "A Dad Did Something"],
        observed_ctr=[0.02, 0.01], predicted=[0.1, -0.1], best_arm=0, worst_arm=1, contrast="observed",
        contributions=[0.2, 0.0], attribute_names=["curiosity_gap", "family_children"],
        drivers=[AttributeFinding("curiosity_gap", 0.8, 0.1, "strong")],
        opportunities=[AttributeFinding("family_children", 0.3, 0.05, "medium")])


class ScriptedLM:
    """Returns fixed generations and a fixed self-reflection verdict: exercises the pipeline's every branch."""

    def __init__(self, output, verdict_yes=True):
        self.output, self.verdict_yes, self.prompts = output, verdict_yes, []

    def generate(self, prompts, max_new_tokens=64, temperature=0.0, seed=0, repetition_penalty=1.1):
        self.prompts += prompts
        return [self.output for _ in prompts]

    def rank(self, prompt, candidates, by="mean"):
        return [0, 1] if self.verdict_yes else [1, 0]


def test_prompt_has_role_example_and_facts():
    prompt = build_prompt(sample_insights(), "insight")
    assert prompt.startswith("You are a senior marketing analyst")
    assert "INSIGHT: listicle |" in prompt                      # few-shot example
    assert "curiosity_gap (strong)" in prompt and prompt.endswith("Answer:\n")
    assert "family_children (medium)" in build_prompt(sample_insights(), "suggestion")
    with pytest.raises(ValueError, match="unknown narrative kind"):
        build_prompt(sample_insights(), "poem")


def test_parser_keeps_wellformed_items_and_reports_the_rest():
    output = ("1. INSIGHT: curiosity_gap | The open question made readers want to find out what the dad did.\n"
              "INSIGHT: urgency | Readers felt they had to click right away before it was gone.\n"
              "INSIGHT: curiosity_gap | Too short.\n"
              "Some rambling without the format\n"
              "INSIGHT: curiosity_gap | The open question made readers want to find out what the dad did.\n")
    items, malformed = parse_items(output, "insight", ["curiosity_gap"])
    assert [(i.attribute, i.kind) for i in items] == [("curiosity_gap", "insight")]
    reasons = " ".join(malformed)
    for reason in ("attribute not among those given", "too short", "duplicate", "rambling"):
        assert reason in reasons


def test_self_reflection_accepts_or_rejects_and_failure_is_honest():
    good = "INSIGHT: curiosity_gap | The open question made readers want to find out what the dad did."
    result = narrate(ScriptedLM(good, verdict_yes=True), sample_insights(), "insight")
    assert result.status == "ok" and len(result.items) == 1 and result.items[0].accepted
    rejected = narrate(ScriptedLM(good, verdict_yes=False), sample_insights(), "insight")
    assert rejected.status == "all rejected by self-reflection" and not rejected.items
    assert rejected.rejected[0].reason == "self-reflection answered No"
    garbage = narrate(ScriptedLM("lorem ipsum dolor"), sample_insights(), "insight")
    assert garbage.status == "could not parse" and garbage.items == [] and garbage.raw_output == "lorem ipsum dolor"
    # Off-topic suggestions (the few-shot example's story) and copies of a tested headline are dropped.
    off = narrate(ScriptedLM("suggestion: family_children | This Town Bans Plastic Bags For Good"),
                  sample_insights(), "suggestion")
    assert off.status == "could not parse" and "off topic" in off.malformed_lines[0]
    on = narrate(ScriptedLM("Suggestion: family children | What This Dad Did Next Will Make Every Parent Smile"),
                 sample_insights(), "suggestion")
    assert on.status == "ok" and on.items[0].attribute == "family_children"
    copy = narrate(ScriptedLM("SUGGESTION: family_children | A Dad Did Something"), sample_insights(), "suggestion")
    assert copy.status == "could not parse" and "copies an existing headline" in copy.malformed_lines[0]


def test_tiny_language_model_output_goes_through_the_pipeline():
    from abgym.llm import LanguageModel

    lm = LanguageModel.tiny(seed=0)
    result = narrate(lm, sample_insights(), "insight", max_new_tokens=8)
    # A random tiny model writes noise: it must be reported as such, never dressed up as an insight.
    assert result.status in ("could not parse", "all rejected by self-reflection", "ok")
    assert result.raw_output is not None
    assert all(item.attribute == "curiosity_gap" for item in result.items + result.rejected)
    if result.status == "could not parse":
        assert result.items == [] and (result.malformed_lines or not result.raw_output.strip())


@pytest.mark.slow
def test_real_smollm2_insights_are_parsed_or_reported_as_unparseable():
    from abgym.llm import LanguageModel

    lm = LanguageModel.load()
    result = narrate(lm, sample_insights(), "insight", max_new_tokens=32)
    assert result.status in ("ok", "could not parse", "all rejected by self-reflection")
    assert result.raw_output.strip()                     # the real model does answer
    for item in result.items + result.rejected:
        assert item.attribute == "curiosity_gap" and 4 <= len(item.text.split()) <= 40
    if result.status == "could not parse":
        assert result.malformed_lines                    # what it wrote is kept for the reader


class PrefillLM(ScriptedLM):
    """A model exposing the chat formatting: narrate() prefills the line format and the model completes it."""

    def format_prompt(self, prompt, chat=True):
        return f"<user>{prompt}<assistant>"

    def generate(self, prompts, max_new_tokens=64, temperature=0.0, seed=0, repetition_penalty=1.1, chat=True):
        assert chat is False and all(p.endswith("curiosity_gap |") for p in prompts)
        return super().generate(prompts)


def test_prefilled_structured_output_keeps_only_the_first_line():
    lm = PrefillLM("The open question made readers want to find out what the dad did.\nINSIGHT: junk | more")
    result = narrate(lm, sample_insights(), "insight")
    assert result.status == "ok" and len(result.items) == 1
    assert result.raw_output == ("INSIGHT: curiosity_gap | The open question made readers want to find out what "
                                 "the dad did.")
    empty = narrate(PrefillLM(""), sample_insights(), "insight")
    assert empty.status == "could not parse"
