"""``abgym/OpenBanditReplay-v0``: online learners run on ZOZOTOWN's real logs by rejection-sampling replay.

The replay method of Li, Chu, Langford and Wang (WSDM 2011, "Unbiased offline evaluation of contextual-bandit-based
news article recommendation algorithms"): step through the uniform-random log of the Open Bandit Dataset in time
order; at each logged impression the agent sees the user (and the position) and picks an item. If it picks the item
that was logged, the event *matches*: the agent gets the logged click as its reward and may learn from it. If not,
the event is discarded: reward 0 and ``info["matched"] = False``, and a correct learner does not update on it.
Because the logging policy was uniform, the matched events are an unbiased sample of what the agent's own policy
would have met, so ``info["replay_ctr"]`` (clicks per matched event) estimates its online click rate. About one
event in ``n_items`` matches (1.25 % for the 80-item ``all`` campaign): ``info["match_rate"]`` reports it.

Only the uniform-random log qualifies (rejection sampling needs a policy that logs every item with the same known
probability); the ``bts`` log is refused. Observation (``observation_type="dict"``, the default) in the layout of
abgym's contextual bandits: ``user`` (one-hot user features), ``context`` (one-hot position), ``memory`` (empty) and
``variants`` (the item table); ``"flat"`` gives ``[user, position]`` as one Box for SB3. Action: ``Discrete(n_items)``.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from abgym.data.open_bandit import CAMPAIGNS, LoggedBanditFeedback, load_open_bandit
from abgym.envs.settings import merge_settings

OBSERVATION_TYPES = ("dict", "flat")
STARTS = ("beginning", "random")


def default_config() -> dict[str, Any]:
    """The constructor's options and their defaults (``gymnasium.make`` keyword arguments override them)."""
    return dict(
        campaign="all",            # "all" (80 items) | "men" (34) | "women" (46)
        data_path=None,            # the full Open Bandit Dataset's root; None: the sample bundled in obp==0.4.1
        log=None,                  # a LoggedBanditFeedback to replay instead (uniform logging, e.g. a split)
        episode_length=None,       # logged events per episode; None: to the end of the log
        start="beginning",         # "beginning" (time order from the first event) | "random" (seeded offset)
        observation_type="dict",   # "dict" | "flat"
    )


class OpenBanditReplayEnv(gym.Env):
    """Rejection-sampling replay of the Open Bandit Dataset's uniform-random log (see the module docstring)."""

    metadata = {"render_modes": []}

    def __init__(self, config: dict[str, Any] | None = None, **settings: Any):
        config = merge_settings("OpenBanditReplay-v0", default_config(), config, settings,
                                see="abgym.envs.open_bandit_replay.default_config() and docs/off_policy.md")
        self.config = config
        if config["observation_type"] not in OBSERVATION_TYPES:
            raise ValueError(f"observation_type must be one of {list(OBSERVATION_TYPES)}, "
                             f"got {config['observation_type']!r}")
        if config["start"] not in STARTS:
            raise ValueError(f"start must be one of {list(STARTS)}, got {config['start']!r}")
        log = config["log"]
        if log is None:
            if config["campaign"] not in CAMPAIGNS:
                raise ValueError(f"campaign must be one of {list(CAMPAIGNS)}, got {config['campaign']!r}")
            log = load_open_bandit("random", config["campaign"], config["data_path"])
        elif not isinstance(log, LoggedBanditFeedback):
            raise ValueError(f"log must be a LoggedBanditFeedback (abgym.data.open_bandit), got {type(log).__name__}")
        if not np.allclose(log.pscore, 1.0 / log.n_actions):
            raise ValueError(f"rejection-sampling replay needs a uniform-random log (every propensity 1/{log.n_actions});"
                             f" this log ({log.behavior_policy or 'given'}) is not: use the 'random' logs, and value "
                             "other logs' policies with abgym.ope's estimators instead")
        self.log = log
        length = config["episode_length"]
        if length is not None and (int(length) != length or not 1 <= length <= log.n_rounds):
            raise ValueError(f"episode_length must be an integer in [1, {log.n_rounds}] or None, got {length!r}")
        self.episode_length = log.n_rounds if length is None else int(length)
        self.observation_type = config["observation_type"]
        n_user, n_items, len_list = log.context.shape[1], log.n_actions, log.len_list
        self.action_space = spaces.Discrete(n_items)
        item_low = float(min(log.item_features.min(), 0.0))
        item_high = float(max(log.item_features.max(), 1.0))
        if self.observation_type == "dict":
            self.observation_space = spaces.Dict({
                "user": spaces.Box(0.0, 1.0, (n_user,), np.float32),
                "context": spaces.Box(0.0, 1.0, (len_list,), np.float32),
                "memory": spaces.Box(0.0, 1.0, (1, 3), np.float32),
                "variants": spaces.Box(item_low, item_high, log.item_features.shape, np.float32),
            })
        else:
            self.observation_space = spaces.Box(0.0, 1.0, (n_user + len_list,), np.float32)
        self._variants = log.item_features.astype(np.float32)
        self._index = 0
        self._steps = 0
        self._matches = 0
        self._clicks = 0

    # -- gymnasium API ---------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if self.config["start"] == "random":
            self._index = int(self.np_random.integers(0, self.log.n_rounds - self.episode_length + 1))
        else:
            self._index = 0
        self._steps = self._matches = self._clicks = 0
        return self._observation(), {"n_items": self.log.n_actions, "n_events": self.episode_length,
                                     "start_index": self._index, "campaign": self.log.campaign}

    def step(self, action):
        if not self.action_space.contains(action) and not (np.isscalar(action) and
                                                           self.action_space.contains(int(action))):
            raise ValueError(f"action {action!r} is not an item id in [0, {self.log.n_actions - 1}]")
        if self._steps >= self.episode_length or self._index >= self.log.n_rounds:
            raise RuntimeError("the episode is over (the replay reached its last logged event): call reset()")
        row = self._index
        logged = int(self.log.action[row])
        matched = int(action) == logged
        reward = float(self.log.reward[row]) if matched else 0.0
        self._steps += 1
        self._matches += matched
        self._clicks += int(reward)
        self._index += 1
        truncated = self._steps >= self.episode_length or self._index >= self.log.n_rounds
        info = {"matched": matched, "logged_action": logged, "position": int(self.log.position[row]),
                "events": self._steps, "matches": self._matches, "clicks": self._clicks,
                "match_rate": self._matches / self._steps,
                "replay_ctr": self._clicks / self._matches if self._matches else 0.0}  # 0 until the first match
        observation = self._observation(min(self._index, self.log.n_rounds - 1))
        return observation, reward, False, truncated, info

    # -- helpers ---------------------------------------------------------------------------------------------------
    def _observation(self, row: int | None = None):
        row = self._index if row is None else row
        user = self.log.context[row].astype(np.float32)
        position = np.zeros(self.log.len_list, np.float32)
        position[self.log.position[row]] = 1.0
        if self.observation_type == "flat":
            return np.concatenate([user, position])
        return {"user": user, "context": position, "memory": np.zeros((1, 3), np.float32),
                "variants": self._variants.copy()}
