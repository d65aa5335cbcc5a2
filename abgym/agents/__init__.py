"""Agents: classical A/B tests and bandits (``bandits``), contextual bandits, actor-critic and RPP agents."""
