"""Every environment id of abgym, registered with gymnasium.

Entry points are strings, so registering costs no import of the environment modules (or of torch and the
language models some of them use); the module is imported on the first ``gymnasium.make``.
"""
from __future__ import annotations

import gymnasium

NAMESPACE = "abgym"

# The simulators run gymnasium's passive checks once themselves and refuse a step before reset
# (abgym.envs.checks): gymnasium.make need not wrap them in PassiveEnvChecker and OrderEnforcing, two Python calls
# per step that cost 10-15% of their few-microsecond steps (issue 17).
CHECKED_INSIDE = dict(disable_env_checker=True, order_enforce=False)

# id -> keyword arguments of gymnasium.register. One line per environment; the module owns its defaults.
ENV_SPECS: dict[str, dict] = {
    "ABTest-v0": dict(entry_point="abgym.envs.ab_test:ABTestEnv", **CHECKED_INSIDE),
    "PersonalizedMarketing-v0": dict(
        entry_point="abgym.envs.personalized_marketing:PersonalizedMarketingEnv",
        vector_entry_point="abgym.envs.personalized_marketing_vector:PersonalizedMarketingVectorEnv",
        **CHECKED_INSIDE,
    ),
    "CustomerJourney-v0": dict(
        entry_point="abgym.envs.customer_journey:CustomerJourneyEnv",
        vector_entry_point="abgym.envs.customer_journey:CustomerJourneyVectorEnv",
        **CHECKED_INSIDE,
    ),
    "PromptPersonalization-v0": dict(entry_point="abgym.envs.prompt_personalization:PromptPersonalizationEnv"),
    "OpenBanditReplay-v0": dict(entry_point="abgym.envs.open_bandit_replay:OpenBanditReplayEnv"),
}


def env_ids() -> list[str]:
    """The full ids (``abgym/Name-v0``) of every registered environment."""
    return [f"{NAMESPACE}/{name}" for name in ENV_SPECS]


def register_envs() -> None:
    for name, kwargs in ENV_SPECS.items():
        env_id = f"{NAMESPACE}/{name}"
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, **kwargs)
