"""Environments: one module per family (``ab_test``, ``personalized_marketing``, ``prompt_personalization``)."""
