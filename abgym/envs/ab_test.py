"""``abgym/ABTest-v0``: an adaptive A/B test replayed from a real Upworthy experiment.

Each episode is one experiment of the archive. Its packages are the arms, and each arm's true click-through rate is
its recorded CTR (``ctr_source="empirical"``) or a draw from the Beta posterior of its recorded clicks and
impressions (``ctr_source="posterior"``), so that replays of one experiment differ. Every step the agent chooses
the arm shown to the next batch of visitors and is rewarded with the clicks of that batch; the episode ends when the
experiment's recorded traffic is used up. The action space is ``Discrete(max_arms)`` with an action mask, because
experiments have 2 to 14 arms. See docs/ab_test_env.md.
"""
from __future__ import annotations

import logging
import math
import operator
from collections import Counter
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from abgym.data import upworthy
from abgym.envs.checks import PassiveChecksOnce, ResetNeeded
from abgym.envs.settings import merge_settings

logger = logging.getLogger(__name__)

# Columns of observation["arms"], one row per arm (zeros on masked arms).
ARM_FEATURES = ("traffic_share", "impressions", "clicks", "posterior_mean", "posterior_std")
CTR_SOURCES = ("empirical", "posterior")


class ArmSpace(spaces.Discrete):
    """``Discrete(max_arms)`` whose ``sample()`` draws only among the current experiment's arms.

    Without this, ``env.action_space.sample()`` (random policies, ``check_env``) would pick padded arms that do not
    exist in a 3-arm experiment. An explicit ``mask`` or ``probability`` argument still takes precedence.
    """

    valid_mask: np.ndarray | None = None  # int8, set by the environment at every reset

    def sample(self, mask=None, probability=None):
        if mask is None and probability is None and self.valid_mask is not None:
            mask = self.valid_mask
        return super().sample(mask=mask, probability=probability)


MAX_ARMS = 4096  # an observation of 4,096 arms is 86 KB; beyond that a typo, not an experiment


def default_config() -> dict[str, Any]:
    """The constructor's options and their defaults (``gymnasium.make`` keyword arguments override them)."""
    return dict(
        data_path=None,  # any archive package CSV (plain or .gz); None: the shipped exploratory subset
        split="all",  # "train" | "test" | "all"
        split_by="hash",  # "hash" of the test id | "week" (latest weeks are the test split)
        max_arms=14,  # size of the action space; experiments with more arms are skipped (counted)
        batch_size=None,  # visitors per step; None: the experiment's traffic / steps_per_episode, rounded up
        steps_per_episode=100,  # used when batch_size is None
        ctr_source="empirical",  # "empirical" (recorded CTR) | "posterior" (a Beta(1+clicks, 1+misses) draw per reset)
        experiment_id=None,  # replay only this test id
        render_mode=None,  # None | "ansi"
    )


class _Replay(NamedTuple):
    """An experiment's replay, as far as it is the same at every reset (the arrays are read-only)."""

    p: np.ndarray  # the recorded CTRs (ctr_source="empirical")
    p_list: list[float]
    best_ctr: float
    best_arm: int
    traffic: int
    arms: np.ndarray  # the first observation's rows: the Beta(1, 1) prior on the experiment's arms
    mask_bool: np.ndarray
    mask_int: np.ndarray
    editors_winner: tuple[int, ...]


class ABTestEnv(PassiveChecksOnce, gym.Env):
    """Replay one real A/B test per episode; the agent allocates batches of visitors to arms."""

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, config: dict[str, Any] | None = None, render_mode: str | None = None, **settings: Any):
        """Settings (:func:`default_config`) come as keyword arguments, ``config={...}``, or both (keywords win)."""
        if render_mode is not None:
            settings["render_mode"] = render_mode
        config = merge_settings("ABTest-v0", default_config(), config, settings,
                                see="abgym.envs.ab_test.default_config() and docs/ab_test_env.md")
        self.config = config
        self.render_mode = _check_choice("render_mode", config["render_mode"], [None, *self.metadata["render_modes"]])
        self.ctr_source = _check_choice("ctr_source", config["ctr_source"], CTR_SOURCES)
        self.max_arms = _check_int("max_arms", config["max_arms"], minimum=2)
        if self.max_arms > MAX_ARMS:  # every observation and mask is max_arms long
            raise ValueError(
                f"ABTest-v0 option max_arms must be at most {MAX_ARMS:,}, got {self.max_arms:,}: each observation "
                f"would hold {self.max_arms * (4 * len(ARM_FEATURES) + 1):,} bytes (the archive's tests have at "
                "most a few dozen arms); lower max_arms")
        self.steps_per_episode = _check_int("steps_per_episode", config["steps_per_episode"], minimum=1)
        self.batch_size = None if config["batch_size"] is None else _check_int("batch_size", config["batch_size"], 1)

        experiments, report = upworthy.load_dataset(
            config["data_path"], split=config["split"], split_by=config["split_by"]
        )
        self.load_report = report
        self.skipped = Counter()  # reason -> experiments of the split this env does not replay
        self.experiments = [e for e in experiments if e.n_arms <= self.max_arms]
        if len(self.experiments) < len(experiments):
            self.skipped[f"more_than_{self.max_arms}_arms"] = len(experiments) - len(self.experiments)
            logger.warning(
                "ABTest-v0 skips %d experiment(s) with more than max_arms=%d arms (raise max_arms to replay them)",
                self.skipped[f"more_than_{self.max_arms}_arms"], self.max_arms,
            )
        self._index_of = {e.test_id: i for i, e in enumerate(self.experiments)}
        self._all_ids = {e.test_id: e for e in experiments}
        self.fixed_index = None
        if config["experiment_id"] is not None:
            self.fixed_index = self._lookup(config["experiment_id"])
        if not self.experiments:
            raise ValueError(
                f"ABTest-v0 has no experiment to replay: split={config['split']!r} of {report.path} leaves "
                f"{len(experiments)} experiment(s), none with at most max_arms={self.max_arms} arms"
            )

        n = self.max_arms
        # Counts never exceed an experiment's recorded traffic, which bounds the observation space.
        most = float(max(e.impressions.sum() for e in self.experiments))
        high = np.tile(np.array([1.0, most, most, 1.0, 0.5], dtype=np.float32), (n, 1))
        self.observation_space = spaces.Dict(
            {
                "arms": spaces.Box(0.0, high, shape=(n, len(ARM_FEATURES)), dtype=np.float32),
                "traffic_left": spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32),
                "action_mask": spaces.MultiBinary(n),
            }
        )
        self.action_space = ArmSpace(n)
        self._experiment = None
        self._left = 0  # traffic left in the episode: none before the first reset
        self._replays: dict[int, _Replay] = {}
        self._traffic_left = np.ones(1, dtype=np.float32)  # copied into each observation

    # ------------------------------------------------------------------------------------------------ helpers
    def _lookup(self, test_id: str) -> int:
        test_id = str(test_id)
        if test_id in self._index_of:
            return self._index_of[test_id]
        if test_id in self._all_ids:
            n_arms = self._all_ids[test_id].n_arms
            raise ValueError(
                f"experiment {test_id!r} has {n_arms} arms, more than max_arms={self.max_arms}; "
                f"pass max_arms={n_arms} or more to replay it"
            )
        raise ValueError(
            f"experiment {test_id!r} is not in split={self.config['split']!r} (split_by="
            f"{self.config['split_by']!r}) of {self.load_report.path}; check the id or use split='all'"
        )

    def _choose_experiment(self, options: dict | None) -> int:
        options = dict(options or {})
        unknown = sorted(set(options) - {"experiment_id", "experiment_index"})
        if unknown:
            raise ValueError(f"ABTest-v0.reset got unknown option(s) {unknown}; valid: experiment_id, experiment_index")
        if options.get("experiment_id") is not None and options.get("experiment_index") is not None:
            raise ValueError("pass either experiment_id or experiment_index in reset options, not both")
        if options.get("experiment_id") is not None:
            return self._lookup(options["experiment_id"])
        if options.get("experiment_index") is not None:
            index = options["experiment_index"]
            if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not (
                0 <= index < len(self.experiments)
            ):
                raise ValueError(
                    f"experiment_index must be a whole number in [0, {len(self.experiments)}), got {index!r}"
                )
            return int(index)
        if self.fixed_index is not None:
            return self.fixed_index
        return int(self.np_random.integers(len(self.experiments)))

    @property
    def experiment(self) -> upworthy.Experiment:
        """The experiment of the current episode."""
        if self._experiment is None:
            raise RuntimeError("call reset() before using the environment")
        return self._experiment

    @property
    def true_ctr(self) -> np.ndarray:
        """The arms' true click-through rates in this episode (hidden from the agent's observation)."""
        return self._p.copy()

    def action_masks(self) -> np.ndarray:
        """Valid arms as a bool array (the method sb3-contrib's MaskablePPO calls)."""
        return self._mask_bool.copy()

    def _observation(self) -> dict[str, np.ndarray]:
        traffic_left = self._traffic_left.copy()  # a copy of a 1-element array: 3x cheaper than np.array([x])
        traffic_left[0] = self._left / self._traffic
        return {"arms": self._arms.copy(), "traffic_left": traffic_left, "action_mask": self._mask_int.copy()}

    def _prepare(self, index: int) -> _Replay:
        """What every reset of experiment ``index`` starts from, computed at its first reset (a reset then costs
        a third: issue 17's ABTest-v0 speed)."""
        experiment = self.experiments[index]
        k = experiment.n_arms
        p = np.asarray(experiment.clicks / experiment.impressions, dtype=np.float64)
        p.flags.writeable = False
        arms = np.zeros((self.max_arms, len(ARM_FEATURES)), dtype=np.float32)
        arms[:k, 3] = 0.5  # Beta(1, 1) prior: mean 1/2, std sqrt(1/12)
        arms[:k, 4] = math.sqrt(1.0 / 12.0)
        mask = np.zeros(self.max_arms, dtype=bool)
        mask[:k] = True
        mask_int = mask.astype(np.int8)
        for array in (arms, mask, mask_int):
            array.flags.writeable = False
        replay = _Replay(p=p, p_list=p.tolist(), best_ctr=float(p.max()), best_arm=int(np.argmax(p)),
                         traffic=int(experiment.impressions.sum()), arms=arms, mask_bool=mask, mask_int=mask_int,
                         editors_winner=tuple(int(i) for i in np.flatnonzero(experiment.winner)))
        self._replays[index] = replay
        return replay

    # ------------------------------------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if not self._reset_checked:
            return self._checked_reset(seed, options)
        super().reset(seed=seed)
        index = self._choose_experiment(options)
        experiment = self.experiments[index]
        self._experiment, self._index = experiment, index
        replay = self._replays.get(index) or self._prepare(index)
        k = experiment.n_arms
        if self.ctr_source == "posterior":
            p = self.np_random.beta(1.0 + experiment.clicks, 1.0 + experiment.impressions - experiment.clicks)
            self._p = np.asarray(p, dtype=np.float64)
            self._best_ctr = float(self._p.max())
            self._best_arm = int(np.argmax(self._p))
            self._p_list = self._p.tolist()
        else:
            self._p, self._p_list = replay.p, replay.p_list
            self._best_ctr, self._best_arm = replay.best_ctr, replay.best_arm
        self._traffic = replay.traffic
        self._batch = self.batch_size or math.ceil(self._traffic / self.steps_per_episode)
        self._left = self._traffic
        # Per-arm counts as Python lists and CTRs as floats: step() touches one arm, and scalar numpy indexing
        # would cost more than the arithmetic.
        self._n = [0] * k
        self._c = [0] * k
        self._n_arms = k
        self._arms = replay.arms.copy()
        self._mask_bool, self._mask_int = replay.mask_bool, replay.mask_int
        self.action_space.valid_mask = self._mask_int
        self.np_random  # noqa: B018  (creates the unseeded generator now: step() reads _np_random directly)
        info = {
            "n_arms": k,
            "action_mask": self._mask_bool.copy(),
            "arm_texts": list(experiment.headlines),
            "test_id": experiment.test_id,
            "test_week": experiment.test_week,
            "experiment_index": index,
            "batch_size": self._batch,
            "traffic": self._traffic,
            "horizon": math.ceil(self._traffic / self._batch),
            "editors_winner": list(replay.editors_winner),
        }
        return self._observation(), info

    def step(self, action):
        if not self._step_checked and self._experiment is not None:
            return self._checked_step(action)
        left = self._left  # 0 before the first reset, as at the end of an episode
        if left <= 0:
            if self._experiment is None:
                raise ResetNeeded("call reset() before step()")
            raise ResetNeeded("the episode is over (the experiment's traffic is used up); call reset()")
        n_arms = self._n_arms
        if type(action) is int and 0 <= action < n_arms:  # the common case, without operator.index's call
            arm = action
        else:
            try:
                arm = operator.index(action)  # ints, numpy integers and 0-d integer arrays; not floats
            except TypeError:
                arm = None
            if arm is None or not 0 <= arm < n_arms:
                raise ValueError(
                    f"invalid action {action!r}: experiment {self._experiment.test_id} has {n_arms} arms, "
                    f"so valid actions are 0..{n_arms - 1} (see info['action_mask'] or action_masks())"
                )
        batch = self._batch
        if batch > left:
            batch = left
        p = self._p_list[arm]
        clicks = self._np_random.binomial(batch, p)  # a Python int
        left -= batch
        self._left = left
        n = self._n[arm] = self._n[arm] + batch
        c = self._c[arm] = self._c[arm] + clicks
        mean = (1.0 + c) / (2.0 + n)
        # Only the chosen arm's row changes (the other arms' traffic shares are relative to the whole experiment).
        arms, traffic = self._arms, self._traffic
        row = arms[arm]
        row[0] = n / traffic
        row[1] = n
        row[2] = c
        row[3] = mean
        row[4] = math.sqrt(mean * (1.0 - mean) / (3.0 + n))
        terminated = left == 0
        info = {
            "impressions": batch,
            "clicks": clicks,
            "expected_regret": batch * (self._best_ctr - p),  # int x float: a float
            "best_arm": self._best_arm,
            "action_mask": self._mask_bool.copy(),  # a copy: check_env wants no data shared between calls
        }
        if terminated:
            # The env's own declaration: the arm with the highest Beta(1, 1)-posterior mean CTR.
            means = (1.0 + np.asarray(self._c)) / (2.0 + np.asarray(self._n))
            winner = int(np.argmax(means))
            info["declared_winner"] = winner
            info["winner_is_best"] = bool(self._p[winner] >= self._best_ctr)
        traffic_left = self._traffic_left.copy()
        traffic_left[0] = left / traffic
        observation = {"arms": arms.copy(), "traffic_left": traffic_left, "action_mask": self._mask_int.copy()}
        return observation, float(clicks), terminated, False, info

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() called with render_mode=None; pass render_mode='ansi' to get a text table")
            return None
        if self._experiment is None:
            return "ABTest-v0: not reset yet\n"
        e = self._experiment
        lines = [
            f"ABTest-v0 test {e.test_id} (week {e.test_week}), "
            f"step {math.ceil((self._traffic - self._left) / self._batch)}, "
            f"traffic left {self._left}/{self._traffic}",
            f"{'arm':>3} {'shown':>7} {'clicks':>6} {'post.mean':>9}  headline",
        ]
        for arm in range(e.n_arms):
            headline = e.headlines[arm]
            headline = headline if len(headline) <= 60 else headline[:57] + "..."
            lines.append(
                f"{arm:>3} {self._n[arm]:>7} {self._c[arm]:>6} {self._arms[arm, 3]:>9.4f}  {headline}"
            )
        return "\n".join(lines) + "\n"


def _check_choice(name: str, value, choices):
    if value not in choices:
        raise ValueError(f"ABTest-v0 option {name}={value!r} is not valid; choose from {list(choices)}")
    return value


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"ABTest-v0 option {name} must be a whole number >= {minimum}, got {value!r}")
    return int(value)
