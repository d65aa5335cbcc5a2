"""The variance decomposition finds planted user and prompt effects, and split-half replication tells them from noise."""
import numpy as np
import pandas as pd
import pytest

from abgym.studies.rpp_variance import decompose


def crossed(prompt_effect: float, seed: int = 0, users: int = 40, prompts: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    user = rng.normal(0, 0.2, users)[:, None]
    prompt = prompt_effect * np.linspace(-1, 1, prompts)[None, :]
    y = 0.5 + user + prompt + rng.normal(0, 0.05, (users, prompts))
    return pd.DataFrame([{"user": u, "prompt": p, "ndcg@10": y[u, p]} for u in range(users) for p in range(prompts)])


def test_planted_prompt_effect_is_found_and_replicates():
    result = decompose(crossed(prompt_effect=0.1))
    # prompt variance 0.1^2 * var(linspace) = 0.0040 against noise 0.0025 inside users
    assert 0.5 < result["prompt_share_within_user"] < 0.75 and result["prompt_f_p"] < 1e-6
    assert result["split_half_r"] > 0.9 and result["split_half_positive"] == 1.0
    assert result["user_share"] > 0.6
    assert result["prompt_share_within_user"] + result["interaction_share_within_user"] == pytest.approx(1.0)


def test_noise_prompts_do_not_replicate():
    result = decompose(crossed(prompt_effect=0.0, seed=1))
    assert result["prompt_share_within_user"] < 0.05 and result["prompt_f_p"] > 0.01
    assert abs(result["split_half_r"]) < 0.3


def test_missing_cells_are_refused():
    frame = crossed(0.1).iloc[1:]
    with pytest.raises(ValueError, match="every user ranked under every prompt"):
        decompose(frame)
