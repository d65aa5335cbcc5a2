"""Off-policy evaluation: what a policy would have earned on logged bandit feedback.

Three parts, as in the Open Bandit Pipeline: logs (:mod:`abgym.data.open_bandit` for the real Open Bandit Dataset,
:mod:`abgym.ope.datasets` for synthetic logs with a known answer), policies as action distributions
(:mod:`abgym.ope.policies`) and estimators (:mod:`abgym.ope.estimators`, with the reward model of
:mod:`abgym.ope.reward_model`). See docs/off_policy.md.
"""
from abgym.ope.estimators import ESTIMATORS, Estimate, estimate_policy_value, on_policy_value
from abgym.ope.policies import (at_logged_position, bernoulli_ts_action_dist, greedy_action_dist,
                                uniform_action_dist)
from abgym.ope.reward_model import RewardModel

__all__ = ["ESTIMATORS", "Estimate", "RewardModel", "at_logged_position", "bernoulli_ts_action_dist",
           "estimate_policy_value", "greedy_action_dist", "on_policy_value", "uniform_action_dist"]
