"""Same seed, same episodes: short seeded episodes of every simulator env, pinned from before the speed work of
issue 17 (tests/data/env_golden_episodes.json, recorded from commit 8221166).

Speed changes must not change behaviour: each case below replays a seeded episode (random valid actions from a
seeded generator, resets without a seed continuing the stream) and compares rewards, flags, infos and a summary of
every observation with the pinned ones. Discrete values (actions' outcomes: clicks, conversions, churn, regime
shifts, segments, oracle actions, episode lengths and flags) must match exactly; floats to 1e-5 relative, or 1e-4
absolute (an observation's weighted-sum summary can be a small difference of terms near 100). Why a tolerance and not bit equality: the content's embeddings are float32 MiniLM outputs,
which move by about 1e-7 relative with the thread count, the batching and the CPU's instruction set (measured: a
fresh cache on this machine gave -0.0268945861608 where the cache the file was recorded from holds -0.0268945395947),
and everything computed from them moves as little; and the batched simulators may compute in another order what
is the same quantity (the drift's logit as the sum of per-part products rather than the product of the sum, numpy's
SIMD ``exp`` for the logistic function rather than scipy's scalar one, table lookups of ``log1p``), which moves the
last bits of floats (about 1e-16 relative) and nothing else, as long as every random draw is the same draw from the
same generator in the same order; a draw that changed, or a changed model, moves rewards and outcomes far beyond
1e-5, and a flipped click or churn fails the exact comparison. The floats are stored to 12 significant digits.
Regenerate the file only for an intended behaviour change (``python tests/test_env_golden_episodes.py``) and say so
in the commit.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import abgym  # noqa: F401  (registers the ids)

GOLDEN = Path(__file__).parent / "data" / "env_golden_episodes.json"
FLOAT_RTOL, FLOAT_ATOL = 1e-5, 1e-4  # float32 embeddings differ by ~1e-7 between caches and machines (docstring)


def summarize(observation) -> list[float]:
    """[sum, a fixed weighted sum] of an observation (dict in key order, or array), in float64."""
    if isinstance(observation, dict):
        flat = np.concatenate([np.asarray(observation[key], np.float64).ravel() for key in sorted(observation)])
    else:
        flat = np.asarray(observation, np.float64).ravel()
    weights = np.sin(np.arange(flat.size) * 0.37 + 1.0)
    return plain([float(flat.sum()), float(flat @ weights)])


def plain(value):
    """JSON-ready: numpy scalars and arrays as Python numbers and lists (bool arrays as strings of 0 and 1)."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, np.ndarray) and value.dtype == bool:
        return "".join("1" if flag else "0" for flag in value.ravel())  # compact, and compared exactly
    if isinstance(value, np.ndarray):
        return plain(value.tolist()) if value.dtype != object else [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return float(f"{value:.12g}")  # 12 digits: well inside the comparison, a third of the file
    return value


INFO_SKIP = {"arm_texts", "variant_texts", "attribute_names", "final_obs", "final_info", "_final_obs",
             "_final_info", "test_week", "test_id", "content_source", "target_ctr"}


def info_record(info: dict) -> dict:
    """The step info, with each float array (expected rewards, vector env rewards) as its summary."""
    record = {}
    for key, value in info.items():
        if key in INFO_SKIP or key.startswith("_"):
            continue
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            value = summarize(value)
        record[key] = value
    return plain(record)


def single_episode(env_id: str, kwargs: dict, seed: int, steps: int, masked: bool = False) -> dict:
    env = gym.make(env_id, **kwargs)
    rng = np.random.default_rng(seed + 1000)
    observation, info = env.reset(seed=seed)
    trace = {"reset": [summarize(observation)], "first_observation": plain(observation), "steps": []}
    for _ in range(steps):
        n_valid = int(np.sum(info["action_mask"])) if masked else int(env.action_space.n)
        action = int(rng.integers(n_valid))
        observation, reward, terminated, truncated, info = env.step(action)
        trace["steps"].append([action, float(reward), bool(terminated), bool(truncated), summarize(observation),
                               info_record(info)])
        if terminated or truncated:
            observation, info = env.reset()  # no seed: the stream continues
            trace["reset"].append(summarize(observation))
    return trace


def vector_episode(env_id: str, kwargs: dict, n: int, seed: int, steps: int) -> dict:
    envs = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", **kwargs)
    rng = np.random.default_rng(seed + 2000)
    observation, _ = envs.reset(seed=seed)
    trace = {"reset": summarize(observation), "steps": []}
    for _ in range(steps):
        actions = rng.integers(envs.single_action_space.n, size=n)
        observation, reward, terminated, truncated, info = envs.step(actions)
        final = ([summarize(o) if o is not None else None for o in info["final_obs"]] if "final_obs" in info
                 else None)
        trace["steps"].append([summarize(reward), plain(terminated), plain(truncated), summarize(observation),
                               info_record(info), final])
    return trace


BUSY_PM = dict(loyalty_gain=2.0, conversion_rate=0.4, drift_interval=3, regime_shift_prob=0.05, horizon=70,
               record_drift=True, observation_type="flat", churn_base=0.2)
CASES = {
    "ab_test_empirical": lambda: single_episode("abgym/ABTest-v0", {}, 3, 230, masked=True),
    "ab_test_posterior": lambda: single_episode("abgym/ABTest-v0", {"ctr_source": "posterior", "steps_per_episode": 40},
                                                4, 100, masked=True),
    "marketing_default": lambda: single_episode("abgym/PersonalizedMarketing-v0", {}, 5, 250),
    "marketing_busy_flat": lambda: single_episode("abgym/PersonalizedMarketing-v0", {"config": BUSY_PM}, 6, 160),
    "marketing_no_drift": lambda: single_episode("abgym/PersonalizedMarketing-v0",
                                                 {"config": {"drift": False, "horizon": 60}}, 7, 80),
    "marketing_vector": lambda: vector_episode("abgym/PersonalizedMarketing-v0", {"config": {"horizon": 30}}, 8, 8, 70),
    "marketing_vector_busy": lambda: vector_episode("abgym/PersonalizedMarketing-v0", {"config": BUSY_PM}, 16, 9, 80),
    "journey_default": lambda: single_episode("abgym/CustomerJourney-v0", {}, 10, 250),
    "journey_flat_short": lambda: single_episode("abgym/CustomerJourney-v0",
                                                 {"observation_type": "flat", "max_visits": 7,
                                                  "regime_shift_prob": 0.05}, 11, 90),
    "journey_no_drift": lambda: single_episode("abgym/CustomerJourney-v0", {"drift": False}, 12, 60),
    "journey_vector": lambda: vector_episode("abgym/CustomerJourney-v0", {"max_visits": 6}, 8, 13, 60),
    "journey_vector_same_step": lambda: vector_episode("abgym/CustomerJourney-v0",
                                                       {"max_visits": 5, "autoreset_mode": "SameStep"}, 8, 14, 40),
}


def assert_same(actual, expected, where: str) -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and sorted(actual) == sorted(expected), f"{where}: keys differ"
        for key in expected:
            assert_same(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: length differs"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{where}[{i}]")
    elif isinstance(expected, float) and not isinstance(actual, bool):
        assert isinstance(actual, (int, float)), f"{where}: {actual!r} is not a number"
        assert actual == pytest.approx(expected, rel=FLOAT_RTOL, abs=FLOAT_ATOL), f"{where}: {actual!r} != {expected!r}"
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text())


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_seed_gives_the_pinned_episode(case, golden):
    assert_same(plain(CASES[case]()), golden[case], case)


def test_the_pinned_episodes_would_catch_a_changed_reward(golden):
    """The comparison is not vacuous: a change of one reward by a thousandth (a changed draw moves it by far more)
    fails it."""
    changed = json.loads(json.dumps(golden["marketing_default"]))
    step = next(s for s in changed["steps"] if s[1] != 0.0)
    step[1] += 1e-3
    with pytest.raises(AssertionError):
        assert_same(changed, golden["marketing_default"], "marketing_default")


if __name__ == "__main__":  # regenerate (only for an intended behaviour change)
    from abgym.paths import atomic_write

    recorded = {case: plain(make()) for case, make in sorted(CASES.items())}
    with atomic_write(GOLDEN, "w") as handle:
        json.dump(recorded, handle, separators=(",", ":"))
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size:,} bytes)", file=sys.stderr)
