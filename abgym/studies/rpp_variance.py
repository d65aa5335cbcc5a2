"""The variance decomposition behind RPP's learnable signal: how much of NDCG@10 is the user, how much the prompt.

Used by ``experiments/rpp_prompt_variance.py`` on a crossed design (every user ranked under every prompt). The
prompt's share of *within-user* variance is what one prompt for everyone can gain; the split-half correlation says
whether the prompts' effects replicate on other users (real effects) or not (noise a policy would chase).
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def decompose(frame: pd.DataFrame, *, splits: int = 200, seed: int = 0) -> dict:
    """The crossed-design decomposition of NDCG@10 (columns user, prompt, ndcg@10; every user x every prompt)."""
    from scipy import stats

    table = frame.pivot_table(index="user", columns="prompt", values="ndcg@10", aggfunc="mean")
    if table.isna().any().any():
        raise ValueError("the decomposition needs every user ranked under every prompt")
    y = table.to_numpy()
    n_users, n_prompts = y.shape
    grand = y.mean()
    ss_total = float(((y - grand) ** 2).sum())
    ss_user = float(n_prompts * ((y.mean(axis=1) - grand) ** 2).sum())
    ss_prompt = float(n_users * ((y.mean(axis=0) - grand) ** 2).sum())
    ss_within = ss_total - ss_user
    ss_residual = ss_within - ss_prompt
    df_prompt, df_residual = n_prompts - 1, (n_users - 1) * (n_prompts - 1)
    f_value = (ss_prompt / df_prompt) / (ss_residual / df_residual) if ss_residual > 0 else float("inf")
    rng = np.random.default_rng(seed)
    correlations = []
    for _ in range(splits):
        order = rng.permutation(n_users)
        halves = [y[order[: n_users // 2]], y[order[n_users // 2:]]]
        effects = [h.mean(axis=0) - h.mean() for h in halves]
        if min(np.std(e) for e in effects) > 0:
            correlations.append(float(np.corrcoef(*effects)[0, 1]))
    correlations = np.array(correlations)
    prompt_means = y.mean(axis=0)
    return {
        "users": n_users,
        "prompts": n_prompts,
        "user_share": ss_user / ss_total if ss_total else float("nan"),
        "prompt_share_within_user": ss_prompt / ss_within if ss_within else float("nan"),
        "interaction_share_within_user": ss_residual / ss_within if ss_within else float("nan"),
        "prompt_f_p": float(stats.f.sf(f_value, df_prompt, df_residual)) if np.isfinite(f_value) else 0.0,
        "split_half_r": float(correlations.mean()) if len(correlations) else float("nan"),
        "split_half_positive": float((correlations > 0).mean()) if len(correlations) else float("nan"),
        "prompt_spread": float(prompt_means.max() - prompt_means.min()),
        "per_user_headroom": float((y.max(axis=1) - y.mean(axis=1)).mean()),  # best prompt minus the mean, per user
    }
