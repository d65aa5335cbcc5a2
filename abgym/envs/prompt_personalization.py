"""``abgym/PromptPersonalization-v0``: four agents write a recommendation prompt for one user; an LLM ranks with it.

This is the environment of RPP, "Reinforced Prompt Personalization for Recommendation with Large Language Models"
(arXiv 2407.17115). An episode takes one user (history of liked items, a candidate list holding the next liked
item) and refines the user's prompt over ``rounds`` rounds. In each round every agent picks the sentence of its
prompt pattern (role, history, reasoning, format: see :mod:`abgym.envs.prompt_actions`), the prompt is assembled,
the frozen recommender ranks the candidates, and all agents share the reward NDCG@10 of that ranking.

Observation (the same for every agent, a Dict):
- ``user``: embedding of the user's recent liked titles (mean of sentence embeddings, renormalised);
- ``prompt``: embedding of the current prompt's four sentences;
- ``ranking``: embeddings of the candidates in the order of the last ranking (zero rows before the first ranking
  and for candidates a generated answer left out): RPP's state encoder runs a GRU over it;
- ``actions``: one-hot of the current prompt's four actions; ``round``: fraction of the episode done.
The reward is not in the observation: at test time the agents do not know the target. ``state()`` is the
flattened observation, for centralized critics.

:class:`PromptPersonalizationParallelEnv` is the PettingZoo ParallelEnv; :class:`PromptPersonalizationEnv` is the
single-agent Gymnasium view (MultiDiscrete action, one per pattern) registered as ``abgym/PromptPersonalization-v0``.
"""
from __future__ import annotations

import copy
import math
import re
import functools
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import gymnasium
import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from abgym.data.recommendation import (
    NEGATIVE_PROTOCOLS,
    RecommendationData,
    UserCase,
    check_negatives,
    prepare,
    synthetic_dataset,
)
from abgym.envs import prompt_actions as pa
from abgym.envs.settings import merge_settings
from abgym.envs.llm_recommender import (
    LLMRecommender,
    PopularityRecommender,
    RandomRecommender,
    Ranking,
    RankingContext,
    SyntheticPromptRecommender,
)
from abgym.metrics import ranking_metrics

AGENTS = pa.PATTERNS  # role, history, reasoning, format
RECOMMENDERS = ("llm-score", "llm-calibrated", "llm-generate", "popularity", "random-ranking", "synthetic")
LANGUAGE_MODELS = ("smollm2-135m", "gemma3-270m")
EMBEDDERS = ("minilm", "hashing")


def default_config() -> dict:
    return {
        # "movielens-100k" (found as abgym.data.movielens explains), "synthetic" (made-up, for tests), or a RecBole
        # atomic folder / .inter file with an item title field.
        "dataset": "movielens-100k",
        "data_path": None,  # where MovieLens-100K is, if not found on its own
        "domain": None,  # movies | music | games | products; default: the dataset's
        "like_threshold": 4.0,  # a rating at least this counts as liked
        "min_history": 5,  # liked items needed before the target
        "n_candidates": 10,  # the target and n - 1 seeded negatives
        # how the negatives are drawn (abgym.data.recommendation): "popularity" (from the target's popularity band,
        # so popularity alone cannot find the target: see docs/rpp.md for why this is the default), "uniform"
        # (unseen items uniformly, the RPP paper's protocol) or "popularity-weighted" (in proportion to counts)
        "negatives": "popularity",
        "data_seed": 0,  # negatives, candidate positions, user split
        "split_fractions": (0.6, 0.2, 0.2),  # train, validation, test users
        "split": "train",  # whose users episodes draw: train | validation | test | all
        "max_users": None,  # keep only the first n users of the split (its order is seeded)
        "rounds": 3,  # prompt refinements per episode
        "initial_actions": pa.HAND_WRITTEN,  # the prompt shown in the first observation
        "recommender": "llm-score",  # one of RECOMMENDERS
        # gemma3-270m (base model, Gemma Terms of Use; the default: its prompt effects replicate, docs/rpp.md) |
        # smollm2-135m (SmolLM2-135M-Instruct, the default before issue 14)
        "language_model": "gemma3-270m",
        "llm_chat": None,  # score through the chat template; None: yes for SmolLM2-Instruct, no for base Gemma
        "embedder": "minilm",  # minilm (all-MiniLM-L6-v2) | hashing (fast path for tests, not for results)
        "ranking_cache": True,  # keep LLM rankings on disk under the abgym cache
        "synthetic_best_actions": (3, 2, 7, 1),  # the known best prompt of the synthetic recommender
    }


def make_config(config: dict | None = None, **settings) -> dict:
    """``default_config()`` updated with ``config`` and keyword ``settings`` (keywords win), validated."""
    merged = merge_settings("PromptPersonalization-v0", default_config(), config, settings,
                            see="abgym.envs.prompt_personalization.default_config()")
    if merged["recommender"] not in RECOMMENDERS:
        raise ValueError(f"unknown recommender {merged['recommender']!r}; choose from {RECOMMENDERS}")
    check_negatives(merged["negatives"])
    if merged["language_model"] not in LANGUAGE_MODELS:
        raise ValueError(f"unknown language_model {merged['language_model']!r}; choose from {LANGUAGE_MODELS}")
    if merged["llm_chat"] not in (None, True, False):
        raise ValueError(f"config 'llm_chat' must be True, False or None (the model's default), got {merged['llm_chat']!r}")
    if merged["embedder"] not in EMBEDDERS:
        raise ValueError(f"unknown embedder {merged['embedder']!r}; choose from {EMBEDDERS}")
    for key, minimum in (("rounds", 1), ("min_history", 1), ("n_candidates", 2), ("data_seed", 0)):
        _check_whole(key, merged[key], minimum)
    if merged["max_users"] is not None:
        _check_whole("max_users", merged["max_users"], 1, none_allowed=True)
    if not isinstance(merged["ranking_cache"], (bool, np.bool_)):
        raise ValueError(f"config 'ranking_cache' must be True or False, got {merged['ranking_cache']!r}")
    threshold = merged["like_threshold"]
    try:  # math, not numpy: a Python int beyond int64 is still a number; beyond a float, OverflowError
        finite = not isinstance(threshold, bool) and isinstance(threshold, (int, float, np.integer, np.floating)) \
            and math.isfinite(threshold)
    except OverflowError:
        finite = False
    if not finite:
        raise ValueError(f"config 'like_threshold' must be a finite number (a rating), got {threshold!r}")
    pa.check_actions(merged["initial_actions"])
    return merged


def _check_whole(key: str, value, minimum: int, none_allowed: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        also = " or None (every user)" if none_allowed else ""
        raise ValueError(f"config {key!r} must be a whole number >= {minimum}{also}, got {value!r}")


class HashingEmbedder:
    """Bag-of-words vectors by hashing (fast path for tests and quick demos; use MiniLM for results)."""

    def __init__(self, dim: int = 64):
        self.dim = dim

    def encode(self, texts: Sequence[str], show_progress: bool | None = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                h = zlib.crc32(word.encode())
                out[row, h % self.dim] += 1.0 if (h >> 16) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)


def load_data(config: dict) -> RecommendationData:
    name = config["dataset"]
    if name == "movielens-100k":
        from abgym.data.movielens import load_movielens_100k

        dataset = load_movielens_100k(config["data_path"])
    elif name == "synthetic":
        dataset = synthetic_dataset()
    else:
        from abgym.data.recbole import load_recbole

        if not Path(name).exists():
            raise FileNotFoundError(
                f"dataset {name!r} is neither 'movielens-100k', 'synthetic' nor an existing RecBole folder or .inter file"
            )
        dataset = load_recbole(name, domain=config["domain"])
    return prepare(
        dataset,
        like_threshold=config["like_threshold"],
        min_history=config["min_history"],
        n_candidates=config["n_candidates"],
        fractions=config["split_fractions"],
        seed=config["data_seed"],
        negatives=config["negatives"],
    )


def make_embedder(kind: str):
    if kind == "hashing":
        return HashingEmbedder()
    from abgym.llm import Embedder

    return Embedder()


def load_language_model(name: str):
    """The shared language model called ``name`` (LANGUAGE_MODELS), loaded offline from its PyPI package."""
    if name == "gemma3-270m":
        from abgym.llm.gemma import load_gemma

        return load_gemma()
    from abgym.llm import LanguageModel

    return LanguageModel.load()


def make_recommender(config: dict, language_model=None, domain: str | None = None):
    """The recommender of ``config``; ``domain`` (default: the config's, else movies) words calibration's neutral
    prompt."""
    kind = config["recommender"]
    if kind == "popularity":
        return PopularityRecommender()
    if kind == "random-ranking":
        return RandomRecommender(config["data_seed"])
    if kind == "synthetic":
        return SyntheticPromptRecommender(config["synthetic_best_actions"], seed=config["data_seed"])
    if language_model is None:
        language_model = load_language_model(config["language_model"])
    mode = kind.split("-", 1)[1]
    chat = config["llm_chat"]
    if chat is None:  # a base model has no chat turn to answer in (measured: docs/rpp.md)
        chat = "gemma" not in str(getattr(language_model, "name", "")).lower()
    cache_path = None
    if config["ranking_cache"]:
        from abgym.paths import cache_dir

        model_id = re.sub(r"[^A-Za-z0-9._-]+", "_", str(getattr(language_model, "name", type(language_model).__name__)))
        cache_path = cache_dir("rpp") / f"rankings-{model_id}-{mode}{'' if chat else '-raw'}.json"
    neutral = pa.neutral_prompt(domain or config["domain"] or "movies")
    return LLMRecommender(language_model, mode=mode, cache_path=cache_path, chat=chat, neutral_prompt=neutral)


@dataclass
class PromptOutcome:
    actions: tuple[int, ...]
    prompt: str
    ranking: Ranking
    metrics: dict[str, float]


class PromptTask:
    """The data, recommender and embedder shared by the env, the agents and the baselines."""

    def __init__(self, data: RecommendationData, recommender, embedder, domain: str | None = None):
        self.data = data
        self.recommender = recommender
        self.embedder = embedder
        self.domain = domain or data.dataset.domain
        pa.domain_of(self.domain)
        self._title_vectors: dict[str, np.ndarray] = {}
        self._user_vectors: dict[str, np.ndarray] = {}
        self._prompt_vectors: dict[tuple, np.ndarray] = {}

    @property
    def dim(self) -> int:
        return int(self.embedder.dim)

    def titles(self, items: Sequence[str]) -> list[str]:
        return self.data.titles_of(items)

    def prompt(self, case: UserCase, actions: Sequence[int], chosen: Sequence[str] | None = None) -> str:
        actions = pa.check_actions(actions)
        history = self.titles(case.recent_history(pa.history_length(actions)))
        candidates = self.titles(case.candidates)
        listed = getattr(self.recommender, "lists_candidates", True)
        if chosen is None:
            return pa.build_prompt(actions, history, candidates, self.domain, listed)
        return pa.assemble_prompt(chosen, history, candidates, self.domain, listed)

    def context(self, case: UserCase, actions: Sequence[int]) -> RankingContext:
        popularity = tuple(float(self.data.popularity.get(i, 0)) for i in case.candidates)
        return RankingContext(case.target_index, tuple(actions), case.user_id, popularity)

    def evaluate(self, case: UserCase, actions: Sequence[int], chosen: Sequence[str] | None = None) -> PromptOutcome:
        """Rank the case's candidates with the prompt of ``actions`` (or the sentences ``chosen``) and score it."""
        actions = pa.check_actions(actions)
        prompt = self.prompt(case, actions, chosen)
        ranking = self.recommender.rank(prompt, self.titles(case.candidates), self.context(case, actions))
        return PromptOutcome(actions, prompt, ranking, ranking_metrics(ranking.order, case.target_index))

    # --- embeddings (memoised; the MiniLM embedder also caches on disk) ---
    def title_vectors(self, items: Sequence[str]) -> np.ndarray:
        missing = [i for i in dict.fromkeys(items) if i not in self._title_vectors]
        if missing:
            for item, vector in zip(missing, self.embedder.encode(self.titles(missing))):
                self._title_vectors[item] = vector
        return np.stack([self._title_vectors[i] for i in items]) if items else np.zeros((0, self.dim), np.float32)

    def user_vector(self, case: UserCase) -> np.ndarray:
        if case.user_id not in self._user_vectors:
            recent = case.recent_history(max(n for n, _ in pa.HISTORY))
            mean = self.title_vectors(recent).mean(axis=0)
            self._user_vectors[case.user_id] = (mean / max(np.linalg.norm(mean), 1e-8)).astype(np.float32)
        return self._user_vectors[case.user_id]

    def prompt_vector(self, actions: Sequence[int]) -> np.ndarray:
        key = tuple(actions)
        if key not in self._prompt_vectors:
            text = " ".join(pa.sentences(key, self.domain))
            self._prompt_vectors[key] = self.embedder.encode([text])[0].astype(np.float32)
        return self._prompt_vectors[key]


def one_hot_actions(actions: Sequence[int]) -> np.ndarray:
    out = np.zeros(sum(pa.ACTION_SIZES), dtype=np.float32)
    offset = 0
    for action, size in zip(actions, pa.ACTION_SIZES):
        out[offset + int(action)] = 1.0
        offset += size
    return out


class PromptPersonalizationParallelEnv(ParallelEnv):
    metadata = {"name": "prompt_personalization_v0", "render_modes": ["ansi"], "is_parallelizable": True}

    def __init__(
        self,
        config: dict | None = None,
        *,
        task: PromptTask | None = None,
        language_model=None,
        render_mode: str | None = None,
        **settings,
    ):
        """``task`` (data + recommender + embedder) lets several envs and the baselines share one LLM and cache;
        without it the task is built from ``config`` (loading the LLM for the llm-* recommenders). Settings
        (``default_config()``) come as keyword arguments, ``config={...}``, or both."""
        self.config = make_config(config, **settings)
        if render_mode not in (None, "ansi"):
            raise ValueError(f"unsupported render_mode {render_mode!r}; PromptPersonalization renders 'ansi' only")
        self.render_mode = render_mode
        if task is None:
            data = load_data(self.config)
            domain = self.config["domain"] or data.dataset.domain
            task = PromptTask(
                data, make_recommender(self.config, language_model, domain), make_embedder(self.config["embedder"]),
                domain,
            )
        self.task = task
        users = task.data.split(self.config["split"])
        if self.config["max_users"] is not None:
            users = users[: int(self.config["max_users"])]
        if not users:
            raise ValueError(f"split {self.config['split']!r} holds no users")
        self.users = list(users)
        self.rounds = int(self.config["rounds"])
        self.n_candidates = len(self.users[0].candidates)
        self.possible_agents = list(AGENTS)
        self.agents: list[str] = []
        dim = task.dim
        self._observation_space = spaces.Dict(
            {
                "user": spaces.Box(-1.0, 1.0, (dim,), np.float32),
                "prompt": spaces.Box(-1.0, 1.0, (dim,), np.float32),
                "ranking": spaces.Box(-1.0, 1.0, (self.n_candidates, dim), np.float32),
                "actions": spaces.Box(0.0, 1.0, (sum(pa.ACTION_SIZES),), np.float32),
                "round": spaces.Box(0.0, 1.0, (1,), np.float32),
            }
        )
        flat = spaces.flatdim(self._observation_space)
        self.state_space = spaces.Box(-1.0, 1.0, (flat,), np.float32)
        self._np_random = np.random.default_rng()
        self.case: UserCase | None = None
        self.last: PromptOutcome | None = None

    @functools.lru_cache(maxsize=None)
    def observation_space(self, agent: str) -> spaces.Space:
        return self._observation_space

    @functools.lru_cache(maxsize=None)
    def action_space(self, agent: str) -> spaces.Space:
        return spaces.Discrete(pa.ACTION_SIZES[AGENTS.index(agent)])

    def _observe(self) -> dict:
        ranking = np.zeros((self.n_candidates, self.task.dim), dtype=np.float32)
        if self.last is not None and self.last.ranking.order:
            items = [self.case.candidates[i] for i in self.last.ranking.order]
            ranking[: len(items)] = self.task.title_vectors(items)
        obs = {
            "user": self.task.user_vector(self.case).copy(),
            "prompt": self.task.prompt_vector(self.actions).copy(),
            "ranking": ranking,
            "actions": one_hot_actions(self.actions),
            "round": np.array([self.round / self.rounds], dtype=np.float32),
        }
        return obs

    def state(self) -> np.ndarray:
        if self.case is None:
            raise RuntimeError("call reset() before state()")
        return spaces.flatten(self._observation_space, self._observe()).astype(np.float32)

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._np_random = np.random.default_rng(seed)
        options = options or {}
        if "user_id" in options:
            matches = [c for c in self.users if c.user_id == str(options["user_id"])]
            if not matches:
                raise ValueError(f"user {options['user_id']!r} is not in split {self.config['split']!r}")
            self.case = matches[0]
        elif "user_index" in options:
            index = int(options["user_index"])
            if not 0 <= index < len(self.users):
                raise ValueError(f"user_index {index} is outside 0..{len(self.users) - 1}")
            self.case = self.users[index]
        else:
            self.case = self.users[int(self._np_random.integers(len(self.users)))]
        self.actions = pa.check_actions(options.get("initial_actions", self.config["initial_actions"]))
        self.round = 0
        self.last = None
        self.agents = list(self.possible_agents)
        obs = self._observe()
        infos = {a: {"user_id": self.case.user_id, "round": 0} for a in self.agents}
        return {a: copy.deepcopy(obs) if i else obs for i, a in enumerate(self.agents)}, infos

    def step(self, actions: dict):
        if not self.agents:
            raise RuntimeError("the episode is over: call reset()")
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise ValueError(f"step() needs an action for every agent; missing {missing}")
        chosen = []
        for agent in self.agents:
            action = actions[agent]
            integral = isinstance(action, (int, np.integer)) or (
                isinstance(action, np.ndarray) and action.ndim == 0 and np.issubdtype(action.dtype, np.integer)
            )
            if not integral or not self.action_space(agent).contains(np.int64(action)):
                raise ValueError(
                    f"action {action!r} of agent {agent!r} is not in {self.action_space(agent)} "
                    f"(an integer 0..{self.action_space(agent).n - 1})"
                )
            chosen.append(int(action))
        self.actions = tuple(chosen)
        self.last = self.task.evaluate(self.case, self.actions)
        self.round += 1
        done = self.round >= self.rounds
        obs = self._observe()
        reward = self.last.metrics["ndcg@10"]
        info = {
            **self.last.metrics,
            "user_id": self.case.user_id,
            "round": self.round,
            "prompt_actions": self.actions,
            "parsed": self.last.ranking.parsed,
            "ranking": self.last.ranking.order,
            "target_index": self.case.target_index,
        }
        agents = self.agents
        observations = {a: copy.deepcopy(obs) if i else obs for i, a in enumerate(agents)}
        rewards = {a: reward for a in agents}
        terminations = {a: done for a in agents}
        truncations = {a: False for a in agents}
        infos = {a: dict(info) for a in agents}
        if done:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def render(self):
        if self.render_mode != "ansi" or self.case is None:
            return None
        prompt = self.task.prompt(self.case, self.actions)
        score = "" if self.last is None else f"\nNDCG@10 {self.last.metrics['ndcg@10']:.3f}"
        return f"user {self.case.user_id}, round {self.round}/{self.rounds}\n{prompt}{score}"

    def close(self):
        flush = getattr(self.task.recommender, "flush", None)
        if flush:
            flush()


def parallel_env(config: dict | None = None, **kwargs) -> PromptPersonalizationParallelEnv:
    return PromptPersonalizationParallelEnv(config, **kwargs)


class PromptPersonalizationEnv(gymnasium.Env):
    """Single-agent view: one MultiDiscrete action (role, history, reasoning, format), the shared observation."""

    metadata = {"render_modes": ["ansi"]}

    def __init__(self, config: dict | None = None, render_mode: str | None = None, **kwargs):
        self.parallel = PromptPersonalizationParallelEnv(config, render_mode=render_mode, **kwargs)
        self.render_mode = render_mode
        self.action_space = spaces.MultiDiscrete(np.array(pa.ACTION_SIZES, dtype=np.int64))
        self.observation_space = self.parallel.observation_space(AGENTS[0])

    @property
    def task(self) -> PromptTask:
        return self.parallel.task

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is None and self.parallel.case is None:
            seed = int(self.np_random.integers(2**31))
        observations, infos = self.parallel.reset(seed=seed, options=options)
        return observations[AGENTS[0]], infos[AGENTS[0]]

    def step(self, action):
        action = np.asarray(action)
        # Integers only: astype(int64) alone would truncate 1.5 to 1 and play an action nobody chose.
        if action.shape != (len(AGENTS),) or not np.issubdtype(action.dtype, np.integer) \
                or not self.action_space.contains(action.astype(np.int64)):
            raise ValueError(
                f"action {action.tolist()!r} is not in {self.action_space}: one integer per pattern {AGENTS}"
            )
        observations, rewards, terminations, truncations, infos = self.parallel.step(
            {agent: int(a) for agent, a in zip(AGENTS, action)}
        )
        first = AGENTS[0]
        return observations[first], rewards[first], terminations[first], truncations[first], infos[first]

    def render(self):
        return self.parallel.render()

    def close(self):
        self.parallel.close()
