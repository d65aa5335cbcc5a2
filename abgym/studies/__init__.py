"""Studies: comparisons and evaluations that combine environments and agents (the layer above both)."""
