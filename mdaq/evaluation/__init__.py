"""Judge-free evaluation (held-out NLL and expert preference, two engines), answer generation and intrinsic
selection metrics (stages `evaluate`, `generate`, `intrinsic`)."""
