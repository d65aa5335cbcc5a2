"""abgym's off-policy estimators against obp's own on the Open Bandit Dataset sample (BTS valued from the random log).

    .venv/bin/python scripts/crosscheck_obp.py [--campaign all]

Needs obp==0.4.1 (the Makefile installs it --no-deps) and mypy-extensions (the dev extra), the one import obp lacks.
obp's own ``OpenBanditDataset`` class does not load on pandas >= 2 (``DataFrame.drop(..., 1)``), so both sides read
the log through ``abgym.data.open_bandit``; the BTS action probabilities are simulated by each library (100,000
draws) and compared, then every estimator is run by both on the same inputs.
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaign", default="all", choices=("all", "men", "women"))
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from obp.ope import DirectMethod, DoublyRobust, InverseProbabilityWeighting
        from obp.ope import SelfNormalizedInverseProbabilityWeighting
        from obp.policy import BernoulliTS

    from abgym.data.open_bandit import load_bts_prior, load_open_bandit
    from abgym.ope import ESTIMATORS, RewardModel, bernoulli_ts_action_dist, estimate_policy_value

    log = load_open_bandit("random", args.campaign)
    alpha, beta = load_bts_prior(args.campaign)
    tick = time.perf_counter()
    ours_dist = bernoulli_ts_action_dist(alpha, beta, log.len_list, n_sim=100_000, seed=0)
    ours_seconds = time.perf_counter() - tick
    tick = time.perf_counter()
    obp_dist = BernoulliTS(n_actions=log.n_actions, len_list=log.len_list, is_zozotown_prior=True,
                           campaign=args.campaign, random_state=0).compute_batch_action_dist(n_rounds=1, n_sim=100_000)
    obp_seconds = time.perf_counter() - tick
    print(f"BTS action probabilities, 100,000 draws: abgym {ours_seconds:.2f} s, obp {obp_seconds:.2f} s; "
          f"largest difference {np.abs(ours_dist - obp_dist).max():.4f} (largest probability {ours_dist.max():.4f})")

    q = RewardModel(seed=0).fit_predict(log)
    q3 = np.zeros((log.n_rounds, log.n_actions, log.len_list))
    q3[np.arange(log.n_rounds), :, log.position] = q
    ours = estimate_policy_value(log, ours_dist, ESTIMATORS, q, n_bootstrap=200)
    inputs = dict(reward=log.reward.astype(float), action=log.action, position=log.position, pscore=log.pscore,
                  action_dist=np.repeat(ours_dist, log.n_rounds, axis=0), estimated_rewards_by_reg_model=q3)
    theirs = {"ips": InverseProbabilityWeighting(), "snips": SelfNormalizedInverseProbabilityWeighting(),
              "dm": DirectMethod(), "dr": DoublyRobust()}
    print("| estimator | abgym | obp | relative difference |\n|---|---|---|---|")
    worst = 0.0
    for name, estimator in theirs.items():
        value = estimator.estimate_policy_value(**inputs)
        difference = abs(ours[name].value - value) / abs(value)
        worst = max(worst, difference)
        print(f"| {name} | {ours[name].value:.8f} | {value:.8f} | {difference:.1e} |")
    return 0 if worst < 1e-9 else 1


if __name__ == "__main__":
    raise SystemExit(main())
