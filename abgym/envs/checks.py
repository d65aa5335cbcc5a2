"""gymnasium's passive env checks, run once inside the env instead of by wrappers around every step.

``gymnasium.make`` normally wraps an env in ``PassiveEnvChecker`` (checks the spaces, the first reset's and the first
step's results) and ``OrderEnforcing`` (no step before reset). Both do their work once, yet every later step still
pays two extra Python calls through them: for abgym's simulators, whose step is a few microseconds, that is 10-15%
of the step (issue 17, scripts/bench_envs.py). The simulators registered with ``disable_env_checker=True,
order_enforce=False`` (:mod:`abgym.envs.registration`) run the space checks and the first reset's and first step's
checks through :class:`PassiveChecksOnce`, and refuse a step or a render before reset themselves (with gymnasium's
``ResetNeeded``), so ``gymnasium.make`` users keep those checks without the per-step cost. Not run:
``PassiveEnvChecker``'s data-reuse check (the simulators return fresh arrays every step; the golden-episode and
vector tests would see a reused buffer) and its first-render check.
"""
from __future__ import annotations

import gymnasium
from gymnasium.utils.passive_env_checker import (
    check_action_space,
    check_observation_space,
    env_reset_passive_checker,
    env_step_passive_checker,
)


class ResetNeeded(gymnasium.error.ResetNeeded, RuntimeError):
    """A step before reset (or after the episode's end): gymnasium's ``ResetNeeded``, which ``OrderEnforcing``
    raised before the simulators were registered without it, and a ``RuntimeError`` as ABTest-v0 raised unwrapped."""


class PassiveChecksOnce:
    """Mixin for a ``gymnasium.Env``: its first reset and first step go through gymnasium's passive checkers.

    The env's ``reset``/``step`` begin with ``if not self._reset_checked: return self._checked_reset(seed, options)``
    (and the same for step); the checker then calls the env's own method again, now past the flag.
    """

    _reset_checked = False
    _step_checked = False

    def _checked_reset(self, seed, options):
        check_action_space(self.action_space)
        check_observation_space(self.observation_space)
        self._reset_checked = True
        try:
            return env_reset_passive_checker(self, seed=seed, options=options)
        except BaseException:  # a refused reset (bad options) is not the checked one
            self._reset_checked = False
            raise

    def _checked_step(self, action):
        self._step_checked = True
        try:
            return env_step_passive_checker(self, action)
        except BaseException:  # a refused step (bad action, no reset yet) is not the checked one
            self._step_checked = False
            raise
