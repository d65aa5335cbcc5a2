"""abgym: Gymnasium and PettingZoo environments, agents and models for personalized marketing.

Importing the package registers every environment id with gymnasium (namespace ``abgym``), so that
``gymnasium.make("abgym/ABTest-v0")`` works after ``import abgym``.
"""
from abgym.envs.registration import register_envs

__version__ = "0.1.0"

register_envs()


def __getattr__(name):
    # `abgym.evaluate` is imported lazily: it pulls pandas and scipy, which a plain `gymnasium.make` does not need.
    if name == "evaluate":
        from abgym.evaluation import evaluate

        return evaluate
    if name == "make_sb3_vec_env":  # pulls stable-baselines3 and torch (the `rl` extra)
        from abgym.sb3 import make_sb3_vec_env

        return make_sb3_vec_env
    raise AttributeError(f"module 'abgym' has no attribute {name!r}")
