"""RLlib's PPO trains on abgym's envs unchanged (abgym.rllib): a few iterations on each, in CI."""
from __future__ import annotations

import math

import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'abgym[ray]'")

from abgym import rllib  # noqa: E402


def trained(name: str, iterations: int = 2, **settings) -> list[dict]:
    rows = rllib.train(name, iterations, seed=0, log=lambda line: None, train_batch_size=200, minibatch_size=100,
                       num_epochs=1, hidden=(32,), **settings)
    assert [row["iteration"] for row in rows] == list(range(1, iterations + 1))
    assert rows[-1]["env_steps"] >= 200 * iterations  # every iteration sampled its batch from the env
    return rows


@pytest.mark.parametrize("name, env_config", [("marketing", None), ("journey", None), ("abtest", None),
                                              ("marketing-batched", {"horizon": 40, "num_worlds": 8}),
                                              ("journey-batched", {"max_visits": 10, "num_worlds": 8})])
def test_ppo_trains_on_the_single_agent_envs(name, env_config, local_ray):
    """Each env ends episodes within the 400 sampled steps (8 batched worlds of 40 arrivals: 320)."""
    rows = trained(name, env_config=env_config)
    assert rows[-1]["episodes"] >= 1 and math.isfinite(rows[-1]["episode_return_mean"])
    assert all(math.isfinite(loss) for loss in rows[-1]["losses"].values()) and rows[-1]["losses"]


def test_ppo_trains_four_policies_on_the_pettingzoo_rpp_env(local_ray):
    from abgym.envs.prompt_personalization import AGENTS

    rows = trained("rpp")
    assert set(rows[-1]["losses"]) == set(AGENTS)  # one policy per prompt-pattern agent, each updated
    assert set(rows[-1]["module_returns"]) == set(AGENTS)


def test_unknown_env_and_bad_iterations_are_named():
    with pytest.raises(ValueError, match="unknown env 'cartpole'"):
        rllib.ppo_config("cartpole")
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        rllib.train("marketing", 0)
