"""Tasks: what a model family needs beyond the network (losses, metrics, summaries, inference)."""
