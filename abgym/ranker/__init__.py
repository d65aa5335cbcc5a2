"""The Experimentation Accelerator: content-aware CTR ranker, attributes, insights and opportunities."""
