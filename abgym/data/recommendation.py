"""Recommendation cases built from a ratings dataset: the data side of prompt personalization (RPP).

A *case* is one user as the RPP paper frames it: the items the user liked, in time order (the history), the next
liked item (the target), and a candidate list of the target plus seeded negatives the user never interacted with,
in shuffled positions. An LLM ranks the candidates; the rank of the target is the score.

"Liked" means a rating of at least ``like_threshold`` (4 on MovieLens' 1-5 scale by default). Datasets without
ratings (implicit feedback, e.g. LastFM plays) count every interaction as liked.

**Negatives** (``negatives=``, :data:`NEGATIVE_PROTOCOLS`): ``"uniform"`` draws them uniformly from the items the
user never interacted with (the RPP paper's protocol); most are then obscure, so ranking by popularity separates them
from the target without any personalization (the sampled-metric caveat of Krichene & Rendle, KDD 2020).
``"popularity"`` draws them uniformly from the target's *popularity band*: the ``band_size`` unseen items whose
interaction counts are closest to the target's, so popularity alone cannot tell the target apart and a ranking has to
use the user's taste. ``"popularity-weighted"`` draws them in proportion to their interaction counts (the other
common popularity-aware sampler; popular negatives, but not matched to the target).

Every random draw (negatives, positions, user splits) comes from a generator seeded by ``seed`` and a stable hash
of the user id, so a user's candidate list does not change when other users are added or removed.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

INTERACTION_COLUMNS = ("user", "item", "rating", "timestamp")
NEGATIVE_PROTOCOLS = ("uniform", "popularity", "popularity-weighted")
DEFAULT_BAND_SIZE = 20  # unseen items nearest the target's popularity that "popularity" negatives come from


@dataclass(frozen=True)
class RatingsDataset:
    """Interactions (columns user, item, rating, timestamp; ids as strings) and an item title per item id."""

    name: str
    domain: str  # one of abgym.envs.prompt_actions.DOMAINS: movies, music, games, products
    interactions: pd.DataFrame
    titles: dict[str, str]
    source: str = ""

    def __post_init__(self):
        missing = [c for c in INTERACTION_COLUMNS if c not in self.interactions.columns]
        if missing:
            raise ValueError(f"dataset {self.name!r}: interactions lack columns {missing}")

    @property
    def n_users(self) -> int:
        return int(self.interactions["user"].nunique())

    @property
    def n_items(self) -> int:
        return len(self.titles)


@dataclass(frozen=True)
class UserCase:
    user_id: str
    history: tuple[str, ...]  # liked item ids before the target, oldest first
    target: str
    candidates: tuple[str, ...]  # target and negatives, in shuffled positions
    target_index: int  # position of the target in ``candidates``

    def recent_history(self, n: int) -> tuple[str, ...]:
        return self.history[-n:] if n > 0 else ()


@dataclass
class RecommendationData:
    """Cases per split plus what the non-LLM baselines need."""

    dataset: RatingsDataset
    cases: dict[str, list[UserCase]]  # "train", "validation", "test"
    popularity: dict[str, int] = field(default_factory=dict)  # interactions per item, targets excluded
    negatives: str = "uniform"  # the candidate protocol the cases were built with (NEGATIVE_PROTOCOLS)

    def titles_of(self, items: Sequence[str]) -> list[str]:
        return [self.dataset.titles[i] for i in items]

    def split(self, name: str) -> list[UserCase]:
        if name == "all":
            return [c for part in ("train", "validation", "test") for c in self.cases[part]]
        if name not in self.cases:
            raise ValueError(f"unknown split {name!r}; choose from {sorted(self.cases) + ['all']}")
        return self.cases[name]


def user_generator(seed: int, user_id: str) -> np.random.Generator:
    """A generator that depends only on the seed and the user id (not on the user's position in a list)."""
    return np.random.default_rng([int(seed), zlib.crc32(str(user_id).encode())])


def build_cases(
    dataset: RatingsDataset,
    *,
    like_threshold: float = 4.0,
    min_history: int = 5,
    n_candidates: int = 10,
    seed: int = 0,
    negatives: str = "uniform",
    band_size: int = DEFAULT_BAND_SIZE,
) -> list[UserCase]:
    """One case per user with at least ``min_history`` liked items before the target; ``negatives`` as the module
    docstring explains."""
    if n_candidates < 2:
        raise ValueError(f"n_candidates must be at least 2 (the target and a negative), got {n_candidates}")
    check_negatives(negatives)
    if isinstance(band_size, bool) or not isinstance(band_size, (int, np.integer)) or band_size < n_candidates - 1:
        raise ValueError(f"band_size must be a whole number >= n_candidates - 1 ({n_candidates - 1}), got {band_size!r}")
    frame = dataset.interactions
    titled = frame["item"].isin(dataset.titles.keys())
    frame = frame[titled]
    if frame["rating"].notna().any():
        liked = frame[frame["rating"] >= like_threshold]
    else:
        liked = frame
    # Stable sort keeps file order among equal timestamps, so the target is well defined.
    liked = liked.sort_values(["user", "timestamp"], kind="stable")
    seen = frame.groupby("user")["item"].agg(set).to_dict()
    all_items = np.array(sorted(dataset.titles))
    users = []
    for user, items in liked.groupby("user", sort=True)["item"]:
        # A user who liked an item twice keeps its first occurrence only.
        sequence = list(dict.fromkeys(items.tolist()))
        if len(sequence) >= min_history + 1:
            users.append((user, tuple(sequence[:-1]), sequence[-1]))
    # Popularity as the popularity baseline sees it: interactions without the held-out targets (item_popularity),
    # so that matching negatives to it leaves the baseline no edge (nor a handicap) of one interaction per target.
    counts = frame["item"].value_counts().to_dict()
    for _, _, target in users:
        counts[target] = counts.get(target, 0) - 1
    item_counts = np.array([float(counts.get(i, 0)) for i in all_items])
    cases = []
    for user, history, target in users:
        rng = user_generator(seed, user)
        unseen_mask = ~np.isin(all_items, list(seen[user]))
        pool = all_items[unseen_mask]
        if len(pool) < n_candidates - 1:
            continue
        drawn = draw_negatives(rng, pool, item_counts[unseen_mask], float(counts.get(target, 0)),
                               n_candidates - 1, negatives, band_size)
        candidates = [target] + drawn
        order = rng.permutation(n_candidates)
        shuffled = tuple(candidates[i] for i in order)
        cases.append(UserCase(str(user), history, target, shuffled, int(np.flatnonzero(order == 0)[0])))
    return cases


def check_negatives(negatives: str) -> str:
    if negatives not in NEGATIVE_PROTOCOLS:
        raise ValueError(f"unknown negatives protocol {negatives!r}; choose from {NEGATIVE_PROTOCOLS}")
    return negatives


def draw_negatives(rng: np.random.Generator, pool: np.ndarray, pool_counts: np.ndarray, target_count: float,
                   size: int, negatives: str, band_size: int = DEFAULT_BAND_SIZE) -> list[str]:
    """``size`` distinct items of ``pool`` (the user's unseen items, with their interaction counts) by protocol."""
    if negatives == "uniform":
        return rng.choice(pool, size=size, replace=False).tolist()
    if negatives == "popularity-weighted":
        weights = pool_counts + 1.0  # +1: items nobody else rated keep a small chance
        return rng.choice(pool, size=size, replace=False, p=weights / weights.sum()).tolist()
    # "popularity": the band of the band_size unseen items nearest the target's count (on a log scale, so that
    # 500 vs 520 interactions is as near as 5 vs 5.2); ties broken by a seeded jitter, not by item id.
    distance = np.abs(np.log1p(pool_counts) - np.log1p(target_count)) + 1e-9 * rng.random(len(pool))
    band = pool[np.argsort(distance, kind="stable")[:band_size]]
    return rng.choice(band, size=size, replace=False).tolist()


def split_users(
    cases: Sequence[UserCase], *, fractions: Sequence[float] = (0.6, 0.2, 0.2), seed: int = 0
) -> dict[str, list[UserCase]]:
    """Disjoint train / validation / test users in a seeded random order."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1, got {tuple(fractions)}")
    ordered = sorted(cases, key=lambda c: c.user_id)
    order = np.random.default_rng(seed).permutation(len(ordered))
    n_train = int(round(fractions[0] * len(ordered)))
    n_val = int(round(fractions[1] * len(ordered)))
    shuffled = [ordered[i] for i in order]
    return {
        "train": shuffled[:n_train],
        "validation": shuffled[n_train : n_train + n_val],
        "test": shuffled[n_train + n_val :],
    }


def item_popularity(dataset: RatingsDataset, cases: Sequence[UserCase]) -> dict[str, int]:
    """Interactions per item, without the held-out target interaction of each case (no leak into the baseline)."""
    counts = dataset.interactions["item"].value_counts().to_dict()
    for case in cases:
        counts[case.target] = counts.get(case.target, 0) - 1
    return {str(k): int(v) for k, v in counts.items()}


def prepare(
    dataset: RatingsDataset,
    *,
    like_threshold: float = 4.0,
    min_history: int = 5,
    n_candidates: int = 10,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    seed: int = 0,
    negatives: str = "uniform",
    band_size: int = DEFAULT_BAND_SIZE,
) -> RecommendationData:
    cases = build_cases(
        dataset, like_threshold=like_threshold, min_history=min_history, n_candidates=n_candidates, seed=seed,
        negatives=negatives, band_size=band_size,
    )
    if not cases:
        raise ValueError(
            f"dataset {dataset.name!r} gives no user with {min_history + 1} liked items (rating >= {like_threshold}) "
            f"and {n_candidates - 1} unseen items; lower min_history or like_threshold"
        )
    return RecommendationData(dataset, split_users(cases, fractions=fractions, seed=seed),
                              item_popularity(dataset, cases), negatives=negatives)


def synthetic_dataset(n_users: int = 60, n_items: int = 80, history: int = 12, seed: int = 0) -> RatingsDataset:
    """A small made-up dataset (fast path for tests and demos; not for reported results)."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        items = rng.choice(n_items, size=history, replace=False)
        for t, item in enumerate(items):
            rows.append((f"u{user}", f"i{item}", float(rng.integers(3, 6)), float(t)))
    frame = pd.DataFrame(rows, columns=list(INTERACTION_COLUMNS))
    titles = {f"i{i}": f"Synthetic Title {i}" for i in range(n_items)}
    return RatingsDataset("synthetic", "movies", frame, titles, source="abgym.data.recommendation.synthetic_dataset")
