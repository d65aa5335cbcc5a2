"""Off-policy evaluation on the Open Bandit Dataset: the dataset's own validation, and abgym's agents valued offline.

**Validation** (:func:`validate_bts_from_random`), the protocol of OBD's authors (Saito et al. 2021, section 5;
``examples/obd/evaluate_off_policy_estimators.py`` in their repository): ZOZOTOWN served the same traffic with two
policies at once, uniform random and Bernoulli Thompson sampling (BTS). Estimate the BTS policy's click rate from
the *random* log, off-policy, and compare it with BTS's on-policy click rate in its *own* log. BTS's action
probabilities come from the production prior shipped with the dataset (``obp/policy/conf/prior_bts.yaml``), by
Monte Carlo simulation of its ranking, as the authors compute them. The relative error ``|estimate - on-policy| /
on-policy`` is reported per estimator, with a bootstrap interval that resamples both logs.

**Agents offline** (:func:`evaluate_agents`): abgym's linear contextual bandits (LinUCB, linear Thompson sampling,
epsilon-greedy; :mod:`abgym.agents.contextual`) learn from the earlier 70 % of the random log (every logged
impression is one update with the logged item and click: on uniform-random data the regression is unbiased), then,
frozen, act on each later impression; their action distributions there are valued by the estimators. The replay env
(``abgym/OpenBanditReplay-v0``) runs the same agents online, learning as they go (:func:`replay_agents`).
"""
from __future__ import annotations

import time

import numpy as np

from abgym.data.open_bandit import CAMPAIGNS, load_bts_prior, load_open_bandit
from abgym.ope import (ESTIMATORS, RewardModel, at_logged_position, bernoulli_ts_action_dist, estimate_policy_value,
                       on_policy_value, uniform_action_dist)
from abgym.ope.estimators import refit_bootstrap

__all__ = ["AGENT_POLICIES", "POLICIES", "agent_action_dist", "agent_observation", "agents_table", "evaluate_agents", "policy_support", "ppo_action_dist",
           "replay_agents", "replay_table", "train_offline", "train_ppo_on_replay", "validate_bts_from_random", "validation_table",
           "write_agents_report"]


def validate_bts_from_random(campaign: str = "all", data_path=None, *, n_sim: int = 100_000, n_bootstrap: int = 2000,
                             seed: int = 0, reward_model: RewardModel | None = None, model_refits: int = 0) -> dict:
    """Estimate BTS's value from the random log, compare with BTS's on-policy click rate (see the module docstring).

    Returns the JSON of ``abgym ope validate``: ``{"on_policy": {"value", "ci", ...}, "estimators": {name: {"estimate",
    "ci", "relative_error", "relative_error_ci", "covers_on_policy"}}, ...}``. Intervals: bootstrap percentile over
    rows; with ``model_refits`` > 0, DM's and DR's come from that many resamples that refit the reward model too
    (:func:`abgym.ope.estimators.refit_bootstrap`), which includes the model's own uncertainty.
    """
    if campaign not in CAMPAIGNS:
        raise ValueError(f"campaign must be one of {list(CAMPAIGNS)}, got {campaign!r}")
    started = time.perf_counter()
    random_log = load_open_bandit("random", campaign, data_path)
    bts_log = load_open_bandit("bts", campaign, data_path)
    alpha, beta = load_bts_prior(campaign)
    if alpha.size != random_log.n_actions:
        raise ValueError(f"the BTS prior has {alpha.size} items, the {campaign} log {random_log.n_actions}")
    bts_dist = bernoulli_ts_action_dist(alpha, beta, len_list=random_log.len_list, n_sim=n_sim, seed=seed)
    reward_model = reward_model or RewardModel(seed=seed)
    rewards_hat = reward_model.fit_predict(random_log)
    estimates = estimate_policy_value(random_log, bts_dist, ESTIMATORS, rewards_hat, n_bootstrap=n_bootstrap,
                                      seed=seed)
    truth = on_policy_value(bts_log.reward, n_bootstrap=n_bootstrap, seed=seed + 1)  # independent resamples
    replicates = {name: estimate.replicates for name, estimate in estimates.items()}
    ci_method = {name: "rows" for name in estimates}
    if model_refits:
        replicates.update(refit_bootstrap(random_log, bts_dist, reward_model, ("dm", "dr"), n_refits=model_refits,
                                          seed=seed))
        ci_method.update(dm="rows and reward-model refits", dr="rows and reward-model refits")
    result = {
        "campaign": campaign,
        "data": {"random_log": random_log.source, "bts_log": bts_log.source,
                 "random_rounds": random_log.n_rounds, "random_clicks": random_log.clicks,
                 "bts_rounds": bts_log.n_rounds, "bts_clicks": bts_log.clicks},
        "settings": {"n_sim": n_sim, "n_bootstrap": n_bootstrap, "model_refits": model_refits, "seed": seed,
                     "ci": "bootstrap percentile, 95%",
                     "reward_model": "cross-fitted logistic regression (user, item, position, affinity)"},
        "on_policy": {"value": truth.value, "ci": list(truth.ci)},
        "random_policy_on_policy": {"value": float(random_log.reward.mean())},
        "estimators": {},
    }
    for name, estimate in estimates.items():
        values = replicates[name]
        low, high = (float(v) for v in np.quantile(values, [0.025, 0.975]))
        truth_values = truth.replicates[:values.size]
        relative = np.abs(values - truth_values) / np.maximum(truth_values, 1e-12)
        result["estimators"][name] = {
            "estimate": estimate.value, "ci": [low, high], "se": estimate.se, "ci_resamples": ci_method[name],
            "relative_error": abs(estimate.value - truth.value) / truth.value,
            "relative_error_ci": [float(v) for v in np.quantile(relative, [0.025, 0.975])],
            "covers_on_policy": bool(low <= truth.value <= high),
        }
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def validation_table(results: list[dict]) -> str:
    """Markdown: one row per (campaign, estimator), beside the on-policy value."""
    lines = ["| campaign | estimator | estimate of BTS's CTR [95% CI] | BTS on-policy CTR [95% CI] | relative error "
             "[95% CI] | on-policy in CI | CI resamples |", "|---|---|---|---|---|---|---|"]
    for result in results:
        truth = result["on_policy"]
        for name, row in result["estimators"].items():
            lines.append(
                f"| {result['campaign']} | {name} | {_pct(row['estimate'])} [{_pct(row['ci'][0])}, {_pct(row['ci'][1])}]"
                f" | {_pct(truth['value'])} [{_pct(truth['ci'][0])}, {_pct(truth['ci'][1])}]"
                f" | {row['relative_error']:.3f} [{row['relative_error_ci'][0]:.3f}, {row['relative_error_ci'][1]:.3f}]"
                f" | {'yes' if row['covers_on_policy'] else 'no'} | {row['ci_resamples']} |")
    return "\n".join(lines)


def _pct(value: float) -> str:
    return f"{100 * value:.3f}%"


# -- abgym's agents, valued offline -------------------------------------------------------------------------------------
# name -> (factory keyword arguments, how the action distribution is computed). Hyperparameters are the agents'
# defaults; the features are the user's one-hot portrait and the position (see agent_observation).
AGENT_POLICIES = ("linucb", "lints", "egreedy")
BASELINE_POLICIES = ("bts", "random")
POLICIES = AGENT_POLICIES + ("ppo",) + BASELINE_POLICIES


def agent_observation(log, row: int) -> dict:
    """One logged impression as the Dict observation abgym's contextual bandits read.

    ``user``: the user's one-hot features; ``context``: the position's one-hot; ``memory``: empty (OBD logs no
    history); ``variants``: the item table (item_feature_0 and the label-encoded categories).
    """
    position = np.zeros(log.len_list)
    position[log.position[row]] = 1.0
    return {"user": log.context[row], "context": position, "memory": np.zeros((1, 3)),
            "variants": log.item_features}


def make_agent(name: str, seed: int):
    from abgym.agents.contextual import make_contextual_agent
    from abgym.agents.features import FeatureMap

    return make_contextual_agent(name, features=FeatureMap(model="disjoint", use_memory=False), seed=seed)


def train_offline(agent, log) -> None:
    """One update per logged impression, with the logged item and click (unbiased on uniform-random logs)."""
    agent.reset(log.n_actions, {}, seed=agent.seed)
    for row in range(log.n_rounds):
        agent.act(agent_observation(log, row), {})  # caches the features; the choice itself is not used
        agent.update(int(log.action[row]), float(log.reward[row]))


def agent_action_dist(agent, log, n_samples: int = 64) -> np.ndarray:
    """The frozen agent's probability of each item at each row's logged position: (n_rounds, n_actions).

    LinUCB is deterministic (one-hot on the highest bound); epsilon-greedy is ``1 - epsilon`` on the best posterior
    mean plus ``epsilon`` spread evenly; linear Thompson sampling is estimated from ``n_samples`` posterior draws.
    """
    from abgym.ope import greedy_action_dist

    out = np.zeros((log.n_rounds, log.n_actions))
    for row in range(log.n_rounds):
        X = agent.features.arm_features(agent_observation(log, row))
        if agent.name == "lints":
            picks = [int(np.argmax(agent.scores(X))) for _ in range(n_samples)]
            out[row] = np.bincount(picks, minlength=log.n_actions) / n_samples
        else:
            out[row] = greedy_action_dist(agent.scores(X)[None])[0]
            if agent.name == "egreedy":
                out[row] = (1 - agent.epsilon) * out[row] + agent.epsilon / log.n_actions
    return out


def train_ppo_on_replay(log, steps: int, seed: int):
    """SB3 PPO (MLP policy over ``[user one-hot, position one-hot]``) trained on the replay env over ``log``.

    Every replayed step is a training step, matched or not: with uniform logging an action matches with the same
    probability 1/n_items whatever it is, so the expected replay reward of item ``a`` is q(x, a) / n_items, the true
    click rate scaled, and PPO's objective has the same best policy. ``gamma=0``: impressions are independent bandit
    rounds. One torch thread (the machine is shared), restored afterwards.
    """
    import torch
    from stable_baselines3 import PPO

    from abgym.envs.open_bandit_replay import OpenBanditReplayEnv

    if steps < 64:
        raise ValueError(f"ppo_steps must be >= 64, got {steps}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        env = OpenBanditReplayEnv(log=log, observation_type="flat")
        n_steps = min(2048, steps)
        model = PPO("MlpPolicy", env, gamma=0.0, gae_lambda=1.0, n_steps=n_steps, batch_size=min(256, n_steps),
                    seed=seed, device="cpu", verbose=0)
        model.learn(steps)
    finally:
        torch.set_num_threads(threads)
    return model


def ppo_action_dist(model, log) -> np.ndarray:
    """The PPO policy's probability of every item at each row's logged position: (n_rounds, n_actions)."""
    import torch

    position = np.eye(log.len_list, dtype=np.float32)[log.position]
    observations = torch.as_tensor(np.concatenate([log.context.astype(np.float32), position], axis=1))
    with torch.no_grad():
        probs = model.policy.get_distribution(observations).distribution.probs.numpy().astype(np.float64)
    return probs / probs.sum(axis=1, keepdims=True)


def evaluate_agents(policies=POLICIES, *, campaign: str = "all", data_path=None, test_fraction: float = 0.3,
                    n_bootstrap: int = 2000, model_refits: int = 100, seed: int = 0, n_sim: int = 100_000,
                    ppo_steps: int = 50_000) -> dict:
    """Value each policy on the later ``test_fraction`` of the random log (see the module docstring).

    ``ppo`` is SB3's PPO trained for ``ppo_steps`` on the replay env over the earlier part of the log (see
    :func:`train_ppo_on_replay`); its action distribution is its policy's softmax, exactly.
    """
    unknown = [name for name in policies if name not in POLICIES]
    if unknown:
        raise ValueError(f"unknown policy(ies) {unknown}; choose from {list(POLICIES)}")
    if not policies:
        raise ValueError("no policy to evaluate")
    started = time.perf_counter()
    log = load_open_bandit("random", campaign, data_path)
    train, test = log.split_by_time(test_fraction)
    dists, timings = {}, {}
    for name in policies:
        tick = time.perf_counter()
        if name == "random":
            dists[name] = uniform_action_dist(log.n_actions, log.len_list)
        elif name == "bts":
            alpha, beta = load_bts_prior(campaign)
            dists[name] = bernoulli_ts_action_dist(alpha, beta, log.len_list, n_sim=n_sim, seed=seed)
        elif name == "ppo":
            model = train_ppo_on_replay(train, ppo_steps, seed)
            dists[name] = ppo_action_dist(model, test)
        else:
            agent = make_agent(name, seed)
            train_offline(agent, train)
            dists[name] = agent_action_dist(agent, test)
        timings[name] = round(time.perf_counter() - tick, 2)
    reward_model = RewardModel(seed=seed)
    rewards_hat = reward_model.fit_predict(test)
    refits = refit_bootstrap(test, dists, reward_model, ("dm", "dr"), n_refits=model_refits, seed=seed) \
        if model_refits else {}
    rows = []
    for name, dist in dists.items():
        estimates = estimate_policy_value(test, dist, ESTIMATORS, rewards_hat, n_bootstrap=n_bootstrap, seed=seed)
        for estimator, estimate in estimates.items():
            low, high = estimate.ci
            resamples = "rows"
            if estimator in refits.get(name, {}):
                low, high = (float(v) for v in np.quantile(refits[name][estimator], [0.025, 0.975]))
                resamples = "rows and reward-model refits"
            rows.append({"policy": name, "estimator": estimator, "estimate": estimate.value, "ci_low": low,
                         "ci_high": high, "ci_resamples": resamples})
    return {"campaign": campaign, "rows": rows, "train_rounds": train.n_rounds, "test_rounds": test.n_rounds,
            "support": {name: policy_support(test, dist) for name, dist in dists.items()},
            "test_clicks": test.clicks, "test_on_policy_ctr": float(test.reward.mean()), "source": log.source,
            "settings": {"test_fraction": test_fraction, "n_bootstrap": n_bootstrap, "model_refits": model_refits,
                         "seed": seed, "n_sim": n_sim, "ppo_steps": ppo_steps if "ppo" in policies else None},
            "train_seconds": timings, "seconds": round(time.perf_counter() - started, 2)}


def policy_support(log, action_dist) -> dict:
    """How much of the log speaks to a policy: the evidence behind its IPS estimate.

    ``top_item_probability``: mean over rows of the policy's largest item probability (1/n_items when uniform, 1
    when deterministic). ``effective_rows``: Kish's effective sample size of the importance weights, (sum w)^2 /
    sum w^2. ``supported_clicks``: logged clicks on items the policy could have shown (weight > 0); with none, every
    weighted estimate is 0 and its bootstrap interval collapses to [0, 0]: no evidence, not a measured zero.
    ``favoured_clicks``: logged clicks the policy was at least as likely as the logger to show (weight >= 1): the
    clicks that carry an estimate (one such click at weight 76 is 2.5 points of CTR on 3,000 rows).
    """
    dist = np.broadcast_to(at_logged_position(action_dist, log.position), (log.n_rounds, log.n_actions))
    weight = dist[np.arange(log.n_rounds), log.action] / log.pscore
    return {"top_item_probability": float(dist.max(axis=1).mean()),
            "effective_rows": float(weight.sum() ** 2 / max((weight ** 2).sum(), 1e-300)),
            "supported_clicks": int(log.reward[weight > 0].sum()),
            "favoured_clicks": int(log.reward[weight >= 1 - 1e-12].sum())}


def agents_table(result: dict) -> str:
    """Markdown: one row per policy, one column per estimator (estimate and 95 % interval, as CTR in %)."""
    by_policy: dict[str, dict] = {}
    for row in result["rows"]:
        by_policy.setdefault(row["policy"], {})[row["estimator"]] = row
    support = result.get("support", {})
    lines = ["| policy | " + " | ".join(f"{name} [95% CI]" for name in ESTIMATORS)
             + " | top-item probability | effective rows | clicks w>0 | clicks w>=1 |",
             "|---|" + "---|" * (len(ESTIMATORS) + 4)]
    for policy, cells in by_policy.items():
        row = support.get(policy, {})
        lines.append(f"| {policy} | " + " | ".join(
            f"{_pct(cells[e]['estimate'])} [{_pct(cells[e]['ci_low'])}, {_pct(cells[e]['ci_high'])}]"
            for e in ESTIMATORS) + f" | {row.get('top_item_probability', float('nan')):.3f}"
            f" | {row.get('effective_rows', float('nan')):.0f} | {row.get('supported_clicks', '')}"
            f" | {row.get('favoured_clicks', '')} |")
    return "\n".join(lines)


def write_agents_report(result: dict, out) -> list:
    """``agents.csv``, ``agents.md``, ``agents.json`` and ``agents.png`` (estimates with intervals) in ``out``."""
    import csv
    import io
    import json
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from abgym.paths import atomic_write

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(result["rows"][0]))
    writer.writeheader()
    writer.writerows(result["rows"])
    paths = [out / "agents.csv", out / "agents.md", out / "agents.json", out / "agents.png"]
    with atomic_write(paths[0], "w") as handle:
        handle.write(buffer.getvalue())
    with atomic_write(paths[1], "w") as handle:
        handle.write(f"Open Bandit Dataset, campaign {result['campaign']}: policies valued on the last "
                     f"{result['test_rounds']} impressions of the random log ({result['test_clicks']} clicks, "
                     f"on-policy CTR {_pct(result['test_on_policy_ctr'])}).\n\n{agents_table(result)}\n")
        if result.get("replay"):
            handle.write(f"\nOnline on abgym/OpenBanditReplay-v0 (one pass over the whole random log per seed):\n\n"
                         f"{replay_table(result['replay'])}\n")
    with atomic_write(paths[2], "w") as handle:
        json.dump(result, handle, indent=2)
    policies = list(dict.fromkeys(row["policy"] for row in result["rows"]))
    figure, axis = plt.subplots(figsize=(1.6 + 1.4 * len(policies), 3.6))
    width = 0.8 / len(ESTIMATORS)
    for k, estimator in enumerate(ESTIMATORS):
        rows = [next(r for r in result["rows"] if r["policy"] == p and r["estimator"] == estimator) for p in policies]
        x = np.arange(len(policies)) + (k - (len(ESTIMATORS) - 1) / 2) * width
        values = np.array([r["estimate"] for r in rows]) * 100
        errors = np.array([[r["estimate"] - r["ci_low"], r["ci_high"] - r["estimate"]] for r in rows]).T * 100
        axis.errorbar(x, values, yerr=np.maximum(errors, 0), fmt="o", capsize=3, label=estimator)
    axis.axhline(result["test_on_policy_ctr"] * 100, color="grey", linestyle="--", linewidth=1,
                 label="random policy, on-policy")
    axis.set_xticks(np.arange(len(policies)), policies)
    axis.set_ylabel("estimated CTR per impression (%)")
    axis.set_title(f"OBD {result['campaign']}: off-policy estimates, 95% intervals", fontsize=10)
    axis.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    with atomic_write(paths[3], "wb") as handle:
        figure.savefig(handle, format="png", dpi=120)
    plt.close(figure)
    return paths


# -- the same agents online, on the replay env ------------------------------------------------------------------------
REPLAY_POLICIES = AGENT_POLICIES + BASELINE_POLICIES


def replay_agents(policies=REPLAY_POLICIES, *, campaign: str = "all", data_path=None, seeds=(0, 1, 2, 3, 4)) -> list[dict]:
    """Run each policy through ``abgym/OpenBanditReplay-v0`` (one pass over the random log per seed).

    The contextual bandits start empty and learn only from matched events (Li et al. 2011); ``bts`` ranks the items
    by one draw from ZOZOTOWN's prior per impression and shows the item its rank puts at the logged position;
    ``random`` picks uniformly. Returns one row per (policy, seed): events, matches, clicks, replay CTR, seconds.
    """
    from abgym.envs.open_bandit_replay import OpenBanditReplayEnv

    unknown = [name for name in policies if name not in REPLAY_POLICIES]
    if unknown:
        raise ValueError(f"unknown policy(ies) {unknown}; choose from {list(REPLAY_POLICIES)}")
    log = load_open_bandit("random", campaign, data_path)
    prior = load_bts_prior(campaign) if "bts" in policies else None
    rows = []
    for name in policies:
        for seed in seeds:
            tick = time.perf_counter()
            env = OpenBanditReplayEnv(log=log)
            observation, info = env.reset(seed=seed)
            rng = np.random.default_rng(seed)
            agent = None
            if name in AGENT_POLICIES:
                agent = make_agent(name, seed)
                agent.reset(log.n_actions, info, seed=seed)
            truncated = False
            while not truncated:
                if agent is not None:
                    action = agent.act(observation, info)
                elif name == "bts":
                    ranking = np.argsort(-rng.beta(*prior))
                    action = int(ranking[int(np.argmax(observation["context"]))])
                else:
                    action = int(rng.integers(log.n_actions))
                observation, reward, _, truncated, info = env.step(action)
                if agent is not None and info["matched"]:
                    agent.update(action, reward)
            rows.append({"policy": name, "seed": seed, "events": info["events"], "matches": info["matches"],
                         "clicks": info["clicks"], "match_rate": info["match_rate"], "replay_ctr": info["replay_ctr"],
                         "seconds": round(time.perf_counter() - tick, 2)})
    return rows


def replay_table(rows: list[dict]) -> str:
    """Markdown: per policy, the mean over seeds of matches, clicks and replay CTR, and a 95 % Wilson interval.

    The interval treats one run's matched events as the sample (the seeds replay the same log, so pooling them
    would overstate the data): mean clicks out of mean matches.
    """
    lines = ["| policy | seeds | events | matches (match rate) | clicks | replay CTR [95% Wilson CI] |",
             "|---|---|---|---|---|---|"]
    z = 1.959963984540054
    for policy in dict.fromkeys(row["policy"] for row in rows):
        runs = [row for row in rows if row["policy"] == policy]
        matches = float(np.mean([r["matches"] for r in runs]))
        clicks = float(np.mean([r["clicks"] for r in runs]))
        p = clicks / matches if matches else 0.0
        centre = (p + z * z / (2 * matches)) / (1 + z * z / matches)
        half = z * np.sqrt(p * (1 - p) / matches + z * z / (4 * matches ** 2)) / (1 + z * z / matches)
        lines.append(f"| {policy} | {len(runs)} | {runs[0]['events']} | {matches:.1f} ({100 * matches / runs[0]['events']:.2f}%)"
                     f" | {clicks:.1f} | {_pct(p)} [{_pct(max(centre - half, 0.0))}, {_pct(centre + half)}] |")
    return "\n".join(lines)
