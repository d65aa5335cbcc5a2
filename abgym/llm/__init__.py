"""Real models, offline: a cached sentence embedder and a local language model (SmolLM2)."""
