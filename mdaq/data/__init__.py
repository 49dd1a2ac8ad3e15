"""Input data (stage `prepare`): the pinned MIDB fetch, file readers, the train / held-out / pool split, and
loaders of other instruction files."""
