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
IFD_COLUMNS = ("ifd", "loss_conditional", "loss_unconditional")  # float32 each, NaN allowed (optional group)
FEATURES_FORMAT = "mdaq.features"  # the manifest's `format`: marks a folder `mdaq features` wrote (and may resume)
FOOTER_KEY = b"mdaq.features"  # Parquet key-value metadata of each feature shard: JSON (fingerprint, pool shard)
DEFAULT_BLOCK_ROWS = 8192


@dataclass(frozen=True)
class FeatureBlock:
    """Consecutive rows of a pool's features; a feature the folder does not hold is None.

    Attributes
    ----------
    ids : np.ndarray
        ``(n,)`` sample ids (``str``), unique across the pool.
    quality : np.ndarray or None
        ``(n,)`` float32 QSM scores (higher is better).
    embeddings : np.ndarray or None
        ``(n, dim)`` float32 diversity embeddings (given with ``quality``: one model pass computes both).
    ifd, loss_conditional, loss_unconditional : np.ndarray or None
        ``(n,)`` float32 instruction-following difficulty and its two mean response losses
        (:func:`mdaq.features.ifd.ifd_scores`); NaN marks a sample with no response token left after truncation.
    """

    ids: np.ndarray
    quality: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    ifd: np.ndarray | None = None
    loss_conditional: np.ndarray | None = None
    loss_unconditional: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.ids)
        bad = [
            f"{name} {np.shape(getattr(self, name))}"
            for name in ("quality", *IFD_COLUMNS)
            if getattr(self, name) is not None and np.shape(getattr(self, name)) != (n,)
        ]
        if self.embeddings is not None and (self.embeddings.ndim != 2 or self.embeddings.shape[0] != n):
            bad.append(f"embeddings {self.embeddings.shape}")
        if bad:
            raise ValueError(f"feature block: {n} ids but {', '.join(bad)}")
        if (self.quality is None) != (self.embeddings is None):
            raise ValueError("feature block: quality and embeddings come together (one model pass computes both)")
        if len({getattr(self, name) is None for name in IFD_COLUMNS}) != 1:
            raise ValueError(f"feature block: {', '.join(IFD_COLUMNS)} come together (one IFD pass computes them)")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def features(self) -> frozenset[str]:
        """The :class:`~mdaq.types.Pool` features this block carries (``quality``, ``embeddings``, ``ifd``)."""
        return frozenset(k for k in ("quality", "embeddings", "ifd") if getattr(self, k) is not None)


BlockFactory = Callable[[], Iterator[FeatureBlock]]  # one call per pass over the pool


def feature_schema(dim: int | None, *, ifd: bool = False) -> Any:
    """The Arrow schema of a feature shard (no nulls anywhere).

    Parameters
    ----------
    dim : int or None
        Width of the embeddings; None for a folder without QSM scores and embeddings (IFD only).
    ifd : bool
        Whether the shard holds :data:`IFD_COLUMNS`.
    """
    import pyarrow as pa

    fields = [pa.field("id", pa.string(), nullable=False)]
    if dim is not None:
        fields.append(pa.field("quality", pa.float32(), nullable=False))
        fields.append(
            pa.field("embedding", pa.list_(pa.field("item", pa.float32(), nullable=False), dim), nullable=False)
        )
    if ifd:
        fields += [pa.field(name, pa.float32(), nullable=False) for name in IFD_COLUMNS]
    return pa.schema(fields)


def manifest_columns(dim: int | None, *, ifd: bool = False) -> dict[str, str]:
    """The ``columns`` entry of a feature manifest: column name -> type, in the shards' order."""
    columns = {"id": "string"}
    if dim is not None:
        columns |= {"quality": "float32", "embedding": f"fixed_size_list<float32>[{dim}]"}
    if ifd:
        columns |= dict.fromkeys(IFD_COLUMNS, "float32")
    return columns


def folder_features(manifest: dict[str, Any]) -> frozenset[str]:
    """The :class:`~mdaq.types.Pool` features a feature folder holds (``quality``, ``embeddings``, ``ifd``), from
    its manifest's ``columns`` (checked by :func:`read_feature_manifest`)."""
    columns = manifest.get("columns") or {}
    names = {"quality": "quality", "embedding": "embeddings", "ifd": "ifd"}
    return frozenset(feature for column, feature in names.items() if column in columns)


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
        _check_columns(path, manifest)
    return manifest


def _check_columns(path: Path, manifest: dict[str, Any]) -> None:
    """A finished manifest's ``columns`` name the id and at least one group of features (QSM score + embedding,
    IFD), and ``dim`` is the embedding width (None without embeddings)."""
    columns = manifest.get("columns")
    if columns is None:  # written before the manifest listed its columns: the QSM group only
        columns = manifest["columns"] = manifest_columns(manifest.get("dim"))
    groups = (("quality", "embedding"), IFD_COLUMNS)
    if not isinstance(columns, dict) or "id" not in columns or not any(g[0] in columns for g in groups):
        raise DataError(path, f"expected the id and a group of feature columns, got {columns!r:.80}", field="columns")
    for group in groups:
        if any(c in columns for c in group) and not all(c in columns for c in group):
            raise DataError(path, f"lists only part of the columns {', '.join(group)}", field="columns")
    dim = manifest.get("dim")
    if "embedding" in columns and (not isinstance(dim, int) or isinstance(dim, bool) or dim < 1):
        raise DataError(path, f"dim must be a positive integer, got {dim!r}", field="dim")
    if "embedding" not in columns and dim is not None:
        raise DataError(path, f"dim must be null without an embedding column, got {dim!r}", field="dim")


def _check_block(path: Path, first_row: int, block: FeatureBlock) -> None:
    """Refuse a null, malformed id, a NaN/infinite QSM score or embedding, or an infinite IFD value (NaN is an IFD's
    mark of an unscorable sample), naming the shard, the row and the field."""
    for i, sid in enumerate(block.ids):
        if not isinstance(sid, str) or len(sid) != 16 or any(c not in "0123456789abcdef" for c in sid):
            raise DataError(path, f"{sid!r:.40} is not a sample id (16 hex digits)", f"row {first_row + i}", "id")
    for name, arr, nan_ok in (
        ("quality", block.quality, False),
        ("embedding", block.embeddings, False),
        *((name, getattr(block, name), True) for name in IFD_COLUMNS),
    ):
        if arr is None:
            continue
        bad = np.isinf(arr) if nan_ok else ~np.isfinite(arr)
        if bad.any():
            row = int(np.flatnonzero(bad.reshape(len(arr), -1).any(axis=1))[0])
            raise DataError(path, f"{arr[row]!r:.60} is not finite", f"row {first_row + row}", name)


def _batch_block(batch: Any, dim: int | None) -> FeatureBlock:
    """One record batch of a feature shard as a :class:`FeatureBlock` (the columns its schema holds)."""
    ids = batch.column("id").to_pylist()
    columns: dict[str, np.ndarray] = {}
    if dim is not None:
        columns["quality"] = batch.column("quality").to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
        flat = batch.column("embedding").values.to_numpy(zero_copy_only=False)
        columns["embeddings"] = flat.reshape(len(ids), dim).astype(np.float32, copy=False)
    for name in IFD_COLUMNS:
        if name in batch.schema.names:
            columns[name] = batch.column(name).to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return FeatureBlock(np.asarray(ids, dtype=object), **columns)


def _shard_blocks(
    path: Path, n_rows: int, schema: Any, dim: int | None, block_rows: int, checker: RowChecker
) -> Iterator[FeatureBlock]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    first = 0
    try:
        with pq.ParquetFile(path, page_checksum_verification=True) as pf:
            if pf.schema_arrow.remove_metadata() != schema:
                msg = f"schema {pf.schema_arrow.remove_metadata()} is not the feature schema {schema} of the manifest"
                raise DataError(path, " ".join(msg.split()), field="embedding" if dim else "columns")
            if pf.metadata.num_rows != n_rows:
                raise DataError(path, f"{pf.metadata.num_rows} rows, the manifest lists {n_rows}", field="n_rows")
            for batch in pf.iter_batches(batch_size=block_rows, use_threads=False):
                block = _batch_block(batch, dim)
                _check_block(path, first, block)
                checker._remember(list(block.ids), path, first)  # same package: the pool's duplicate-id check
                yield block
                first += len(block)
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
        ``ids`` as an object array of ``str``; ``quality`` ``(n,)`` and ``embeddings`` ``(n, dim)`` float32, and the
        IFD columns ``(n,)`` float32, for the features the folder holds (the others None).

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
    dim = manifest.get("dim")
    schema = feature_schema(dim, ifd="ifd" in folder_features(manifest))
    for entry in manifest["shards"]:
        path = folder / entry["name"]
        if not path.is_file():
            raise DataError(path, f"listed in {MANIFEST} but missing")
        yield from _shard_blocks(path, entry["n_rows"], schema, dim, block_rows, checker)
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
