"""Pipeline helpers: profile checks and lock pruning, and the SAH study stage (stages `sah`)."""
