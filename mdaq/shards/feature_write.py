"""Write feature shards (:mod:`mdaq.shards.features`): one Parquet file per pool shard, each written atomically with
its provenance in the footer, and the folder's ``_manifest.json``, first as an incomplete run, last as a finished one.

A feature folder is resumable rather than swapped in whole: every finished shard stays, so a killed run restarts only
the shards that are missing (:func:`shard_is_done` decides which are finished).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from mdaq.errors import DataError
from mdaq.io import atomic_path, read_json, write_json
from mdaq.shards.check import MANIFEST, file_sha256
from mdaq.shards.features import (
    FEATURES_FORMAT,
    FOOTER_KEY,
    IFD_COLUMNS,
    FeatureBlock,
    feature_schema,
    manifest_columns,
)

# Every option that changes the bytes, stated (as for pool shards, mdaq.shards.write). No dictionary: ids are unique
# and embeddings are floats; zstd level 1: float32 noise compresses little, so a higher level buys nothing.
FEATURE_WRITE_OPTIONS: dict[str, Any] = {
    "version": "2.6",
    "compression": "zstd",
    "compression_level": 1,
    "use_dictionary": False,
    "write_statistics": ["id"],
    "data_page_version": "1.0",
    "store_schema": True,
    "write_page_index": False,
    "write_page_checksum": True,
    "use_content_defined_chunking": False,
}


def block_table(block: FeatureBlock, dim: int | None, *, ifd: bool = False) -> Any:
    """One :class:`FeatureBlock` as an Arrow table of :func:`~mdaq.shards.features.feature_schema` (``dim`` None:
    no QSM score and embedding columns; ``ifd``: the IFD columns).

    Raises
    ------
    ValueError
        The block lacks a feature the schema holds, or has embeddings of another width.
    """
    import pyarrow as pa

    wanted = ({"quality", "embeddings"} if dim is not None else set()) | ({"ifd"} if ifd else set())
    if block.features != wanted:
        raise ValueError(f"a feature block of {sorted(block.features)} for feature shards of {sorted(wanted)}")
    columns = [pa.array(list(block.ids), pa.string())]
    if dim is not None:
        if block.embeddings.shape[1] != dim:
            raise ValueError(f"embeddings of dim {block.embeddings.shape[1]}, the folder's is {dim}")
        emb = np.ascontiguousarray(block.embeddings, dtype=np.float32).reshape(-1)
        columns.append(pa.array(np.asarray(block.quality, dtype=np.float32)))
        columns.append(pa.FixedSizeListArray.from_arrays(pa.array(emb), dim))
    if ifd:
        columns += [pa.array(np.asarray(getattr(block, name), dtype=np.float32)) for name in IFD_COLUMNS]
    return pa.Table.from_arrays(columns, schema=feature_schema(dim, ifd=ifd))


def write_feature_shard(
    path: str | Path,
    blocks: Iterable[FeatureBlock],
    *,
    dim: int | None,
    footer: dict[str, Any],
    n_rows: int,
    ifd: bool = False,
) -> dict[str, Any]:
    """Write one feature shard atomically (a temporary file beside ``path``, renamed only when complete).

    Parameters
    ----------
    path : str or Path
        ``<features>/<pool shard name>``.
    blocks : iterable of FeatureBlock
        The shard's rows in pool order, consumed once; one row group per block.
    dim : int or None
        Embedding dimension; None for shards without QSM scores and embeddings.
    footer : dict
        JSON-able provenance stored in the Parquet footer under ``mdaq.features`` (fingerprint, pool shard, ...).
    n_rows : int
        The pool shard's row count; any other total is an error and nothing is written.
    ifd : bool
        Whether the shard holds the IFD columns (:data:`~mdaq.shards.features.IFD_COLUMNS`).

    Returns
    -------
    dict
        The manifest entry: ``name``, ``n_rows``, ``sha256``.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    schema = feature_schema(dim, ifd=ifd).with_metadata({FOOTER_KEY: json.dumps(footer, sort_keys=True).encode()})
    n = 0
    with atomic_path(path, suffix=".tmp") as tmp:
        with pq.ParquetWriter(tmp, schema, **FEATURE_WRITE_OPTIONS) as writer:
            for block in blocks:
                table = block_table(block, dim, ifd=ifd).replace_schema_metadata(schema.metadata)
                writer.write_table(table, row_group_size=max(1, len(block)))
                n += len(block)
        if n != n_rows:
            raise DataError(path, f"computed {n} feature rows for a pool shard of {n_rows} rows", field="n_rows")
    return {"name": path.name, "n_rows": n, "sha256": file_sha256(path)}


def read_footer(path: str | Path) -> dict[str, Any] | None:
    """The ``mdaq.features`` footer of a feature shard, or None when the file is not a readable feature shard (a
    truncated file, a foreign Parquet file): such a shard is recomputed, never trusted."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with pq.ParquetFile(path) as pf:
            meta = pf.schema_arrow.metadata or {}
            footer = json.loads(meta[FOOTER_KEY]) if FOOTER_KEY in meta else None
            if isinstance(footer, dict):
                footer["n_rows"] = pf.metadata.num_rows
            return footer if isinstance(footer, dict) else None
    except (pa.ArrowException, OSError, ValueError):
        return None


def shard_is_done(path: Path, *, fingerprint: str, pool_sha256: str, n_rows: int) -> bool:
    """Whether ``path`` is a finished feature shard of this pool shard (same sha256) by this model and settings (same
    fingerprint) with every row: a resumed run keeps it."""
    if not path.is_file():
        return False
    footer = read_footer(path)
    return bool(
        footer
        and footer.get("fingerprint") == fingerprint
        and footer.get("pool_sha256") == pool_sha256
        and footer.get("n_rows") == n_rows
    )


def start_feature_folder(out: str | Path, *, fingerprint: str, pool: str, record: dict[str, Any]) -> None:
    """Create ``out`` or reopen it for a resumed run, and mark it incomplete.

    Raises
    ------
    DataError
        When ``out`` exists, is not empty and holds no feature manifest (a folder mdaq did not write), or holds
        features computed with another model or settings (another fingerprint): the message says what to do.
    """
    out = Path(out)
    manifest_path = out / MANIFEST
    if out.exists() and not out.is_dir():
        raise DataError(out, "exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()):
        if not manifest_path.is_file():
            raise DataError(out, f"exists, is not empty and holds no {MANIFEST}: not written by `mdaq features`")
        old = read_json(manifest_path)
        if not isinstance(old, dict) or old.get("format") != FEATURES_FORMAT:
            raise DataError(manifest_path, f"not a feature manifest (format {FEATURES_FORMAT!r})", field="format")
        if old.get("fingerprint") != fingerprint:
            raise DataError(
                manifest_path,
                f"features of another model or settings (fingerprint {str(old.get('fingerprint'))[:12]}, now "
                f"{fingerprint[:12]}): remove the folder or choose another --out",
                field="fingerprint",
            )
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".*.tmp"):  # a killed run's half-written shard: ours by its name (atomic_path)
        stale.unlink()
    write_json(
        manifest_path,
        {
            "format": FEATURES_FORMAT,
            "version": 1,
            "complete": False,
            "fingerprint": fingerprint,
            "pool": pool,
            "record": record,
        },
    )


def finish_feature_folder(
    out: str | Path,
    entries: list[dict[str, Any]],
    *,
    fingerprint: str,
    pool: str,
    dim: int | None,
    record: dict[str, Any],
    ifd: bool = False,
) -> dict[str, Any]:
    """Remove feature shards no pool shard has any more, then write the complete manifest (the last write of a run);
    ``dim`` None and ``ifd`` say which columns the shards hold, as for :func:`write_feature_shard`.

    Returns
    -------
    dict
        The manifest: ``format``, ``version``, ``complete``, ``fingerprint``, ``pool``, ``dim``, ``n_rows``,
        ``n_shards``, ``columns``, ``writer``, ``shards`` (``name``, ``n_rows``, ``sha256``, ``pool_sha256`` in pool
        order) and ``record``.
    """
    import pyarrow as pa

    out = Path(out)
    names = {e["name"] for e in entries}
    for path in out.glob("*.parquet"):
        if path.name not in names and not path.name.startswith((".", "_")) and read_footer(path) is not None:
            path.unlink()  # a feature shard of a pool shard that is gone (the pool was re-sharded)
    manifest = {
        "format": FEATURES_FORMAT,
        "version": 1,
        "complete": True,
        "fingerprint": fingerprint,
        "pool": pool,
        "dim": dim,
        "n_rows": sum(e["n_rows"] for e in entries),
        "n_shards": len(entries),
        "columns": manifest_columns(dim, ifd=ifd),
        "writer": f"pyarrow {pa.__version__}",
        "shards": entries,
        "record": record,
    }
    write_json(out / MANIFEST, manifest)
    return manifest
