"""Input data: the pinned MIDB fetch, its readers, the train / held-out / pool split, and the loaders of other instruction files (stage `prepare`)."""
