"""Features of a sharded pool, as blocks: the contract between the code that computes features at scale (in-process or
on Ray Data) and the code that clusters and selects from them in a streaming pass (issue 20, ``docs/scale.md``).

A feature shard folder mirrors its pool's shards: ``<features>/<pool shard stem>.parquet`` holds, for every row of that
pool shard and in its order, the columns of :data:`FEATURE_COLUMNS`, plus a ``_manifest.json``. Readers yield
:class:`FeatureBlock` objects; a consumer that needs several passes (k-means on a sample, then assignment, then
selection) takes a *factory* ``Callable[[], Iterator[FeatureBlock]]`` and calls it once per pass, so no pass holds
more than one block of embeddings.

This module holds the contract, the manifest and the streamed reader (:func:`iter_feature_shards`); the writer of one
feature shard is :mod:`mdaq.shards.feature_write`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mdaq.errors import DataError
from mdaq.io import read_json
from mdaq.shards.check import MANIFEST, RowChecker

FEATURE_COLUMNS = ("id", "quality", "embedding")  # string; float32 (QSM score); fixed-size list<float32>[dim]
FEATURES_FORMAT = "mdaq.features"  # the manifest's `format`: marks a folder `mdaq features` wrote (and may resume)
FOOTER_KEY = b"mdaq.features"  # Parquet key-value metadata of each feature shard: JSON (fingerprint, pool shard)
DEFAULT_BLOCK_ROWS = 8192


@dataclass(frozen=True)
class FeatureBlock:
    """Consecutive rows of a pool's features.

    Attributes
    ----------
    ids : np.ndarray
        ``(n,)`` sample ids (``str``), unique across the pool.
    quality : np.ndarray
        ``(n,)`` float32 QSM scores (higher is better).
    embeddings : np.ndarray
        ``(n, dim)`` float32 diversity embeddings.
    """

    ids: np.ndarray
    quality: np.ndarray
    embeddings: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.ids)
        if self.quality.shape != (n,) or self.embeddings.ndim != 2 or self.embeddings.shape[0] != n:
            raise ValueError(
                f"feature block: {n} ids but quality {self.quality.shape} and embeddings {self.embeddings.shape}"
            )

    def __len__(self) -> int:
        return len(self.ids)


BlockFactory = Callable[[], Iterator[FeatureBlock]]  # one call per pass over the pool


def feature_schema(dim: int) -> Any:
    """The Arrow schema of a feature shard with ``dim``-dimensional embeddings (no nulls anywhere)."""
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("quality", pa.float32(), nullable=False),
            pa.field("embedding", pa.list_(pa.field("item", pa.float32(), nullable=False), dim), nullable=False),
        ]
    )


def read_feature_manifest(folder: str | Path, *, complete: bool = True) -> dict[str, Any]:
    """A feature folder's ``_manifest.json``, its form checked.

    Parameters
    ----------
    folder : str or Path
        The feature shard folder.
    complete : bool
        Require a finished run (``complete: true``); an interrupted run leaves ``false`` until it is resumed.

    Raises
    ------
    DataError
        Naming the manifest and the field: missing, not a feature manifest, incomplete, or malformed entries.
    """
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise DataError(folder, f"no {MANIFEST}: not a feature folder written by `mdaq features`")
    manifest = read_json(path)
    if not isinstance(manifest, dict) or manifest.get("format") != FEATURES_FORMAT:
        raise DataError(path, f"not a feature manifest (its 'format' must be {FEATURES_FORMAT!r})", field="format")
    if complete and manifest.get("complete") is not True:
        raise DataError(
            path,
            "incomplete: the run that wrote it did not finish; run `mdaq features` again to resume it",
            field="complete",
        )
    if complete:
        shards = manifest.get("shards")
        if not isinstance(shards, list) or not shards:
            raise DataError(path, "expected a non-empty list of shard entries", field="shards")
        for i, entry in enumerate(shards):
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise DataError(path, "expected an object with a 'name'", field=f"shards[{i}]")
            if not isinstance(entry.get("n_rows"), int) or entry["n_rows"] < 0:
                raise DataError(path, f"n_rows must be a count, got {entry.get('n_rows')!r}", field=f"shards[{i}]")
        if not isinstance(manifest.get("dim"), int) or manifest["dim"] < 1:
            raise DataError(path, f"dim must be a positive integer, got {manifest.get('dim')!r}", field="dim")
    return manifest


def _check_block(path: Path, first_row: int, ids: list, quality: np.ndarray, emb: np.ndarray) -> None:
    """Refuse a null, malformed id, or a NaN/infinite value, naming the shard, the row and the field."""
    for i, sid in enumerate(ids):
        if not isinstance(sid, str) or len(sid) != 16 or any(c not in "0123456789abcdef" for c in sid):
            raise DataError(path, f"{sid!r:.40} is not a sample id (16 hex digits)", f"row {first_row + i}", "id")
    for name, arr in (("quality", quality), ("embedding", emb)):
        bad = ~np.isfinite(arr)
        if bad.any():
            row = int(np.flatnonzero(bad.reshape(len(arr), -1).any(axis=1))[0])
            raise DataError(path, f"{arr[row]!r:.60} is not finite", f"row {first_row + row}", name)


def _shard_blocks(path: Path, n_rows: int, dim: int, block_rows: int, checker: RowChecker) -> Iterator[FeatureBlock]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    first = 0
    try:
        with pq.ParquetFile(path, page_checksum_verification=True) as pf:
            if pf.schema_arrow.remove_metadata() != feature_schema(dim):
                msg = f"schema {pf.schema_arrow.remove_metadata()} is not the feature schema for dim {dim}"
                raise DataError(path, msg, field="embedding")
            if pf.metadata.num_rows != n_rows:
                raise DataError(path, f"{pf.metadata.num_rows} rows, the manifest lists {n_rows}", field="n_rows")
            for batch in pf.iter_batches(batch_size=block_rows, use_threads=False):
                ids = batch.column("id").to_pylist()
                quality = batch.column("quality").to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
                flat = batch.column("embedding").values.to_numpy(zero_copy_only=False)
                emb = flat.reshape(len(ids), dim).astype(np.float32, copy=False)
                _check_block(path, first, ids, quality, emb)
                checker._remember(ids, path, first)  # same package: the pool's duplicate-id check, 8 bytes a row
                yield FeatureBlock(np.asarray(ids, dtype=object), quality, emb)
                first += len(ids)
    except (pa.ArrowException, OSError) as e:  # a corrupt page shows only when it is read
        raise DataError(path, f"malformed Parquet: {' '.join(str(e).split())}", f"row {first}") from None


def iter_feature_shards(folder: str | Path, *, block_rows: int = DEFAULT_BLOCK_ROWS) -> Iterator[FeatureBlock]:
    """Stream a feature folder as :class:`FeatureBlock` objects in pool order, in bounded memory.

    Parameters
    ----------
    folder : str or Path
        A folder written by ``mdaq features`` (:func:`mdaq.features.engine.compute_feature_shards`).
    block_rows : int
        Rows per block, at most (blocks do not cross shard boundaries).

    Yields
    ------
    FeatureBlock
        ``ids`` as an object array of ``str``; ``quality`` ``(n,)`` and ``embeddings`` ``(n, dim)`` float32.

    Raises
    ------
    DataError
        Naming the shard, ``row <i>`` and the field: an incomplete or malformed manifest, a shard listed but missing
        (or present but not listed), a row count or schema that disagrees with the manifest, a malformed id, a NaN or
        infinite value, a corrupt page; a repeated id is reported after the last block (8 bytes per row are kept
        for that check, as for pool shards), so a consumer sees every block first.
    """
    folder = Path(folder)
    if block_rows < 1:
        raise ValueError(f"block_rows must be at least 1, got {block_rows}")
    manifest = read_feature_manifest(folder)
    names = [entry["name"] for entry in manifest["shards"]]
    on_disk = sorted(p.name for p in folder.glob("*.parquet") if not p.name.startswith((".", "_")))
    for name in on_disk:
        if name not in names:
            raise DataError(folder / name, f"not listed in {MANIFEST} (left over from another run?)")
    checker = RowChecker()
    for entry in manifest["shards"]:
        path = folder / entry["name"]
        if not path.is_file():
            raise DataError(path, f"listed in {MANIFEST} but missing")
        yield from _shard_blocks(path, entry["n_rows"], manifest["dim"], block_rows, checker)
    if checker.n_rows != manifest.get("n_rows", checker.n_rows):
        raise DataError(
            folder / MANIFEST, f"lists {manifest['n_rows']} rows, the shards hold {checker.n_rows}", field="n_rows"
        )
    checker.finish()


def feature_blocks(folder: str | Path, *, block_rows: int = DEFAULT_BLOCK_ROWS) -> BlockFactory:
    """A :data:`BlockFactory` over a feature folder: each call starts a new pass of :func:`iter_feature_shards`."""
    read_feature_manifest(folder)  # fail now, not at the first pass

    def factory() -> Iterator[FeatureBlock]:
        return iter_feature_shards(folder, block_rows=block_rows)

    return factory
