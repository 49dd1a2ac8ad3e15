"""Input data (stage `prepare`): the pinned MIDB fetch, file readers, the train / held-out / pool split, loaders of
other instruction files, and their conversion into Parquet shards (`mdaq data shard`)."""
