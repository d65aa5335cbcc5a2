"""Natural-language insights and creative suggestions from the language model (the paper's Section 6).

The numbers (drivers, opportunities) come from insights.py; the language model only puts them into words. The
pipeline is deliberately defensive, because a small model (SmolLM2-135M) often drifts:

1. role conditioning and few-shot examples in a fixed line format (``INSIGHT: <attribute> | <sentence>`` or
   ``SUGGESTION: <attribute> | <new headline>``), with the facts listed in the prompt; by default the format is
   enforced by prefilling each answer line up to the "|" so that the model writes only the sentence;
2. rule-based parsing: a line is kept only if it has the format, names an attribute it was given, and has a
   sentence of reasonable length that is not a copy of the prompt or of a tested headline (and, for a
   suggestion, shares a content word with the tested headlines: the same story); the rest is dropped and counted;
3. self-reflection: the model is asked, for each parsed item, whether it follows from the facts, and the item is
   accepted only if "Yes" is more likely than "No" as its reply;
4. an honest result: if nothing parses, the status says "could not parse" and carries the raw output; there is no
   silent template fallback.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

ROLE = ("You are a senior marketing analyst. You explain A/B test results of news headlines to copywriters in "
        "short, concrete sentences, using only the facts given.")

INSIGHT_EXAMPLE = """Facts:
Winning headline: "7 Ways To Save Money On Groceries This Week"
Losing headline: "Grocery Prices Are Rising"
Drivers: listicle (strong), how_to (medium)
Answer:
INSIGHT: listicle | The numbered list promised a quick, structured read, which the plain statement lacked.
INSIGHT: how_to | Offering practical steps gave readers a concrete reason to click.
"""

SUGGESTION_EXAMPLE = """Facts:
Tested headlines: "Why This Town Banned Plastic Bags"; "A Town Without Plastic Bags"
Missing attributes: social_proof (strong), curiosity_gap (medium)
Answer:
SUGGESTION: social_proof | Thousands Of Towns Are Copying What This One Did With Plastic Bags
SUGGESTION: curiosity_gap | This Town Banned One Everyday Item. What Happened Next Surprised Everyone
"""

_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+")  # list markers the model may put before a line
_LINE = re.compile(r"^\s*(INSIGHT|SUGGESTION)\s*:\s*([-A-Za-z_ ]+?)\s*\|\s*(.+?)\s*$", re.IGNORECASE)
_WORD = re.compile(r"[a-z']{3,}")
_STOP = {"the", "and", "you", "for", "are", "was", "but", "not", "all", "can", "did", "has", "had", "his", "her",
         "its", "our", "who", "why", "how", "one", "out", "get", "got", "him", "she", "too", "yet", "way", "won't",
         "don't", "can't", "it's", "this", "that", "with", "what", "when", "they", "their", "them", "your", "from", "have", "will", "just",
         "about", "these", "those", "there", "here", "were", "been", "into", "more", "than", "then", "only", "some",
         "ever", "after", "before", "over", "because", "which", "would", "could", "should", "does", "doesn't"}


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


@dataclass
class NarrativeItem:
    kind: str            # "insight" | "suggestion"
    attribute: str
    text: str
    accepted: bool | None = None   # self-reflection verdict (None: not checked)
    reason: str = ""


@dataclass
class Narrative:
    status: str                       # "ok" | "could not parse" | "all rejected by self-reflection"
    items: list[NarrativeItem]        # accepted items
    rejected: list[NarrativeItem] = field(default_factory=list)
    malformed_lines: list[str] = field(default_factory=list)
    raw_output: str = ""

    @property
    def n_parsed(self) -> int:
        return len(self.items) + len(self.rejected)

    def to_dict(self) -> dict:
        return {**asdict(self), "n_parsed": self.n_parsed}


def _facts_insight(insights) -> str:
    best, worst = insights.texts[insights.best_arm], insights.texts[insights.worst_arm]
    drivers = ", ".join(f"{d.name} ({d.bin})" for d in insights.drivers) or "none"
    return f'Facts:\nWinning headline: "{best}"\nLosing headline: "{worst}"\nDrivers: {drivers}\nAnswer:\n'


def _facts_suggestion(insights) -> str:
    tested = "; ".join(f'"{t}"' for t in insights.texts[:4])
    missing = ", ".join(f"{o.name} ({o.bin})" for o in insights.opportunities) or "none"
    return f"Facts:\nTested headlines: {tested}\nMissing attributes: {missing}\nAnswer:\n"


def build_prompt(insights, kind: str) -> str:
    """Role, task, one worked example, then this experiment's facts (sent as the user turn of the chat template)."""
    if kind == "insight":
        task = ("Task: for each driver, write one line 'INSIGHT: <driver> | <why it made the winning headline "
                "win>'.")
        return f"{ROLE}\n{task}\n\n{INSIGHT_EXAMPLE}\n{_facts_insight(insights)}"
    if kind == "suggestion":
        task = ("Task: for each missing attribute, write one line 'SUGGESTION: <attribute> | <a new headline for "
                "the same story that expresses it>'.")
        return f"{ROLE}\n{task}\n\n{SUGGESTION_EXAMPLE}\n{_facts_suggestion(insights)}"
    raise ValueError(f"unknown narrative kind {kind!r}; choose 'insight' or 'suggestion'")


def parse_items(output: str, kind: str, allowed: list[str], existing_texts: list[str] = ()):
    """Keep well-formed lines about allowed attributes; return (items, malformed lines)."""
    prefix = "INSIGHT" if kind == "insight" else "SUGGESTION"
    allowed_set = {a.lower() for a in allowed}
    existing = {t.strip().lower() for t in existing_texts}
    topic = set().union(*(_content_words(t) for t in existing_texts)) if existing_texts else set()
    examples = {line.split("|", 1)[-1].strip().lower()
                for line in (INSIGHT_EXAMPLE + SUGGESTION_EXAMPLE).splitlines() if "|" in line}
    items, malformed, seen = [], [], set()
    for line in output.splitlines():
        if not line.strip():
            continue
        match = _LINE.match(_BULLET.sub("", line))
        if not match or match.group(1).upper() != prefix:
            malformed.append(line.strip())
            continue
        attribute = re.sub(r"[ -]+", "_", match.group(2).strip().lower())
        text = match.group(3).strip().strip('"')
        words = len(text.split())
        problem = ("attribute not among those given" if attribute not in allowed_set
                   else "too short or too long" if not 4 <= words <= (40 if kind == "insight" else 20)
                   else "more than one headline" if kind == "suggestion" and (";" in text or "|" in text)
                   else "copies an existing headline" if any(e and e in text.lower() for e in existing)
                   else "copies the prompt's example" if text.lower() in examples
                   else "off topic (no word in common with the tested headlines)"
                   if kind == "suggestion" and topic and not (_content_words(text) & topic)
                   else "duplicate" if text.lower() in seen else "")
        if problem:
            malformed.append(f"{line.strip()}  [{problem}]")
            continue
        seen.add(text.lower())
        items.append(NarrativeItem("insight" if kind == "insight" else "suggestion", attribute, text))
    return items, malformed


def reflect(lm, insights, item: NarrativeItem) -> bool:
    """Self-reflection: does the model itself judge the item consistent with the facts? ("Yes" vs "No")."""
    facts = _facts_insight(insights) if item.kind == "insight" else _facts_suggestion(insights)
    claim = item.text if item.kind == "insight" else f'The headline "{item.text}" expresses {item.attribute}.'
    prompt = (f"{ROLE}\n{facts.replace('Answer:', '').rstrip()}\nStatement: {claim}\n"
              f"Question: Is the statement consistent with the facts and specific? Answer Yes or No.\nAnswer:")
    return lm.rank(prompt, ["Yes", "No"])[0] == 0


def generate_structured(lm, prompt: str, kind: str, attributes: list[str], max_new_tokens: int, seed: int) -> str:
    """Structured output by prefilling: the answer line "PREFIX: <attribute> |" is written for the model, one per
    attribute, and the model only completes the sentence (first line kept). All attributes in one batch."""
    prefix = "INSIGHT" if kind == "insight" else "SUGGESTION"
    heads = [f"{prefix}: {name} |" for name in attributes]
    base = lm.format_prompt(prompt)
    outputs = lm.generate([base + head for head in heads], max_new_tokens=max_new_tokens, temperature=0.0,
                          seed=seed, chat=False)
    lines = []
    for head, output in zip(heads, outputs):
        first = output.strip().splitlines()[0].strip() if output.strip() else ""
        lines.append(f"{head} {first}")
    return "\n".join(lines)


def narrate(lm, insights, kind: str = "insight", max_new_tokens: int = 48, seed: int = 0,
            self_reflection: bool = True, prefill: bool = True) -> Narrative:
    """Generate, parse, reflect. ``kind``: "insight" (why the winner won) or "suggestion" (new variants).

    ``prefill`` (default, where the model exposes ``format_prompt``) forces the line format and lets the model
    write only the sentences; ``prefill=False`` lets it write the whole answer (``max_new_tokens`` then covers
    every line), which a 135M model rarely gets right (docs/ranker.md).
    """
    prompt = build_prompt(insights, kind)
    allowed = [d.name for d in (insights.drivers if kind == "insight" else insights.opportunities)]
    if prefill and allowed and hasattr(lm, "format_prompt"):
        output = generate_structured(lm, prompt, kind, allowed, max_new_tokens, seed)
    else:
        output = lm.generate([prompt], max_new_tokens=max_new_tokens * max(1, len(allowed)), temperature=0.0,
                             seed=seed)[0]
    items, malformed = parse_items(output, kind, allowed, insights.texts)
    if not items:
        return Narrative("could not parse", [], [], malformed, output)
    accepted, rejected = [], []
    for item in items:
        if self_reflection:
            item.accepted = reflect(lm, insights, item)
            if not item.accepted:
                item.reason = "self-reflection answered No"
        (accepted if item.accepted is not False else rejected).append(item)
    status = "ok" if accepted else "all rejected by self-reflection"
    return Narrative(status, accepted, rejected, malformed, output)
