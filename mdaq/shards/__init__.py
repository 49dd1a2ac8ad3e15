"""Pools as Parquet shards: a folder (or glob) of ``*.parquet`` files read in bounded memory, checked by the rules
of mdaq's JSONL pools, and written deterministically with a ``_manifest.json`` (``docs/scale.md``).

The public names live in :mod:`mdaq.shards.read` (discovery, streaming, validation), :mod:`mdaq.shards.check`
(schema and row rules), :mod:`mdaq.shards.write` (the writer behind ``mdaq data shard``) and
:mod:`mdaq.shards.subset` (a pool's languages, the records of selected ids); they are re-exported here.
"""

from __future__ import annotations

from mdaq.shards.check import FORMAT, MANIFEST, OPTIONAL_COLUMNS, REQUIRED_COLUMNS
from mdaq.shards.read import (
    Shard,
    is_shard_source,
    iter_pool_batches,
    iter_pool_samples,
    list_shards,
    read_shard_samples,
    validate_shards,
)
from mdaq.shards.subset import count_langs, read_records
from mdaq.shards.write import check_shard_folder, write_shards

__all__ = [
    "FORMAT",
    "MANIFEST",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "Shard",
    "check_shard_folder",
    "count_langs",
    "is_shard_source",
    "iter_pool_batches",
    "iter_pool_samples",
    "list_shards",
    "read_records",
    "read_shard_samples",
    "validate_shards",
    "write_shards",
]
