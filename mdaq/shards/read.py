"""Read a sharded pool in bounded memory: find its shards (a folder, in manifest or name order, or a glob), check
their footers agree, and stream their rows one record batch at a time, each row checked as a JSONL pool's would be.

Memory: one record batch of texts at a time (plus the Parquet reader's current row group), and 8 bytes per row for
the duplicate-id check (:class:`mdaq.shards.check.RowChecker`). Only :func:`read_shard_samples` holds the whole pool.
"""

from __future__ import annotations

import glob
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mdaq.errors import DataError
from mdaq.io import check_file, read_json
from mdaq.names import check_name, check_unique
from mdaq.shards.check import (
    FORMAT,
    MANIFEST,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    RowChecker,
    check_schema,
    file_sha256,
)
from mdaq.types import Sample

if TYPE_CHECKING:
    import pyarrow as pa

DEFAULT_BATCH_SIZE = 4096
_GLOB_CHARS = "*?["


@dataclass(frozen=True)
class Shard:
    """One Parquet file of a pool, as its footer describes it."""

    path: Path
    n_rows: int
    schema: Any  # pyarrow.Schema (pyarrow is imported only where a pool is read)


def _is_shard_name(path: Path) -> bool:
    return path.suffix == ".parquet" and not path.name.startswith((".", "_"))


def is_shard_source(source: str | Path) -> bool:
    """Whether ``source`` names a sharded pool: a folder holding ``*.parquet`` files or a ``_manifest.json``, or a
    glob pattern (``pool/*.parquet``) that is not itself an existing path."""
    p = Path(source)
    if p.is_dir():
        return (p / MANIFEST).is_file() or any(_is_shard_name(f) for f in p.iterdir())
    return not p.exists() and any(c in str(source) for c in _GLOB_CHARS)


def _manifest_names(folder: Path) -> list[str]:
    path = folder / MANIFEST
    manifest = read_json(path)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(path, f"not a shard manifest (its 'format' must be {FORMAT!r})", field="format")
    entries = manifest.get("shards")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise DataError(path, "expected a list of objects", field="shards")
    names = [check_name(e.get("name"), path, field=f"shards[{i}].name") for i, e in enumerate(entries)]
    check_unique(names, path, "shards")
    return names


def _discover(source: str | Path) -> list[Path]:
    """Shard files of ``source``: a folder's (manifest order when it has one, else by name), a glob's matches by
    name, or one file."""
    p = Path(source)
    if p.is_dir():
        on_disk = sorted(f.name for f in p.iterdir() if _is_shard_name(f))
        if not (p / MANIFEST).is_file():
            if not on_disk:
                raise DataError(p, "no Parquet shards (*.parquet) in this folder")
            return [p / name for name in on_disk]
        names = _manifest_names(p)
        for name in names:
            if name not in on_disk:
                raise DataError(p / name, f"listed in {MANIFEST} but missing")
        for name in on_disk:
            if name not in names:
                raise DataError(p / name, f"not listed in {MANIFEST} (left over from another write?)")
        return [p / name for name in names]
    if p.exists():
        return [check_file(p)]
    if not any(c in str(source) for c in _GLOB_CHARS):
        raise DataError(p, "no such folder or file")
    found = sorted(Path(f) for f in glob.glob(str(source)))
    found = [f for f in found if not f.name.startswith((".", "_"))]
    if not found:
        raise DataError(source, "no files match this pattern")
    return found


def _open_shard(path: Path) -> Shard:
    import pyarrow as pa
    import pyarrow.parquet as pq

    check_file(path)
    try:
        with pq.ParquetFile(path) as pf:
            return Shard(path, pf.metadata.num_rows, pf.schema_arrow)
    except (pa.ArrowException, OSError) as e:
        raise DataError(path, f"not a readable Parquet file: {' '.join(str(e).split())}") from None


def _schema_difference(schema: pa.Schema, reference: pa.Schema) -> tuple[str, str] | None:
    """(column, what differs) between two shards' schemas, or None when they hold the same columns and types."""
    mine = {f.name: f.type for f in schema}
    ref = {f.name: f.type for f in reference}
    for name in [*ref, *mine]:
        if name not in mine:
            return name, "column missing here"
        if name not in ref:
            return name, "extra column"
        if mine[name] != ref[name]:
            return name, f"type {mine[name]} here, {ref[name]} there"
    return None


def list_shards(source: str | Path) -> list[Shard]:
    """The shards of a pool, their footers read and checked (no rows are read).

    Parameters
    ----------
    source : str or Path
        A folder of ``*.parquet`` shards (files starting with ``.`` or ``_`` are skipped; with a ``_manifest.json``
        its list must match the files), a glob such as ``"pool/part-*.parquet"``, or one Parquet file.

    Returns
    -------
    list of Shard
        In pool order: the manifest's, else sorted by file name.

    Raises
    ------
    DataError
        Naming the shard: not Parquet or unreadable, a missing or non-text required column, a schema that differs
        from the first shard's (mixed schemas), a manifest that disagrees with the folder or with a shard's row
        count.
    """
    shards = [_open_shard(path) for path in _discover(source)]
    if not shards:
        raise DataError(source, f"no shards: its {MANIFEST} lists none")
    for shard in shards:
        check_schema(shard.path, shard.schema)
        diff = _schema_difference(shard.schema, shards[0].schema)
        if diff is not None:
            raise DataError(shard.path, f"schema differs from {shards[0].path.name}: {diff[1]}", field=diff[0])
    folder = Path(source)
    if folder.is_dir() and (folder / MANIFEST).is_file():
        entries = read_json(folder / MANIFEST)["shards"]
        for i, (entry, shard) in enumerate(zip(entries, shards, strict=True)):
            if entry.get("n_rows") != shard.n_rows:
                msg = f"lists {entry.get('n_rows')!r} rows for {shard.path.name}, which has {shard.n_rows}"
                raise DataError(folder / MANIFEST, msg, field=f"shards[{i}].n_rows")
    return shards


def normalise(batch: pa.RecordBatch, shard: Path, first_row: int) -> pa.RecordBatch:
    """A shard's batch with every pool's layout: the required columns, ``source`` (``<shard>#<row>`` where the shard
    has none or a null) and ``meta`` (null where absent) as ``string``, then the other columns unchanged."""
    import pyarrow as pa
    import pyarrow.compute as pc

    names = batch.schema.names
    n = batch.num_rows
    columns: dict[str, pa.Array] = {}
    for name in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS):
        columns[name] = batch.column(name).cast(pa.string()) if name in names else pa.nulls(n, pa.string())
    if columns["source"].null_count:
        default = pa.array([f"{shard.name}#{first_row + i}" for i in range(n)], pa.string())
        columns["source"] = pc.fill_null(columns["source"], default)
    for name in names:
        if name not in columns:
            columns[name] = batch.column(name)
    return pa.RecordBatch.from_arrays(list(columns.values()), names=list(columns))


def _stream(
    shards: list[Shard], batch_size: int, checker: RowChecker
) -> Iterator[tuple[pa.RecordBatch, list[dict[str, Any]]]]:
    """(normalised batch, each row's metadata) for every batch of every shard, each batch checked; then the
    duplicate check."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if not sum(s.n_rows for s in shards):
        raise DataError(shards[0].path.parent, "no samples: the pool is empty")
    for shard in shards:
        first_row = 0
        try:
            with pq.ParquetFile(shard.path, page_checksum_verification=True) as pf:
                for raw in pf.iter_batches(batch_size=batch_size, use_threads=False):
                    batch = normalise(raw, shard.path, first_row)
                    yield batch, checker.check_batch(shard.path, first_row, batch)
                    first_row += raw.num_rows
        except (pa.ArrowException, OSError) as e:  # a corrupt page shows only when it is read
            raise DataError(shard.path, f"malformed Parquet: {' '.join(str(e).split())}", f"row {first_row}") from None
    checker.finish()


def _rebatch(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.RecordBatch]:
    """Batches of exactly ``size`` rows across shard boundaries (the last may be shorter); holds at most ``size``
    rows plus one incoming batch."""
    import pyarrow as pa

    buffer: list[pa.RecordBatch] = []
    n = 0
    for batch in batches:
        while batch.num_rows:
            take = min(size - n, batch.num_rows)
            buffer.append(batch.slice(0, take))
            n += take
            batch = batch.slice(take)
            if n == size:
                yield pa.concat_batches(buffer)
                buffer, n = [], 0
    if n:
        yield pa.concat_batches(buffer)


def iter_pool_batches(
    source: str | Path, batch_size: int = DEFAULT_BATCH_SIZE, *, lang: str | None = None
) -> Iterator[pa.RecordBatch]:
    """Stream a sharded pool as Arrow record batches, the API later engines (Ray Data, streamed selection) build on.

    Parameters
    ----------
    source : str or Path
        A shard folder, a glob, or one Parquet file (:func:`list_shards`).
    batch_size : int
        Rows per batch: every batch has exactly this many except the last; batches span shard boundaries.
    lang : str, optional
        When given, every row must be in this language.

    Yields
    ------
    pyarrow.RecordBatch
        Columns ``id, lang, instruction, input, output, source, meta`` (``string``; ``meta`` is JSON text or null)
        followed by the shards' other (metadata) columns, in pool order.

    Raises
    ------
    DataError
        Naming the shard, ``row <i>`` and the field for the first bad row; a repeated id is found only after the
        last batch (the check keeps 8 bytes per row, never the texts), so a consumer sees every batch first.
    """
    shards = list_shards(source)
    yield from _rebatch((batch for batch, _ in _stream(shards, batch_size, RowChecker(lang))), batch_size)


def iter_pool_samples(
    source: str | Path, *, lang: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE
) -> Iterator[Sample]:
    """Stream a sharded pool as :class:`~mdaq.types.Sample` objects, in pool order (checks and errors as in
    :func:`iter_pool_batches`); ``Sample.meta`` is the ``meta`` object merged with the other columns."""
    shards = list_shards(source)
    for batch, metas in _stream(shards, batch_size, RowChecker(lang)):
        cols = {name: batch.column(name).to_pylist() for name in (*REQUIRED_COLUMNS, "source")}
        for i, meta in enumerate(metas):
            yield Sample(
                id=cols["id"][i],
                lang=cols["lang"][i],
                instruction=cols["instruction"][i],
                input=cols["input"][i],
                output=cols["output"][i],
                source=cols["source"][i],
                meta=meta,
            )


def read_shard_samples(source: str | Path, lang: str | None = None) -> list[Sample]:
    """The whole sharded pool in memory (for pools small enough to be a :class:`~mdaq.types.Pool`)."""
    return list(iter_pool_samples(source, lang=lang))


def _check_checksums(folder: Path, shards: list[Shard]) -> None:
    entries = read_json(folder / MANIFEST)["shards"]
    for i, (entry, shard) in enumerate(zip(entries, shards, strict=True)):
        if entry.get("sha256") != file_sha256(shard.path):
            msg = f"{shard.path.name} does not match its sha256 in {MANIFEST} (changed or truncated after writing)"
            raise DataError(shard.path, msg, field=f"shards[{i}].sha256")


def validate_shards(source: str | Path, lang: str | None = None, *, batch_size: int = DEFAULT_BATCH_SIZE) -> dict:
    """Check a sharded pool row by row in bounded memory and summarise it (backs ``mdaq data validate``).

    With a ``_manifest.json``, each shard's sha256 is checked against it before any row is read.

    Returns
    -------
    dict
        ``path``, ``format`` (``"shards"``), ``n_shards``, ``n_records``, ``languages`` (code -> count),
        ``fields`` (mdaq fields then metadata keys) and ``n_with_input``, as :func:`mdaq.data.loaders.validate_file`.

    Raises
    ------
    DataError
        The first problem found, naming the shard, the row and the field.
    """
    shards = list_shards(source)
    if Path(source).is_dir() and (Path(source) / MANIFEST).is_file():
        _check_checksums(Path(source), shards)
    langs: Counter = Counter()
    meta_keys: set[str] = set()
    n_rows = n_with_input = 0
    for batch, metas in _stream(shards, batch_size, RowChecker(lang)):
        langs.update(batch.column("lang").to_pylist())
        n_with_input += sum(1 for text in batch.column("input").to_pylist() if text)
        meta_keys.update(str(k) for meta in metas for k in meta)
        n_rows += batch.num_rows
    return {
        "path": str(source),
        "format": "shards",
        "n_shards": len(shards),
        "n_records": n_rows,
        "languages": dict(langs.most_common()),
        "fields": ["instruction", "input", "output", *sorted(meta_keys)],
        "n_with_input": n_with_input,
    }
