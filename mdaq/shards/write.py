"""Write samples as Parquet shards, deterministically and atomically: ``part-00000.parquet``, ... and a
``_manifest.json`` (names, row counts, sha256 per shard, schema), built in a sibling folder and swapped in whole.

Same samples in the same order, same bytes: every writer option that shapes the bytes is stated here (zstd level 3,
row groups of a fixed size, format and page versions) rather than left to defaults a new pyarrow may change, and
pyarrow writes no timestamp; the footer does name the pyarrow version (``created_by``), so the promise is
byte-identical files for one pyarrow version, and the manifest records which.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mdaq.errors import DataError
from mdaq.io import atomic_dir, check_replaceable, read_json, write_json
from mdaq.shards.check import (
    FORMAT,
    ID_RULE,
    MANIFEST,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    RowChecker,
    file_sha256,
    meta_text,
)
from mdaq.types import Sample

DEFAULT_ROWS_PER_SHARD = 100_000  # ~100-200 MB of MIDB-like text per shard before compression
ROW_GROUP_ROWS = 10_000  # the unit a reader decompresses at once: bounds its memory
MAX_SHARDS = 99_999  # five-digit names keep name order equal to pool order
COLUMNS = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
# Every option that changes the bytes, stated (defaults could change between pyarrow versions).
WRITE_OPTIONS: dict[str, Any] = {
    "version": "2.6",
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "data_page_version": "1.0",
    "store_schema": True,
    "write_page_index": False,
    "write_page_checksum": True,  # a CRC per page: readers here verify it, so a flipped byte cannot pass as text
    "use_content_defined_chunking": False,
}


def check_shard_folder(out: str | Path) -> None:
    """Refuse ``out`` unless it is absent, empty, or a shard folder this writer wrote (its ``_manifest.json`` has
    ``format: mdaq.shards``); called before any input is read.

    Raises
    ------
    DataError
        Naming ``out`` (and the manifest's ``format`` field when a ``_manifest.json`` of something else is there).
    """
    out = Path(out)
    check_replaceable(out, (MANIFEST,))
    manifest = out / MANIFEST
    if manifest.is_file():
        data = read_json(manifest)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DataError(
                manifest, f"not written by `mdaq data shard` (format is not {FORMAT!r}); refusing to replace it", None
            )


def _schema() -> Any:
    import pyarrow as pa

    return pa.schema([pa.field(name, pa.string(), nullable=False) for name in COLUMNS])


def _columns(samples: list[Sample], source_name: str, first: int) -> dict[str, list[str]]:
    cols: dict[str, list[str]] = {name: [] for name in COLUMNS}
    for k, s in enumerate(samples):
        for name in (*REQUIRED_COLUMNS, "source"):
            cols[name].append(getattr(s, name))
        cols["meta"].append(meta_text(dict(s.meta), source_name, f"sample {first + k}"))
    return cols


class _ShardWriter:
    """Appends row groups to ``part-NNNNN.parquet`` files in ``folder``, starting a new one every
    ``rows_per_shard`` rows, and keeps the manifest entries."""

    def __init__(self, folder: Path, rows_per_shard: int) -> None:
        self.folder, self.rows_per_shard = folder, rows_per_shard
        self.entries: list[dict[str, Any]] = []
        self._writer: Any = None
        self._n = 0

    @property
    def room(self) -> int:
        """Rows the current shard can still take."""
        return self.rows_per_shard - self._n

    def write(self, table: Any) -> None:
        import pyarrow.parquet as pq

        if self._writer is None:
            if len(self.entries) >= MAX_SHARDS:
                raise DataError(self.folder, f"more than {MAX_SHARDS} shards: raise --rows-per-shard")
            path = self.folder / f"part-{len(self.entries):05d}.parquet"
            self._writer = pq.ParquetWriter(path, table.schema, **WRITE_OPTIONS)
        self._writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self._n += table.num_rows
        if self._n == self.rows_per_shard:
            self.close()

    def close(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        path = Path(self._writer.where)
        self.entries.append({"name": path.name, "n_rows": self._n, "sha256": file_sha256(path)})
        self._writer, self._n = None, 0


def _chunks(samples: Iterable[Sample], size: int) -> Iterable[list[Sample]]:
    chunk: list[Sample] = []
    for s in samples:
        chunk.append(s)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def write_shards(
    samples: Iterable[Sample],
    out_dir: str | Path,
    *,
    rows_per_shard: int = DEFAULT_ROWS_PER_SHARD,
    source_name: str = "<samples>",
) -> dict[str, Any]:
    """Write ``samples`` (any iterable, consumed once, in bounded memory) as a shard folder.

    Every row is checked as :func:`mdaq.shards.read.iter_pool_batches` checks it (ids must be content hashes; no
    repeats), so nothing unreadable is ever written. The folder is built in ``.<name>.tmp`` beside ``out_dir`` and
    swapped in only when complete (:func:`mdaq.io.atomic_dir`): an error or a kill leaves the old folder whole.

    Parameters
    ----------
    samples : iterable of Sample
        In pool order; ``meta`` must be a JSON object (stored as text in the ``meta`` column).
    out_dir : str or Path
        The shard folder; an existing one is replaced only if this writer wrote it (:func:`check_shard_folder`).
    rows_per_shard : int
        Rows per file (the last may have fewer); row groups hold at most 10,000 rows.
    source_name : str
        Names the input in error messages (record ``sample <i>`` counts samples from 0).

    Returns
    -------
    dict
        The manifest written to ``_manifest.json``.

    Raises
    ------
    DataError
        For a bad sample (naming ``source_name``, the row and the field), an empty input, or a folder that may
        not be replaced.
    """
    import pyarrow as pa

    if rows_per_shard < 1:
        raise DataError("--rows-per-shard", f"{rows_per_shard} is not a positive number of rows")
    check_shard_folder(out_dir)
    schema, checker, langs = _schema(), RowChecker(unit="sample"), Counter()
    group = min(ROW_GROUP_ROWS, rows_per_shard)
    with atomic_dir(out_dir, owned_by=(MANIFEST,)) as tmp:
        writer = _ShardWriter(tmp, rows_per_shard)
        n = 0
        for chunk in _chunks(samples, group):
            while chunk:  # a chunk never straddles two shards
                part, chunk = chunk[: writer.room], chunk[writer.room :]
                try:
                    table = pa.Table.from_pydict(_columns(part, source_name, n), schema=schema)
                except (pa.ArrowException, TypeError) as e:  # a field that is not a string
                    where = f"samples {n}-{n + len(part) - 1}"
                    raise DataError(source_name, f"a text field is not a string: {e}", record=where) from None
                checker.check_batch(Path(source_name), n, table.to_batches()[0])
                langs.update(s.lang for s in part)
                writer.write(table)
                n += len(part)
        writer.close()
        checker.finish()
        if not n:
            raise DataError(source_name, "no samples: the pool is empty")
        manifest = {
            "format": FORMAT,
            "version": 1,
            "n_rows": n,
            "n_shards": len(writer.entries),
            "rows_per_shard": rows_per_shard,
            "row_group_rows": group,
            "languages": dict(sorted(langs.items())),
            "schema": [{"name": name, "type": "string", "nullable": False} for name in COLUMNS],
            "meta": "JSON object as text",
            "id_rule": ID_RULE,
            "writer": f"pyarrow {pa.__version__}",
            "shards": writer.entries,
        }
        write_json(tmp / MANIFEST, manifest)
    return manifest
