"""The sentence action sets of prompt personalization, one per prompt pattern, and the prompt they assemble.

RPP (arXiv 2407.17115) writes a recommendation prompt as four patterns, each chosen by one agent:
role-playing (who the model is), history records (how much of the user's history it sees), reasoning guidance (how
to think about the candidates) and output format (what to answer). The sentences below are our own; each is a
template filled per domain (movies, music, games, products), so any dataset with item titles gets a full action set.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Sequence

PATTERNS = ("role", "history", "reasoning", "format")


@dataclass(frozen=True)
class Domain:
    noun: str  # "movie"
    nouns: str  # "movies"
    verb: str  # "watch"
    past: str  # "watched"
    person: str  # "viewer"


DOMAINS = {
    "movies": Domain("movie", "movies", "watch", "watched", "viewer"),
    "music": Domain("song or artist", "songs and artists", "listen to", "listened to", "listener"),
    "games": Domain("video game", "video games", "play", "played", "player"),
    "products": Domain("product", "products", "buy", "bought", "shopper"),
}

ROLES = (
    "You are a recommender system that suggests {nouns} to a {person}.",
    "You are a film-critic-like expert who knows {nouns} of every genre and era.",
    "You are a friend of the {person} who remembers everything they have {past}.",
    "You are a data scientist who predicts the next {noun} a {person} will {verb} from their past behaviour.",
    "You are a store assistant who helps a {person} choose what to {verb} next.",
)

# (number of most recent liked items shown, sentence introducing them)
# Short lists keep prompts short: the prompt's forward pass is most of the LLM's cost per ranking.
HISTORY = (
    (3, "Here are the last 3 {nouns} the {person} liked, oldest first:"),
    (5, "The {person} has recently {past} and enjoyed these 5 {nouns}, oldest first:"),
    (10, "This is the {person}'s longer history of 10 liked {nouns}, oldest first:"),
)

REASONING = (
    "Rank the candidates by how likely the {person} is to {verb} each one next.",
    "First find what the liked {nouns} have in common, such as genre, era and mood, then rank the candidates.",
    "Think step by step about the {person}'s taste before ranking the candidates.",
    "Give most weight to the most recent {nouns}, since taste changes over time.",
    "Consider which candidates are popular and widely loved, then adjust for the {person}'s taste.",
    "Compare each candidate with the liked {nouns} one by one and prefer the closest match.",
    "Prefer candidates from the same genres as the liked {nouns}.",
    "Imagine the {person} describing their favourite {nouns}, and pick what they would pick.",
    "Ignore the order of the candidates list; judge each candidate on its own merits.",
)

FORMATS = (
    "Answer with the title of the single best candidate.",
    "Answer with the candidate titles ranked from best to worst, one per line.",
    "Answer with the numbers of the candidates ranked from best to worst, separated by commas.",
    "Output only the title of the {noun} the {person} will {verb} next, exactly as written in the list.",
    "Reply with a ranked list in the form '1. title', '2. title', and so on.",
)

ACTION_SIZES = (len(ROLES), len(HISTORY), len(REASONING), len(FORMATS))  # 5, 3, 9, 5: 675 prompts

# The hand-written prompt used as a fixed baseline and as every episode's starting prompt.
HAND_WRITTEN = (0, 1, 0, 0)


def check_actions(actions: Sequence[int]) -> tuple[int, int, int, int]:
    if isinstance(actions, (str, bytes)) or not hasattr(actions, "__len__") or len(actions) != len(PATTERNS):
        raise ValueError(f"a prompt needs one action per pattern {PATTERNS}, got {actions!r}")
    checked = []
    for pattern, action, size in zip(PATTERNS, actions, ACTION_SIZES):
        try:  # operator.index: ints, numpy and torch integers; a float such as 1.5 is refused, not truncated
            index = None if isinstance(action, bool) else operator.index(action)
        except TypeError:
            index = None
        if index is None or not 0 <= index < size:
            raise ValueError(f"action {action!r} for pattern {pattern!r} is not a whole number in 0..{size - 1}")
        checked.append(index)
    return tuple(checked)


def domain_of(name: str) -> Domain:
    if name not in DOMAINS:
        raise ValueError(f"unknown domain {name!r}; choose from {sorted(DOMAINS)}")
    return DOMAINS[name]


def sentences(actions: Sequence[int], domain: str = "movies") -> tuple[str, str, str, str]:
    """The four sentences chosen by ``actions`` (role, history intro, reasoning, format), filled for ``domain``."""
    role, history, reasoning, output = check_actions(actions)
    words = vars(domain_of(domain))
    return (
        ROLES[role].format(**words),
        HISTORY[history][1].format(**words),
        REASONING[reasoning].format(**words),
        FORMATS[output].format(**words),
    )


def history_length(actions: Sequence[int]) -> int:
    return HISTORY[check_actions(actions)[1]][0]


def numbered(titles: Sequence[str]) -> str:
    return "\n".join(f"{i}. {title}" for i, title in enumerate(titles, start=1))


ANSWER_CUE = "Answer:"


def assemble_prompt(
    chosen: Sequence[str],
    history_titles: Sequence[str],
    candidate_titles: Sequence[str],
    domain: str = "movies",
    list_candidates: bool = True,
) -> str:
    """Role, history (the titles given, oldest first), candidates, reasoning guidance, output format, answer cue.

    ``chosen`` are the four sentences (possibly rewritten by RPP+); the history is cut by the caller. With
    ``list_candidates=False`` the candidates are left out: likelihood scoring gives them as the answers to score,
    and listing them too makes a small model score every listed title alike (measured: NDCG@10 0.44 with the list,
    0.56 without, hand-written prompt, 15 validation users of ML-100K, SmolLM2-135M)."""
    role, history_intro, reasoning, output = chosen
    nouns = domain_of(domain).nouns
    listed = f"Candidate {nouns}:\n{numbered(candidate_titles)}\n\n" if list_candidates else ""
    return f"{role}\n\n{history_intro}\n{numbered(history_titles)}\n\n{listed}{reasoning}\n{output}\n{ANSWER_CUE}"


def neutral_prompt(domain: str = "movies") -> str:
    """A prompt that says nothing about the user: calibrated scoring subtracts each title's likelihood after it."""
    return f"Recommend a {domain_of(domain).noun}.\n{ANSWER_CUE}"


def build_prompt(
    actions: Sequence[int],
    history_titles: Sequence[str],
    candidate_titles: Sequence[str],
    domain: str = "movies",
    list_candidates: bool = True,
) -> str:
    """The prompt chosen by ``actions``; the history is cut to the most recent items its action asks for."""
    n = history_length(actions)
    return assemble_prompt(
        sentences(actions, domain), list(history_titles)[-n:], candidate_titles, domain, list_candidates
    )


def all_actions() -> list[tuple[int, int, int, int]]:
    import itertools

    return list(itertools.product(*(range(n) for n in ACTION_SIZES)))
